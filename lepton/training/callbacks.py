"""Callbacks: the only way progress leaves the training loop (the minGPT ``Trainer`` idea)."""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, TextIO


class Callback:
    """Base class; override any hook. ``run`` is the :class:`lepton.training.loop.RunState`."""

    def on_run_start(self, run) -> None:
        """After data, method and device are ready, before the first step."""

    def on_step_end(self, run, step: int, epoch: int, losses: Dict[str, float]) -> None:
        """After each optimisation step (``step`` counts from 1 over the run)."""

    def on_epoch_end(self, run, epoch: int, metrics: Dict[str, Any]) -> None:
        """After each epoch's evaluation; ``metrics`` is the history row of that epoch."""

    def on_run_end(self, run, result) -> None:
        """Once, with the :class:`lepton.training.loop.RunResult` (any status)."""


class PrintProgress(Callback):
    """One line per epoch on a stream (the CLI's progress)."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream
        self.t0 = time.perf_counter()

    def on_run_start(self, run) -> None:
        self.t0 = time.perf_counter()
        c = run.config
        print(f"lepton: {c.method} {c.source_label} -> {c.target} on {run.device}, {c.epochs} epochs, "
              f"{run.steps_per_epoch} steps/epoch, seed {c.seed}", file=self.stream, flush=True)

    def on_epoch_end(self, run, epoch, metrics) -> None:
        losses = " ".join(f"{k}={v:.3f}" for k, v in metrics.get("losses", {}).items())
        if run.config.task == "ranking":
            print(f"epoch {epoch:3d}/{run.config.epochs}  test NDCG@10 all {metrics['target_acc']:.3f}  cold-start "
                  f"{_acc(metrics['target_cold'])}  validation NDCG@10 {metrics['score']:.3f}  {losses}  "
                  f"[{time.perf_counter() - self.t0:.1f}s]", file=self.stream, flush=True)
            return
        print(f"epoch {epoch:3d}/{run.config.epochs}  source acc {metrics['source_acc']:.3f}  "
              f"target acc {_acc(metrics['target_acc'], run.target.labelled)}  {run.config.select} {metrics['score']:.3f}  "
              f"{losses}  [{time.perf_counter() - self.t0:.1f}s]", file=self.stream, flush=True)


def _acc(v: float, labelled: bool = True) -> str:
    """``"0.913"``; ``"no labels"`` for an unlabelled domain; ``"-"`` for no examples."""
    if not labelled:
        return "no labels"
    return "-" if v != v else f"{v:.3f}"
