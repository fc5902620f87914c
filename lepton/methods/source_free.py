"""Source-free domain adaptation: SHOT adapts a stored source model with unlabelled target data only."""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from .. import losses
from .base import METHODS, TARGET, Batch, HParam, Method


@METHODS.register("shot")
class SHOT(Method):
    """SHOT, source hypothesis transfer (Liang et al., ICML 2020).

    Starts from a stored source model (``init_from``: the whole network, head included) and never
    sees a source example. The head, the source hypothesis, is frozen; the encoder and transfer
    module learn on unlabelled target data with

    ``L = -IM(h(f_t)) + beta * CE(h(f_t), y^)``,

    information maximisation (:func:`lepton.losses.information_maximization`: confident and
    diverse predictions) plus self-supervised pseudo-labels ``y^``: the target's class centroids
    weighted by the model's probabilities, refined once with hard labels, and each example's
    nearest centroid by cosine distance (:func:`lepton.losses.cluster_pseudo_labels`, the authors'
    ``obtain_label``). The centroids are recomputed over the whole target training split
    ``relabel_times`` times over the run (the authors' 15); between refreshes each batch example
    takes the centroid nearest its current features. No target label is used.

    Refuses to train without a starting run (``init_from``) or with one trained on other classes.
    """

    #: ``defaults_version`` 5 lowered the learning rate from the common 1e-3 to 1e-5.
    DEFAULTS_BEFORE = {5: {"lr": 1e-3}}
    summary = "SHOT: source-free adaptation of a stored source model (frozen head, target data only)"
    needs = (TARGET,)
    needs_start = True
    HPARAMS = {"lr": HParam(1e-5, 1e-7, 1.0, "Adam learning rate, a hundredth of source training's: SHOT fine-tunes a "
                            "trained model; from a 95.8 % mnist -> usps source model, 1e-3 fell to 8 % in the first "
                            "epoch and 1e-4 swung between 34 and 95 %, 1e-5 held 96 %", log=True),
               "beta": HParam(0.3, 0.0, 10.0, "weight of the pseudo-label loss (the paper uses 0.3 for digits)"),
               "im_weight": HParam(1.0, 0.0, 10.0, "weight of the information-maximisation loss"),
               "relabel_times": HParam(15, 1, 1000, "how many times over the run the target's centroids are recomputed")}

    def build(self) -> None:
        self._xt_all: Optional[torch.Tensor] = None
        self._centroids: Optional[torch.Tensor] = None
        self.net.head.requires_grad_(False)

    def trainable_parameters(self):
        return [p for n, p in self.net.named_parameters() if not n.startswith("head.")]

    def load_start(self, state: Dict[str, torch.Tensor]) -> None:
        """Initialise the whole network (encoder, transfer module and head) from a stored source run.

        Raises
        ------
        ValueError
            If the stored network has another input shape, feature size or number of classes.
        """
        sub = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
        own = self.net.state_dict()
        bad = [k for k in own if k not in sub or sub[k].shape != own[k].shape]
        if bad:
            raise ValueError("the starting run's network does not fit this run (another input shape, encoder, "
                             f"feature_dim or number of classes): mismatched {', '.join(bad[:3])}")
        self.net.load_state_dict({k: sub[k] for k in own})

    def on_target(self, xt: torch.Tensor) -> None:
        self._xt_all = xt

    @torch.no_grad()
    def _relabel(self, xt: torch.Tensor) -> None:
        feats, probs = [], []
        for a in range(0, len(xt), 512):
            f, logits = self.infer(xt[a:a + 512])
            feats.append(f)
            probs.append(F.softmax(logits, 1))
        _, self._centroids = losses.cluster_pseudo_labels(torch.cat(feats), torch.cat(probs))

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        xt = batch.xt
        every = max(1, self.total_steps // int(self.hparams["relabel_times"]))
        if self._xt_all is None:  # no whole split handed over: the batch's own centroids
            self._relabel(xt)
        elif self._centroids is None or step % every == 0:
            self._relabel(self._xt_all)
        with self.autocast():
            ft = self.net.features(xt)
            logits = self.net.head(ft).float()
        pl = losses.nearest_centroid(ft.detach().float(), self._centroids)
        im = losses.information_maximization(logits)
        pseudo = F.cross_entropy(logits, pl)
        self.optimize(-self.hparams["im_weight"] * im + self.hparams["beta"] * pseudo)
        return {"im": im.item(), "pseudo": pseudo.item()}
