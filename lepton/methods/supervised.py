"""Supervised baselines and fine-tuning: source-only, target-only (oracle), finetune."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from .base import METHODS, SOURCE, TARGET_ALL, TARGET_FEW, Batch, HParam, Method


@METHODS.register("source-only")
class SourceOnly(Method):
    """Train on labelled source data only (empirical risk minimisation; the lower baseline).

    Loss: ``L = CE(h(T(E(x_s))), y_s)``.
    """

    summary = "train on the source only (baseline, no adaptation)"
    needs = (SOURCE,)

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        with self.autocast():
            loss = F.cross_entropy(self.net(batch.xs), batch.ys)  # scalar
        self.optimize(loss)
        return {"cls": loss.item()}


@METHODS.register("target-only")
class TargetOnly(Method):
    """Oracle upper bound: train on *labelled target* data only. Uses target labels by design.

    Loss: ``L = CE(h(T(E(x_t))), y_t)`` over the whole labelled target train split.
    """

    needs = (TARGET_ALL,)
    oracle = True
    summary = "ORACLE: train on labelled target data (upper bound, uses target labels)"

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        with self.autocast():
            loss = F.cross_entropy(self.net(batch.xl), batch.yl)
        self.optimize(loss)
        return {"cls": loss.item()}


@METHODS.register("finetune")
class Finetune(Method):
    """Fine-tuning with k labelled target examples per class.

    Phase 1 (the first ``pretrain_fraction`` of the steps) trains on the source,
    ``CE(h(T(E(x_s))), y_s)``; phase 2 fine-tunes on the k-shot target set,
    ``CE(h(T(E(x_l))), y_l)``, updating all layers (``mode=all``), only the head (``mode=head``,
    the linear probe) or only the transfer module T (``mode=transfer``). With
    ``--init-from`` a stored encoder, set ``pretrain_fraction=0``.
    """

    needs = (SOURCE, TARGET_FEW)
    summary = "source training, then fine-tuning on k labelled target examples per class"
    HPARAMS = {
        "k": HParam(10, 1, 10000, "labelled target examples per class"),
        "mode": HParam("all", help="what fine-tuning updates: all layers, the head only (linear probe) "
                                   "or the transfer module only", choices=("all", "head", "transfer")),
        "pretrain_fraction": HParam(0.5, 0.0, 1.0, "fraction of the steps spent training on the source first"),
        "finetune_lr": HParam(3e-4, 1e-6, 1.0, "learning rate of the fine-tuning phase", log=True),
    }

    @classmethod
    def fitted_labels(cls, hparams):
        """``None`` with no source pre-training (``pretrain_fraction`` 0): only k target labels are fitted."""
        return "source" if hparams.get("pretrain_fraction", 0.5) > 0 else None

    def build(self) -> None:
        self._phase2 = None

    def _finetune_optimizer(self):
        mode = self.hparams["mode"]
        part = {"all": self.net, "head": self.net.head, "transfer": self.net.transfer}[mode]
        return torch.optim.Adam(part.parameters(), lr=self.hparams["finetune_lr"])

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        if self.progress(step) < self.hparams["pretrain_fraction"]:
            with self.autocast():
                loss = F.cross_entropy(self.net(batch.xs), batch.ys)
            self.optimize(loss)
            return {"cls": loss.item()}
        if self._phase2 is None:
            self._phase2 = self._finetune_optimizer()
        with self.autocast():
            loss = F.cross_entropy(self.net(batch.xl), batch.yl)
        self.optimize(loss, self._phase2)
        return {"finetune": loss.item()}
