"""``train(config)``: the one way to run. Plan, fit and store a config end to end; the CLI, the
app's background jobs and every pipeline stage call it."""
from __future__ import annotations

import threading
from typing import Optional, Sequence

from ..config import RunConfig
from .callbacks import Callback
from .loop import RunResult, fit
from .plan import plan


def train(config: RunConfig, kb=None, callbacks: Sequence[Callback] = (), stop_event: Optional[threading.Event] = None,
          data_dir=None, record: bool = True, feature_cap: int = 2000,
          snapshot_every: Optional[int] = None, checkpoints: Sequence[str] = ("selected", "last")) -> RunResult:
    """Run ``config`` end to end: :func:`lepton.training.plan` -> :func:`lepton.training.fit` ->
    the knowledge base.

    Parameters
    ----------
    config : RunConfig
        ``init_from`` (a run id or unique prefix) names the stored run whose encoder starts this
        one; it is resolved against ``kb`` and stored as the run's parent.
    kb : lepton.kb.KnowledgeBase, optional
        Where the run is stored and ``init_from`` is read (default: the user's knowledge base
        when ``record`` or ``init_from`` needs one).
    callbacks : sequence of Callback
        Progress listeners (called after the recorder, so they see the run id).
    stop_event : threading.Event, optional
        Set it to stop after the current step; the run is stored as ``stopped``.
    data_dir : path-like, optional
    record : bool
        Store the run (config, history, feature snapshots, checkpoints).
    feature_cap, snapshot_every : int
        Feature snapshot rows per domain and epochs between snapshots (see
        :class:`lepton.training.recorder.KBRecorder`).
    checkpoints : sequence of str
        Checkpoints to store: ``selected`` (the run's model), ``last``, ``oracle`` (the epoch the
        target labels would pick; stored only when asked).

    Returns
    -------
    RunResult
        With ``run_id`` set when stored and ``plan`` holding the trained method.

    Raises
    ------
    ValueError, KeyError, lepton.data.DataError, lepton.kb.KBError
        Before training: see :func:`lepton.training.plan`.
    """
    if kb is None and (record or config.init_from):
        from ..kb import KnowledgeBase
        kb = KnowledgeBase()
    run = plan(config, data_dir, kb)
    cbs = list(callbacks)
    recorder = None
    if record:
        from .ranking import RankingRecorder, RankingState
        from .recorder import KBRecorder
        recorder = (RankingRecorder(kb, checkpoints, feature_cap) if isinstance(run, RankingState) else
                    KBRecorder(kb, feature_cap=feature_cap, snapshot_every=snapshot_every, checkpoints=checkpoints))
        cbs.insert(0, recorder)
    result = fit(run, cbs, stop_event)
    result.run_id = recorder.run_id if recorder is not None else None
    return result
