"""One forward pass serves every reader: per-epoch evaluation, the label-free scores and the feature
snapshots read the same batched, gradient-free pass of an epoch's model (features and logits together).

The loop *requests* its evaluation rows before training; :meth:`InferencePass.at` runs them once per
epoch and caches the outputs, and a reader that needs more rows on some epochs (the recorder's
snapshot sample) passes them as ``extra``: only the rows not computed yet for that epoch are run.
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

    Attributes
    ----------
    named : dict
        Row sets a reader keeps by name (the loop's evaluation rows: ``source``, ``target``,
        ``unlabelled``), so they are drawn once per run.
    """

    def __init__(self, run, batch_size: int = 2048):
        self.run, self.batch_size = run, int(batch_size)
        self.named: Dict[str, np.ndarray] = {}
        self._want: Dict[Tuple[int, str], np.ndarray] = {}
        self._cache: Optional[EpochOutputs] = None

    def request(self, domain: int, split: str, idx: np.ndarray) -> None:
        """Ask for rows ``idx`` (int indices) of ``run.domains[domain]``'s ``split`` in every later pass
        (a later :meth:`at` of the current epoch computes only the rows it lacks)."""
        key, idx = (int(domain), split), np.asarray(idx, np.int64)
        old = self._want.get(key)
        if old is not None and np.isin(idx, old).all():
            return
        self._want[key] = np.union1d(old if old is not None else np.zeros(0, np.int64), idx).astype(np.int64)

    def at(self, epoch: int, extra: Optional[Dict[Tuple[int, str], np.ndarray]] = None) -> EpochOutputs:
        """The pass of the model as it is now, labelled ``epoch``: the requested rows plus ``extra``
        ones (``(domain, split) -> idx``, e.g. a snapshot's on the epochs it is taken).

        Rows are computed once per epoch: a later call with the same ``epoch`` returns the cached
        outputs, computing only rows it did not hold yet. The caller is responsible for calling it
        at the epoch's end, before more training (the loop does).
        """
        if self._cache is None or self._cache.epoch != int(epoch):
            self._cache = EpochOutputs(epoch, {})
        want = dict(self._want)
        for key, idx in (extra or {}).items():
            idx = np.asarray(idx, np.int64)
            want[key] = np.union1d(want[key], idx) if key in want else np.unique(idx)
        for key, idx in want.items():
            have = self._cache.rows.get(key)
            todo = idx if have is None else np.setdiff1d(idx, have[0])
            if have is not None and len(todo) == 0:
                continue
            feats, logits = self._forward(key, todo)
            if have is not None:
                order = np.argsort(np.concatenate([have[0], todo]), kind="stable")
                todo = np.concatenate([have[0], todo])[order]
                feats = np.concatenate([have[1], feats])[order]
                logits = np.concatenate([have[2], logits])[order]
            self._cache.rows[key] = (todo, feats, logits)
        return self._cache

    def _forward(self, key: Tuple[int, str], idx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        d, split = key
        if len(idx) == 0:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
        dom = self.run.domains[d]
        x = (dom.x_test if split == TEST else dom.x_train)[idx]
        feats, logits = batched(self.run.method.infer, x, self.batch_size)
        return feats.reshape(len(idx), -1), logits.reshape(len(idx), -1)

    def invalidate(self) -> None:
        """Forget the cached pass (after loading other weights into the method)."""
        self._cache = None
