"""Self-training with confidence-thresholded pseudo-labels on the target."""
from __future__ import annotations

from typing import Dict

import torch.nn.functional as F

from .. import losses
from .alignment import CORAL_FORM
from .base import METHODS, Batch, HParam, Method


@METHODS.register("self-training")
class SelfTraining(Method):
    """Self-training with confident pseudo-labels (Lee, ICML-W 2013; as in FixMatch's threshold).

    After a source warm-up (the first ``warmup_fraction`` of the steps, source CE only), each step
    labels the target batch with the model's own predictions (eval mode, no gradient) and trains
    on those whose confidence ``max_c p_c >= threshold``:

    ``L = CE(h(f_s), y_s) + trade_off * (1/B_t) sum_i 1[max p_i >= tau] CE(h(f_t,i), argmax p_i)``.

    ``align=coral`` adds the Deep CORAL loss throughout (weight ``align_weight``), so the
    pseudo-labels come from an already aligned model. No target label is ever used.
    """

    summary = "self-training on confident target pseudo-labels (optionally with CORAL alignment)"
    HPARAMS = {
        "threshold": HParam(0.9, 0.0, 1.0, "confidence a pseudo-label needs to be used"),
        "warmup_fraction": HParam(0.3, 0.0, 1.0, "fraction of the steps trained on the source only"),
        "trade_off": HParam(1.0, 0.0, 100.0, "weight of the pseudo-label loss"),
        "align": HParam("none", help="feature alignment added during training", choices=("none", "coral")),
        "align_weight": HParam(10.0, 0.0, 10000.0, "weight of the alignment loss when align != none"),
        "coral_form": CORAL_FORM,
    }

    @classmethod
    def plan_notes(cls, hparams, batch_size, sizes):
        from .alignment import coral_notes
        return coral_notes(hparams, batch_size, sizes) if hparams["align"] == "coral" else []

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        xs, ys, xt = batch.xs, batch.ys, batch.xt
        out: Dict[str, float] = {}
        use_pl = self.progress(step) >= self.hparams["warmup_fraction"]
        if use_pl:
            probs = F.softmax(self.predict(xt), dim=1)  # (B_t, K), eval mode
            conf, pl = probs.max(dim=1)
            mask = (conf >= self.hparams["threshold"]).float()  # (B_t,)
        with self.autocast():
            fs = self.net.features(xs)
            ft = self.net.features(xt)
            cls = F.cross_entropy(self.net.head(fs), ys)
            loss = cls
            if use_pl:
                ce = F.cross_entropy(self.net.head(ft), pl, reduction="none")  # (B_t,)
                pseudo = (ce * mask).mean()
                loss = loss + self.hparams["trade_off"] * pseudo
                out.update(pseudo=pseudo.item(), mask_rate=mask.mean().item())
        if self.hparams["align"] == "coral":
            a = losses.coral_loss(fs.float(), ft.float(), relative=self.hparams["coral_form"] == "relative")
            loss = loss + self.hparams["align_weight"] * a
            out["coral"] = a.item()
        self.optimize(loss)
        return {"cls": cls.item(), **out}
