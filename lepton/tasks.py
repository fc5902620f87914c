"""Tasks: what "right" means for a run. A task owns the prediction head, the targets, the metrics,
the label-free checkpoint scores and the fields a feature snapshot stores; the training loop and
the knowledge base stay task-agnostic. ``classification`` is the first; ranking (recommendation)
plugs in as another :class:`Task`."""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Sequence

import numpy as np

from .registry import Registry

TASKS: Registry = Registry("task", name_attr="name")


class Task:
    """The contract of a task (subclass and register with :data:`TASKS`).

    Attributes
    ----------
    metric : str
        The main metric's name (``accuracy``), reported per domain and checkpoint.
    """

    name: ClassVar[str] = ""
    metric: ClassVar[str] = ""

    def make_head(self, feature_dim: int, n_outputs: int):
        """The prediction head ``(B, D) -> (B, K)`` (an ``nn.Module``)."""
        raise NotImplementedError

    def score(self, y: np.ndarray, outputs: np.ndarray) -> float:
        """The main metric of outputs ``(N, K)`` against targets ``(N,)``; NaN for no example or an
        unlabelled domain (targets ``-1``)."""
        raise NotImplementedError

    def label_free_scores(self, outputs: np.ndarray) -> Dict[str, float]:
        """Scores that need no target label (for checkpoint choice), from target outputs ``(N, K)``."""
        raise NotImplementedError

    def snapshot_fields(self, y: np.ndarray, outputs: np.ndarray) -> Dict[str, np.ndarray]:
        """Per-row arrays a feature snapshot stores beside the features."""
        raise NotImplementedError

    def report(self, y: np.ndarray, outputs: np.ndarray, class_names: Sequence[str]) -> Dict[str, Any]:
        """Detailed results on the target test split (stored in the run summary)."""
        raise NotImplementedError


@TASKS.register("classification")
class Classification(Task):
    """K-way classification: a linear head, accuracy, IM/SND label-free scores, confusion matrix."""

    metric = "accuracy"

    def make_head(self, feature_dim: int, n_outputs: int):
        from torch import nn
        return nn.Linear(int(feature_dim), int(n_outputs))

    def score(self, y: np.ndarray, outputs: np.ndarray) -> float:
        from .evaluation.metrics import accuracy
        if not len(y) or np.any(np.asarray(y) < 0):  # no examples, or an unlabelled domain (labels -1)
            return float("nan")
        return accuracy(y, np.asarray(outputs).argmax(1))

    def label_free_scores(self, outputs: np.ndarray) -> Dict[str, float]:
        from .evaluation.metrics import label_free_scores
        return label_free_scores(outputs)

    def snapshot_fields(self, y: np.ndarray, outputs: np.ndarray) -> Dict[str, np.ndarray]:
        return {"labels": np.asarray(y, np.int64), "preds": np.asarray(outputs).argmax(1).astype(np.int64)}

    def report(self, y: np.ndarray, outputs: np.ndarray, class_names: Sequence[str]) -> Dict[str, Any]:
        from .evaluation.metrics import confusion, per_class_accuracy
        if len(y) and np.any(np.asarray(y) < 0):  # unlabelled target: nothing to compare with
            return {"per_class": [], "confusion": []}
        pred = np.asarray(outputs).argmax(1) if len(y) else np.zeros(0, int)
        per_class: List[Dict[str, Any]] = per_class_accuracy(y, pred, list(class_names)).to_dict("records")
        conf = confusion(y, pred, len(class_names)).tolist() if len(pred) else []
        return {"per_class": per_class, "confusion": conf}


@TASKS.register("ranking")
class Ranking(Task):
    """Top-K recommendation of target items to users (cross-domain recommendation): HR@10 and
    NDCG@10 of each user's held-out item against sampled candidates (He et al., WWW 2017). Its runs
    train through :mod:`lepton.training.ranking`; the main metric is NDCG@10."""

    metric = "ndcg@10"
