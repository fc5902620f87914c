"""Feature-alignment domain adaptation: Deep CORAL, DAN, and the adversarial DANN, CDAN, MDD (BSP as an option)."""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F

from .. import losses
from ..models import DomainDiscriminator, grad_reverse
from .base import METHODS, Batch, HParam, Method


#: How the CORAL loss is measured (:func:`lepton.losses.coral_loss`): shared by deep-coral and self-training.
CORAL_FORM = HParam("paper", help="CORAL loss: paper (eq. 1, grows with the features' scale to the 4th power) or "
                    "relative (scale-free: the covariance gap over the covariances' size)",
                    choices=("paper", "relative"))


def coral_notes(hparams, batch_size: int, sizes) -> list:
    """What Deep CORAL's covariance estimate makes of this batch size (see :func:`lepton.losses.coral_loss`)."""
    d, out = int(hparams["feature_dim"]), []
    if batch_size < 2:
        return [("warning", "batch size 1: the CORAL loss is 0 at every step (a covariance needs 2 examples), so CORAL does "
                "nothing; use a batch size of at least 2, better above the feature size")]
    if batch_size <= d:
        out.append(("info", f"batch size {batch_size} is not above the feature size {d}: each step's covariance has rank at "
                   f"most {batch_size - 1}, a noisy CORAL estimate; a batch above {d} (or a smaller feature_dim) "
                   "aligns more reliably"))
    ones = [n for n in sizes if n % batch_size == 1]
    if ones:
        out.append(("warning", "a domain's last batch of each pass holds 1 example, where the CORAL loss is 0 for "
                               "that step; a batch size that leaves no single example avoids it"))
    return out


def dann_lambda(p: float, gamma: float = 10.0) -> float:
    """DANN's adaptation factor ``lambda_p = 2 / (1 + exp(-gamma p)) - 1`` (Ganin et al., JMLR 2016, sec. 5.2.2).

    Parameters
    ----------
    p : float
        Training progress in [0, 1].
    gamma : float
        Steepness (the paper uses 10).

    Returns
    -------
    float
        In [0, 1).
    """
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class _Aligned(Method):
    """Shared step of alignment methods: ``L = CE(h(f_s), y_s) + trade_off * L_align(f_s, f_t)``."""

    HPARAMS = {"trade_off": HParam(1.0, 0.0, 1000.0, "weight of the alignment loss")}
    align_name = "align"

    def align(self, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        with self.autocast():
            fs = self.net.features(batch.xs)  # (B_s, D)
            ft = self.net.features(batch.xt)  # (B_t, D)
            cls = F.cross_entropy(self.net.head(fs), batch.ys)
        a = self.align(fs.float(), ft.float())
        loss = cls + self.weight(step) * a
        self.optimize(loss)
        return {"cls": cls.item(), self.align_name: a.item()}

    def weight(self, step: int) -> float:
        """The alignment loss's weight at ``step`` (``trade_off``; DAN may ramp it up)."""
        return self.hparams["trade_off"]


@METHODS.register("deep-coral")
class DeepCORAL(_Aligned):
    """Deep CORAL (Sun & Saenko, ECCV-W 2016): align second-order statistics of the features.

    ``L = CE(h(f_s), y_s) + trade_off * L_CORAL``. ``coral_form="paper"`` (default) is eq. 1,
    ``||C_S - C_T||_F^2 / (4 d^2)``, whose size grows with the fourth power of the features'
    scale: Lepton standardises tables by default (``scaling="auto"``), which is what lets its
    weight of 10 work on images and tables alike. ``"relative"`` is the scale-free
    ``||C_S - C_T||_F^2 / mean(||C_S||_F^2, ||C_T||_F^2)``, for unscaled features
    (``scaling="none"``); see :func:`lepton.losses.coral_loss`.
    """

    summary = "Deep CORAL: match source and target feature covariances"
    HPARAMS = {"trade_off": HParam(10.0, 0.0, 10000.0, "weight of the CORAL loss"),
               "coral_form": CORAL_FORM}
    align_name = "coral"

    def align(self, fs, ft):
        return losses.coral_loss(fs, ft, relative=self.hparams["coral_form"] == "relative")

    @classmethod
    def plan_notes(cls, hparams, batch_size, sizes):
        return coral_notes(hparams, batch_size, sizes)


@METHODS.register("dan")
class DAN(_Aligned):
    """DAN (Long et al., ICML 2015): minimise multi-kernel MMD between source and target features.

    ``L = CE(h(f_s), y_s) + trade_off * lambda_p * MK-MMD^2(f_s, f_t)``; see :func:`lepton.losses.mmd_loss`.
    ``schedule="progressive"`` (the default) raises ``lambda_p`` from 0 to 1 as DANN's reversal
    weight does, ``2/(1+exp(-gamma p))-1`` (:func:`dann_lambda`), the progressive penalty Long et al.
    use for their MMD methods (JAN, ICML 2017, sec. 5): at full weight from the first step the
    MMD of a randomly initialised LeNet diverged or collapsed the run on the MNIST/USPS images
    (issue 12's benchmark). ``"constant"``: ``lambda_p = 1`` throughout (runs stored before
    ``defaults_version`` 3).
    """

    summary = "DAN: minimise multi-kernel MMD between the domains' features"
    HPARAMS = {**_Aligned.HPARAMS,
               "schedule": HParam("progressive", help="the MMD weight over training: progressive (0 to trade_off, "
                                  "as DANN's lambda) or constant", choices=("progressive", "constant")),
               "gamma": HParam(10.0, 0.1, 100.0, "steepness of the progressive schedule 2/(1+exp(-gamma p))-1")}
    DEFAULTS_BEFORE = {3: {"schedule": "constant"}}
    align_name = "mmd"

    def align(self, fs, ft):
        return losses.mmd_loss(fs, ft)

    def weight(self, step: int) -> float:
        w = self.hparams["trade_off"]
        return w * dann_lambda(self.progress(step), self.hparams["gamma"]) if self.hparams["schedule"] == "progressive" else w


#: BSP as an option of the adversarial methods (Chen et al., ICML 2019): its weight and how many singular values.
BSP_HPARAMS = {
    "bsp": HParam(0.0, 0.0, 1.0, "weight of batch spectral penalisation, BSP (Chen et al. 2019; the paper uses 1e-4); "
                  "0: off"),
    "bsp_k": HParam(1, 1, 64, "singular values BSP damps per domain"),
}


class _Adversarial(Method):
    """Shared machinery of the gradient-reversal methods: the ``lambda_p`` schedule, the learning-rate
    annealing ``mu_p = mu_0 / (1 + 10 p)^0.75`` (Ganin et al., JMLR 2016, sec. 5.2.2) and the
    optional BSP penalty (:func:`lepton.losses.batch_spectral_penalty`)."""

    HPARAMS = {
        "trade_off": HParam(1.0, 0.0, 100.0, "maximum weight of the reversed domain gradient"),
        "gamma": HParam(10.0, 0.1, 100.0, "steepness of the lambda schedule 2/(1+exp(-gamma p))-1"),
        "lr_anneal": HParam(True, help="anneal the learning rate as mu0/(1+10p)^0.75"),
        **BSP_HPARAMS,
    }

    def schedule(self, step: int) -> float:
        """``lambda = trade_off * lambda_p`` at ``step``; anneals the learning rate as a side effect."""
        p = self.progress(step)
        if self.hparams["lr_anneal"]:
            for g in self.optimizer.param_groups:
                g["lr"] = self.hparams["lr"] / (1.0 + 10.0 * p) ** 0.75
        return self.hparams["trade_off"] * dann_lambda(p, self.hparams["gamma"])

    def finish(self, cls, adv, ds, dt, fs, ft, lam: float) -> Dict[str, float]:
        """Step on ``cls + adv`` (plus ``bsp * BSP(f_s, f_t)`` when ``bsp > 0``) and report the losses,
        the discriminator's accuracy on logits ``ds`` (source) and ``dt`` (target) and ``lambda``."""
        with torch.no_grad():
            acc = 0.5 * ((ds > 0).float().mean() + (dt <= 0).float().mean())
        out = {"cls": cls.item(), "domain": adv.item(), "domain_acc": acc.item(), "lambda": lam}
        loss = cls + adv
        if self.hparams["bsp"] > 0:
            pen = losses.batch_spectral_penalty(fs.float(), ft.float(), int(self.hparams["bsp_k"]))
            out["bsp"] = pen.item()
            loss = loss + self.hparams["bsp"] * pen
        self.optimize(loss)
        return out


@METHODS.register("dann")
class DANN(_Adversarial):
    """Domain-adversarial neural network (Ganin et al., JMLR 2016) with gradient reversal.

    ``L = CE(h(f_s), y_s) + BCE(D(GRL_l(f_s)), 1)/2 + BCE(D(GRL_l(f_t)), 0)/2``: the discriminator
    D minimises the domain loss while the reversal layer GRL makes the encoder maximise it with
    weight ``l = trade_off * lambda_p`` (:func:`dann_lambda`). The learning rate follows the
    paper's annealing ``mu_p = mu_0 / (1 + 10 p)^0.75`` when ``lr_anneal`` is on. ``bsp > 0`` adds
    batch spectral penalisation (Chen et al., ICML 2019).
    """

    summary = "DANN: domain-adversarial training through a gradient reversal layer"
    HPARAMS = {**_Adversarial.HPARAMS,
               "disc_hidden": HParam(256, 8, 4096, "hidden units of the domain discriminator")}

    def build(self) -> None:
        self.discriminator = DomainDiscriminator(self.net.feature_dim, int(self.hparams["disc_hidden"]))

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        lam = self.schedule(step)
        with self.autocast():
            fs = self.net.features(batch.xs)  # (B_s, D)
            ft = self.net.features(batch.xt)  # (B_t, D)
            cls = F.cross_entropy(self.net.head(fs), batch.ys)
            ds = self.discriminator(grad_reverse(fs, lam))  # (B_s,)
            dt = self.discriminator(grad_reverse(ft, lam))  # (B_t,)
        adv = losses.domain_adversarial_loss(ds.float(), dt.float())
        return self.finish(cls, adv, ds, dt, fs, ft, lam)


@METHODS.register("cdan")
class CDAN(_Adversarial):
    """Conditional domain-adversarial network (Long et al., NeurIPS 2018), CDAN+E by default.

    The discriminator sees the multilinear map ``f (x) g`` of the features and the class
    probabilities ``g = softmax(h(f))`` (:func:`lepton.losses.multilinear_map`; ``g`` without
    gradient, as in the authors' code), so it aligns the class-conditional distributions, not only
    the marginals: ``L = CE(h(f_s), y_s) + L_adv(D(GRL_l(f_s (x) g_s)), D(GRL_l(f_t (x) g_t)))``
    with the entropy weights ``1 + exp(-H(g))`` when ``entropy_conditioning``
    (:func:`lepton.losses.conditional_adversarial_loss`). Schedules as DANN; ``bsp > 0`` adds BSP.
    """

    summary = "CDAN: adversarial alignment conditioned on the classifier's predictions (CDAN+E)"
    HPARAMS = {**_Adversarial.HPARAMS,
               "entropy_conditioning": HParam(True, help="weight examples by 1+exp(-entropy) (CDAN+E)"),
               "disc_hidden": HParam(512, 8, 4096, "hidden units of the domain discriminator")}

    def build(self) -> None:
        self.discriminator = DomainDiscriminator(self.net.feature_dim * self.n_classes, int(self.hparams["disc_hidden"]))

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        lam = self.schedule(step)
        fs, ft, ys_logits, yt_logits, cls = self.source_target_pass(batch)
        with self.autocast():
            gs, gt = F.softmax(ys_logits.float(), 1).detach(), F.softmax(yt_logits.float(), 1).detach()
            ds = self.discriminator(grad_reverse(losses.multilinear_map(fs, gs.to(fs.dtype)), lam))
            dt = self.discriminator(grad_reverse(losses.multilinear_map(ft, gt.to(ft.dtype)), lam))
        adv = losses.conditional_adversarial_loss(ds.float(), dt.float(), gs, gt, self.hparams["entropy_conditioning"])
        return self.finish(cls, adv, ds, dt, fs, ft, lam)


@METHODS.register("mdd")
class MDD(_Adversarial):
    """Margin disparity discrepancy (Zhang et al., ICML 2019).

    An adversarial head ``h'`` (an MLP ``D -> adv_hidden -> K``, as Transfer-Learning-Library's two-layer heads) on
    reversed features plays against the encoder:
    ``L = CE(h(f_s), y_s) + L_MDD(h(f), h'(GRL_l(f)))`` with
    ``L_MDD = margin * CE(h'(f_s), argmax h(f_s)) - log(1 - softmax(h'(f_t))[argmax h(f_t)])``
    (:func:`lepton.losses.margin_disparity_discrepancy`): ``h'`` learns to agree with ``h`` on the
    source and disagree on the target; the encoder, through the reversal, removes that disparity.
    ``lambda`` and the learning rate follow DANN's schedules, with a maximum reversal weight of 0.1
    (the library's warm-start reversal layer): at 1 the encoder unlearnt the source on digits.
    """

    summary = "MDD: an adversarial head measures the margin disparity between the domains; the encoder shrinks it"
    HPARAMS = {**{k: v for k, v in _Adversarial.HPARAMS.items() if k not in BSP_HPARAMS},
               "trade_off": HParam(0.1, 0.0, 100.0, "maximum weight of the reversed gradient (Transfer-Learning-Library's "
                                   "0.1: at 1 the encoder unlearnt the source on digits)"),
               "margin": HParam(4.0, 0.0, 100.0, "gamma, how much more the source agreement weighs"),
               "adv_hidden": HParam(256, 8, 4096, "hidden units of the adversarial head (an MLP D -> h -> K)")}

    def build(self) -> None:
        d, h = self.net.feature_dim, int(self.hparams["adv_hidden"])
        self.adv_head = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Linear(h, self.n_classes))

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        lam = self.schedule(step)
        fs, ft, ys_logits, yt_logits, cls = self.source_target_pass(batch)
        with self.autocast():
            ys_adv = self.adv_head(grad_reverse(fs, lam))
            yt_adv = self.adv_head(grad_reverse(ft, lam))
        disc = losses.margin_disparity_discrepancy(ys_logits.float(), ys_adv.float(), yt_logits.float(), yt_adv.float(),
                                                   self.hparams["margin"])
        self.optimize(cls + disc)
        return {"cls": cls.item(), "mdd": disc.item(), "lambda": lam}
