"""Methods that shape the target's predictions or features instead of matching distributions:
MCC (minimum class confusion) and AFN (adaptive feature norm)."""
from __future__ import annotations

from typing import Dict

import torch.nn.functional as F

from .. import losses
from .base import METHODS, Batch, HParam, Method


@METHODS.register("mcc")
class MCC(Method):
    """Minimum class confusion (Jin et al., ECCV 2020).

    ``L = CE(h(f_s), y_s) + trade_off * MCC(h(f_t) / T)``: the target batch's predictions should not
    put two classes on the same examples (:func:`lepton.losses.minimum_class_confusion`, with the
    entropy weights and column normalisation of the paper). No discriminator and no alignment of
    features: a target-side regulariser that leads the digits and Office tables of
    Transfer-Learning-Library and skada-bench.
    """

    summary = "MCC: minimise the class confusion of the target's predictions"
    HPARAMS = {"trade_off": HParam(1.0, 0.0, 100.0, "weight of the class-confusion loss"),
               "temperature": HParam(2.5, 0.1, 100.0, "temperature T of the target softmax (the paper uses 2.5)")}

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        _, _, _, logits_t, cls = self.source_target_pass(batch)
        mcc = losses.minimum_class_confusion(logits_t.float(), self.hparams["temperature"])
        self.optimize(cls + self.hparams["trade_off"] * mcc)
        return {"cls": cls.item(), "mcc": mcc.item()}


@METHODS.register("afn")
class AFN(Method):
    """Stepwise adaptive feature norm, SAFN (Xu et al., ICCV 2019).

    ``L = CE(h(f_s), y_s) + trade_off * (SAFN(f_s) + SAFN(f_t))`` with
    ``SAFN(f) = mean_i (||f_i|| - (stop_grad(||f_i||) + delta))^2``
    (:func:`lepton.losses.stepwise_feature_norm`): each step enlarges the feature norms of both
    domains by ``delta``, the paper's finding being that the target's small-norm features are
    what loses accuracy. Features pass a dropout first (``dropout``, the paper's 0.5), seeded like
    the rest of the run. ``form="hard"`` (the default) is HAFN, ``mean_i (||f_i|| - R)^2`` with
    ``R = radius``: with Lepton's Adam optimiser the stepwise form let the norms grow without
    bound and diverged on digits -> digits-rotated (source accuracy at chance after 10 epochs);
    ``form="stepwise"`` keeps the paper's SAFN.
    """

    summary = "AFN: enlarge both domains' feature norms step by step (SAFN)"
    HPARAMS = {"trade_off": HParam(0.05, 0.0, 10.0, "weight lambda of the feature-norm loss (the paper uses 0.05)"),
               "delta": HParam(1.0, 0.0, 100.0, "norm step Delta r per update (the paper uses 1.0)"),
               "dropout": HParam(0.5, 0.0, 0.9, "dropout on the features before the head and the norm loss"),
               "form": HParam("hard", help="stepwise (SAFN: each step enlarges the norms by delta) or hard (HAFN: "
                              "pull the norms to radius)", choices=("stepwise", "hard")),
               "radius": HParam(5.0, 0.0, 1000.0, "HAFN's target feature norm R (form=hard)")}

    def build(self) -> None:
        from ..models import SeededDropout
        self.drop = SeededDropout(self.hparams["dropout"])

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        with self.autocast():
            fs = self.drop(self.net.features(batch.xs))
            ft = self.drop(self.net.features(batch.xt))
            cls = F.cross_entropy(self.net.head(fs), batch.ys)
        if self.hparams["form"] == "hard":
            r = self.hparams["radius"]
            norm = ((fs.float().norm(dim=1) - r) ** 2).mean() + ((ft.float().norm(dim=1) - r) ** 2).mean()
        else:
            d = self.hparams["delta"]
            norm = losses.stepwise_feature_norm(fs.float(), d) + losses.stepwise_feature_norm(ft.float(), d)
        self.optimize(cls + self.hparams["trade_off"] * norm)
        return {"cls": cls.item(), "feature_norm_t": ft.detach().float().norm(dim=1).mean().item()}
