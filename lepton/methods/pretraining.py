"""Self-supervised pretraining (``ssl``) and the plumbing shared by the multi-domain stages.

The training loop hands a method one batch per source domain (``batch.sources``) and one
unlabelled target batch (``batch.xt``) per step. Stages that learn from *several* domains
(``ssl``, ``multitask``, ``maml``, ``reptile``) are :class:`MultiDomainMethod` subclasses: the
loop also hands them the whole training split of every source domain once
(:meth:`MultiDomainMethod.on_data`), for episodes and per-domain heads. Several sources are
ordinary run sources (``python -m lepton train --source a b --target c``).
"""
from __future__ import annotations

from typing import ClassVar, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..models import Decoder
from .augment import random_affine
from .base import METHODS, HParam, Method

SSL_OBJECTIVES = ("autoencoder", "rotation", "simclr")
IMAGE_ONLY_OBJECTIVES = ("rotation", "simclr")


def check_objective_modality(objective: str, input_shape: Sequence[int]) -> None:
    """Refuse a self-supervised objective the input cannot support.

    Raises
    ------
    ValueError
        ``rotation`` or ``simclr`` on feature vectors ``(D,)`` (both transform images), or
        ``rotation`` on non-square images (a 90-degree turn changes their shape).
    """
    shape = tuple(int(s) for s in input_shape)
    if objective in IMAGE_ONLY_OBJECTIVES and len(shape) != 3:
        raise ValueError(f"ssl objective {objective!r} needs images (C, H, W) but the domains hold feature "
                         f"vectors of shape {shape}; use objective=autoencoder for feature tables")
    if objective == "rotation" and shape[1] != shape[2]:
        raise ValueError(f"ssl objective 'rotation' needs square images; got {shape[1]}x{shape[2]}")


def rotate_images(x: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image by ``90 * quarter_turns[i]`` degrees counter-clockwise (Gidaris et al., ICLR 2018).

    Parameters
    ----------
    x : torch.Tensor
        float ``(B, C, H, H)``.
    quarter_turns : torch.Tensor
        int64 ``(B,)`` in ``{0, 1, 2, 3}``.

    Returns
    -------
    torch.Tensor
        ``(B, C, H, H)``.
    """
    out = x.clone()
    for q in (1, 2, 3):
        m = quarter_turns == q
        if m.any():
            out[m] = torch.rot90(x[m], q, dims=(2, 3))
    return out


def augment_images(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """SimCLR-style random view of each image, adapted to small digits (Chen et al., ICML 2020, sec. 3).

    Random affine crop (scale 0.8-1.2, rotation +-20 degrees, shift +-12 % of the side), then
    brightness x U(0.6, 1.4), contrast x U(0.6, 1.4) about the image mean, Gaussian noise (std
    0.05) and clipping to [0, 1]. Colour distortion beyond brightness/contrast is omitted: most
    digit domains are gray.

    Parameters
    ----------
    x : torch.Tensor
        float ``(B, C, H, W)`` in [0, 1].
    generator : torch.Generator, optional
        CPU generator for the random parameters (default: the global one).

    Returns
    -------
    torch.Tensor
        ``(B, C, H, W)`` float in [0, 1].
    """
    b = x.shape[0]
    u = lambda lo, hi: (torch.rand(b, generator=generator) * (hi - lo) + lo).to(x.device)  # noqa: E731
    v = random_affine(x, generator, rotation=20.0, scale=(0.8, 1.2), shift=0.12)  # (B, C, H, W)
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    v = (v - mean) * u(0.6, 1.4).view(b, 1, 1, 1) + mean
    v = v * u(0.6, 1.4).view(b, 1, 1, 1)
    noise = torch.randn(v.shape, generator=generator).to(x.device) * 0.05
    return (v + noise).clamp(0.0, 1.0)


class MultiDomainMethod(Method):
    """A method that learns from several source domains; see the module docstring.

    Class attributes
    ----------------
    stage_kind : str
        ``ssl``, ``multitask`` or ``meta``: where the method sits in a pipeline.
    min_sources : int
        Fewest source domains a pipeline must give it.

    Attributes
    ----------
    sources : list of (str, torch.Tensor, torch.Tensor)
        ``(name, x (N, *input_shape) float32, y (N,) int64)``: the whole training split of each
        source domain, handed over by the loop (:meth:`on_data`) before the first step.
    """

    stage_kind: ClassVar[str] = ""
    min_sources: ClassVar[int] = 1

    def build(self) -> None:
        self.sources: List[Tuple[str, torch.Tensor, torch.Tensor]] = []
        self.build_stage()

    def build_stage(self) -> None:
        """Create the stage's own modules (before the data is known)."""

    def on_attach(self) -> None:
        """Create modules that depend on the source domains (e.g. one head per domain)."""

    def on_data(self, sources) -> None:
        """Keep the source domains' training splits, build what depends on them, and rebuild the
        optimiser (nothing is trained yet).

        Raises
        ------
        ValueError
            No domain, or a domain whose input shape differs from the method's.
        """
        if not sources:
            raise ValueError(f"{self.name} needs at least one source domain")
        for name, x, _ in sources:
            if tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(f"domain {name!r} has inputs {tuple(x.shape[1:])} but the method was built for "
                                 f"{self.input_shape}; harmonise the domains")
        self.sources = [(n, x.to(self.device), y.to(self.device)) for n, x, y in sources]
        self.on_attach()
        self.to(self.device)
        self.optimizer = self.make_optimizer(self.trainable_parameters())

    @staticmethod
    def source_batches(batch) -> List[Tuple[str, torch.Tensor, torch.Tensor]]:
        """This step's labelled batches, one per source domain: ``(domain name, x (B, ...), y (B,))``."""
        return list(batch.sources)


@METHODS.register("ssl")
class SelfSupervised(MultiDomainMethod):
    """Self-supervised pretraining of encoder E (and transfer module T) on unlabelled images of
    every domain (the attached source domains and the target).

    Objectives (hyper-parameter ``objective``), with ``f = T(E(x))``:

    * ``autoencoder``: decoder D reconstructs the input, ``L = mean_i 1/2 ||x_i - D(f_i)||^2``
      (:func:`lepton.losses.reconstruction_loss`).
    * ``rotation``: predict which of 0/90/180/270 degrees each image was turned by, ``L = CE(r(f),
      q)`` (Gidaris, Singh & Komodakis, ICLR 2018); one random turn per image and step, rather
      than all four, to keep the cost of a step that of one forward pass.
    * ``simclr``: two random views per image, projection head g, NT-Xent over the batch pooled
      across domains (Chen et al., ICML 2020; :func:`lepton.losses.nt_xent_loss`).

    Labels are never used by E: the classifier head is an *online linear probe* trained on
    detached source features, ``CE(h(stopgrad(f_s)), y_s)``, so the loop's per-epoch accuracies
    mean something. The linear-probe accuracy on the target (:mod:`lepton.strategies.fewshot`)
    measures the features.

    Raises
    ------
    ValueError
        ``rotation``/``simclr`` on feature vectors, ``rotation`` on non-square images.
    """

    stage_kind = "ssl"
    min_sources = 2
    summary = "self-supervised pretraining on unlabelled data of all domains (autoencoder, rotation, SimCLR)"
    HPARAMS = {
        "objective": HParam("autoencoder", help="self-supervised task: reconstruct the input (decoder), predict "
                                                "the image's rotation, or contrast two views (SimCLR)",
                            choices=SSL_OBJECTIVES),
        "temperature": HParam(0.5, 0.01, 10.0, "SimCLR temperature tau of the NT-Xent loss", log=True),
        "projection_dim": HParam(64, 8, 1024, "SimCLR projection head output size"),
        "probe_lr": HParam(1e-2, 1e-6, 1.0, "Adam learning rate of the online linear probe (the head)", log=True),
    }

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """Adam; the online probe (``net.head``) has its own learning rate ``probe_lr``."""
        head = set(map(id, self.net.head.parameters()))
        rest = [p for p in self.parameters() if id(p) not in head]
        return torch.optim.Adam([{"params": rest}, {"params": list(self.net.head.parameters()),
                                                    "lr": self.hparams["probe_lr"]}],
                                lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])

    def build_stage(self) -> None:
        obj = self.hparams["objective"]
        check_objective_modality(obj, self.input_shape)
        d = self.net.feature_dim
        if obj == "autoencoder":
            self.decoder = Decoder(d, self.input_shape)
        elif obj == "rotation":
            self.rotation_head = nn.Linear(d, 4)
        else:
            p = int(self.hparams["projection_dim"])
            self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, p))

    def _ssl_loss(self, x: torch.Tensor) -> Tuple[str, torch.Tensor]:
        obj = self.hparams["objective"]
        if obj == "autoencoder":
            return "reconstruction", losses.reconstruction_loss(x, self.decoder(self.net.features(x)))
        gen = self.generator
        if obj == "rotation":
            q = torch.randint(0, 4, (len(x),), generator=gen).to(x.device)  # (B,)
            logits = self.rotation_head(self.net.features(rotate_images(x, q)))  # (B, 4)
            return "rotation", F.cross_entropy(logits, q)
        g = self.projector
        z1 = g(self.net.features(augment_images(x, gen)))  # (B, P)
        z2 = g(self.net.features(augment_images(x, gen)))  # (B, P)
        return "nt_xent", losses.nt_xent_loss(z1.float(), z2.float(), self.hparams["temperature"])

    def update(self, batch, step):
        parts = self.source_batches(batch)
        xs, ys = parts[0][1], parts[0][2]
        x = torch.cat([p[1] for p in parts] + [batch.xt])  # (B_total, ...) every domain, unlabelled
        with self.autocast():
            name, loss = self._ssl_loss(x)
            with torch.no_grad():
                fs = self.net.features(xs)  # (B_s, D), probe input only
            probe = F.cross_entropy(self.net.head(fs.detach()), ys)
        self.optimize(loss + probe)
        return {name: loss.item(), "probe": probe.item()}
