"""Multi-task learning: one shared encoder, one head per (domain, task)."""
from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from .base import METHODS, SOURCE, HParam
from .pretraining import MultiDomainMethod


class TaskWeights(nn.Module):
    """Learned log-variances ``s_i = log sigma_i^2``, one per task, initialised to 0 (weight 1).

    Shapes
    ------
    ``log_vars``: ``(T,)``.
    """

    def __init__(self, n_tasks: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(int(n_tasks)))


@METHODS.register("multitask")
class MultiTask(MultiDomainMethod):
    """Multi-task learning with hard parameter sharing (Caruana, Mach. Learn. 1997).

    Encoder E and transfer module T are shared; each labelled source domain ``d`` has its own
    classification head ``h_d`` (the loop's source uses ``net.head``, so the run's predictions are
    those of the first source's head). Per step, with one batch per domain,
    ``L_d = CE(h_d(T(E(x_d))), y_d)`` and

    * ``weighting=equal``: ``L = sum_d L_d / n``;
    * ``weighting=uncertainty``: ``L = sum_d exp(-s_d) L_d + s_d / 2`` with learned
      ``s_d = log sigma_d^2`` (Kendall, Gal & Cipolla, CVPR 2018, eq. 10;
      :func:`lepton.losses.uncertainty_weighted_sum`).

    Each step returns every task's loss (``<domain>/cls``) and weight (``weight:<domain>/cls``:
    ``1/n``, or ``exp(-s_d)``), so the loop's per-epoch history logs the learned weights.
    Target labels are never used. Without attached domains it trains the source task alone.
    """

    stage_kind = "multitask"
    needs = (SOURCE,)
    min_sources = 2
    summary = "multi-task learning: a shared encoder, one head per source domain, equal or learned weights"
    HPARAMS = {
        "weighting": HParam("equal", help="combine the task losses with equal weights or learned homoscedastic "
                                          "uncertainty weights (Kendall et al. 2018)",
                            choices=("equal", "uncertainty")),
    }

    def build_stage(self) -> None:
        self.task_names: List[str] = ["source/cls"]
        self.task_weights = TaskWeights(1)

    def on_attach(self) -> None:
        self.task_names = [f"{name}/cls" for name, _, _ in self.sources]
        d, k = self.net.feature_dim, self.n_classes
        self.heads = nn.ModuleDict({str(i): nn.Linear(d, k) for i in range(1, len(self.sources))})
        self.task_weights = TaskWeights(len(self.sources))

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """Adam; the task log-variances get no weight decay."""
        tw = self.task_weights.log_vars
        rest = [p for p in self.parameters() if p is not tw]
        return torch.optim.Adam([{"params": rest, "weight_decay": self.hparams["weight_decay"]},
                                 {"params": [tw], "weight_decay": 0.0}], lr=self.hparams["lr"])

    def _head(self, i: int) -> nn.Module:
        return self.net.head if i == 0 else self.heads[str(i)]

    def update(self, batch, step: int) -> Dict[str, float]:
        parts = self.source_batches(batch)
        with self.autocast():
            task = torch.stack([F.cross_entropy(self._head(i)(self.net.features(x)), y)
                                for i, (_, x, y) in enumerate(parts)]).float()  # (T,)
        s = self.task_weights.log_vars[:len(task)]  # (T,)
        if self.hparams["weighting"] == "uncertainty":
            loss = losses.uncertainty_weighted_sum(task, s)
            w = torch.exp(-s).detach()
        else:
            loss = task.mean()
            w = torch.full_like(task, 1.0 / len(task))
        self.optimize(loss)
        out = {"loss": loss.item()}
        for name, li, wi in zip(self.task_names, task.tolist(), w.tolist()):
            out[name] = li
            out[f"weight:{name}"] = wi
        return out
