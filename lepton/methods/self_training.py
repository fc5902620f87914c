"""Self-training with confidence-thresholded pseudo-labels on the target."""
from __future__ import annotations

import copy
from typing import Dict

import torch
import torch.nn.functional as F

from .. import losses
from .alignment import CORAL_FORM
from .base import METHODS, Batch, HParam, Method


@METHODS.register("self-training")
class SelfTraining(Method):
    """Self-training with confident pseudo-labels (Lee, ICML-W 2013; as in FixMatch's threshold).

    After a source warm-up (the first ``warmup_fraction`` of the steps, source CE only), each step
    labels the target batch with a teacher's predictions ``p`` (eval mode, no gradient) and trains
    the model on those whose confidence ``max_c p_c >= threshold``:

    ``L = CE(h(f_s), y_s) + trade_off * (1/B_t) sum_i 1[max p_i >= tau] CE(h(f_t,i), argmax p_i)``.

    ``teacher="ema"`` (the default): the teacher is an exponential moving average of the model's
    weights, copied from the model when the warm-up ends and then updated after every step,
    ``theta' <- d * theta' + (1 - d) * theta`` with ``d = ema_decay`` (the mean teacher of Tarvainen
    & Valpola, NeurIPS 2017, as French et al., ICLR 2018 use it for domain adaptation); it drifts
    slowly, so the model's early mistakes on the target do not feed straight back into its own
    labels, the confirmation bias that made plain self-training collapse or lose 5-9 points to
    source-only on kitchen -> books and digits -> digits-rotated (issue 12's benchmark).
    ``teacher="model"``: the model labels its own batch (Lee 2013; runs stored before
    ``defaults_version`` 3 trained this way).

    ``align="coral"`` (the default since ``defaults_version`` 4) adds the Deep CORAL loss throughout
    (weight ``align_weight``, the same loss and weight as the ``deep-coral`` method), so the
    pseudo-labels come from an aligned model: without it, a teacher that starts about 57 % right
    (usps16 -> mnist16 in issue 12's benchmark) taught the model its own mistakes and lost 9 points
    to source-only. ``align="none"`` is plain self-training. No target label is ever used.
    """

    summary = "self-training on confident target pseudo-labels (optionally with CORAL alignment)"
    HPARAMS = {
        "threshold": HParam(0.9, 0.0, 1.0, "confidence a pseudo-label needs to be used"),
        "warmup_fraction": HParam(0.3, 0.0, 1.0, "fraction of the steps trained on the source only"),
        "trade_off": HParam(1.0, 0.0, 100.0, "weight of the pseudo-label loss"),
        "align": HParam("coral", help="feature alignment added during training: coral (Deep CORAL, as the "
                         "deep-coral method) or none (plain self-training)", choices=("none", "coral")),
        "align_weight": HParam(10.0, 0.0, 10000.0, "weight of the alignment loss when align != none"),
        "coral_form": CORAL_FORM,
        "teacher": HParam("ema", help="who labels the target: ema (a moving average of the model's weights, the "
                          "mean teacher) or model (the model itself, each step)", choices=("ema", "model")),
        "ema_decay": HParam(0.999, 0.0, 1.0, "the EMA teacher's decay per step (1: frozen at the end of the warm-up)"),
    }
    DEFAULTS_BEFORE = {3: {"teacher": "model"}, 4: {"align": "none"}}

    def build(self) -> None:
        if self.hparams["teacher"] == "ema":  # teacher="model" keeps no copy (nor stores one in its checkpoints)
            self.teacher = copy.deepcopy(self.net)
            self.teacher.requires_grad_(False)
            self.register_buffer("teacher_ready", torch.zeros((), dtype=torch.bool))

    def trainable_parameters(self):
        return self.net.parameters()

    @torch.no_grad()
    def _update_teacher(self) -> None:
        """Copy the model into the teacher at the first pseudo-label step, then move it towards the model."""
        d = 0.0 if not bool(self.teacher_ready) else float(self.hparams["ema_decay"])
        for t, m in zip(self.teacher.state_dict().values(), self.net.state_dict().values()):
            if t.dtype.is_floating_point:
                t.mul_(d).add_(m, alpha=1.0 - d)
            else:
                t.copy_(m)  # e.g. BatchNorm's step counter
        self.teacher_ready.fill_(True)

    @classmethod
    def plan_notes(cls, hparams, batch_size, sizes):
        from .alignment import coral_notes
        return coral_notes(hparams, batch_size, sizes) if hparams["align"] == "coral" else []

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        xs, ys, xt = batch.xs, batch.ys, batch.xt
        out: Dict[str, float] = {}
        use_pl = self.progress(step) >= self.hparams["warmup_fraction"]
        if use_pl:
            if self.hparams["teacher"] == "ema":
                self._update_teacher()
                probs = F.softmax(self._eval_call(self.teacher, xt), dim=1)  # (B_t, K), eval mode
            else:
                probs = F.softmax(self.predict(xt), dim=1)
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
