"""One forward pass serves every reader: per-epoch evaluation, the label-free scores and the feature
snapshots read the same batched, gradient-free pass of an epoch's model (features and logits together).

Readers *request* rows before training (the loop its evaluation rows, the recorder its snapshot rows);
:meth:`InferencePass.at` then runs the union of the requested rows once per epoch and caches it, so a
second reader of the same epoch costs nothing.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from ..evaluation.metrics import batched

TEST, TRAIN = "test", "train"


class EpochOutputs:
    """Features and logits of the requested rows of every domain at one epoch.

    Attributes
    ----------
    epoch : int
    rows : dict
        ``(domain_index, split) -> (idx, features, logits)``: sorted int64 row indices ``(n,)``,
        float32 ``(n, D)`` and ``(n, K)``.
    """

    def __init__(self, epoch: int, rows: Dict[Tuple[int, str], Tuple[np.ndarray, np.ndarray, np.ndarray]]):
        self.epoch, self.rows = int(epoch), rows

    def take(self, domain: int, split: str, idx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Features ``(len(idx), D)`` and logits ``(len(idx), K)`` of rows ``idx`` (all requested before).

        Raises
        ------
        KeyError
            Rows that were not requested (a reader must :meth:`InferencePass.request` them first).
        """
        have, feats, logits = self.rows[(domain, split)]
        pos = np.searchsorted(have, idx)
        if len(idx) and (pos.max() >= len(have) or not np.array_equal(have[pos], idx)):
            raise KeyError(f"rows of domain {domain} ({split}) were not requested before the pass")
        return feats[pos], logits[pos]

    def covers(self, domain: int, split: str, n: int) -> bool:
        """Whether the pass holds all ``n`` rows of a split (so a full evaluation can reuse it)."""
        got = self.rows.get((domain, split))
        return got is not None and len(got[0]) == n


class InferencePass:
    """The per-epoch inference of a run, shared by every reader (see the module docstring).

    Parameters
    ----------
    run : lepton.training.RunState
        Its ``method.infer`` and ``domains`` are used.
    batch_size : int
        Rows per forward pass (no autograd, so large batches are cheap).
    """

    def __init__(self, run, batch_size: int = 2048):
        self.run, self.batch_size = run, int(batch_size)
        self._want: Dict[Tuple[int, str], np.ndarray] = {}
        self._cache: Optional[EpochOutputs] = None

    def request(self, domain: int, split: str, idx: np.ndarray) -> None:
        """Ask for rows ``idx`` (int indices) of ``run.domains[domain]``'s ``split`` in every later pass
        (rows already asked for change nothing; new ones drop the cached pass)."""
        key, idx = (int(domain), split), np.asarray(idx, np.int64)
        old = self._want.get(key)
        if old is not None and np.isin(idx, old).all():
            return
        self._want[key] = np.union1d(old if old is not None else np.zeros(0, np.int64), idx).astype(np.int64)
        self._cache = None

    def at(self, epoch: int) -> EpochOutputs:
        """The pass of the model as it is now, labelled ``epoch`` (computed once per epoch).

        The caller is responsible for calling it at the epoch's end, before more training (the
        loop does); a later call with the same ``epoch`` returns the cached outputs.
        """
        if self._cache is not None and self._cache.epoch == int(epoch):
            return self._cache
        rows = {}
        for (d, split), idx in self._want.items():
            dom = self.run.domains[d]
            if len(idx) == 0:
                rows[(d, split)] = (idx, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32))
                continue
            x = (dom.x_test if split == TEST else dom.x_train)[idx]
            feats, logits = batched(self.run.method.infer, x, self.batch_size)
            rows[(d, split)] = (idx, feats.reshape(len(idx), -1), logits.reshape(len(idx), -1))
        self._cache = EpochOutputs(epoch, rows)
        return self._cache

    def invalidate(self) -> None:
        """Forget the cached pass (after loading other weights into the method)."""
        self._cache = None
