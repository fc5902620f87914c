"""KBRecorder: the training-loop callback that stores a run in the knowledge base. It lives with
training because it runs the model (feature snapshots); the knowledge base only stores."""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..data.sampling import stratified_sample
from ..kb import KBError, KnowledgeBase
from ..kb.procs import HEARTBEAT_S
from .callbacks import Callback
from .inference import TEST, InferencePass

DEFAULT_CHECKPOINTS = ("selected", "last")  # the oracle's weights only when asked
F16_MAX = 6.0e4  # float16's largest finite value is 65504


class KBRecorder(Callback):
    """Store a run while it trains: config, per-epoch history, feature snapshots, checkpoints.

    Feature snapshots hold ``method.features`` of a class-stratified sample (at most
    ``feature_cap`` per domain, from the harmonised TEST split, the same rows every time) of every
    domain of the run, with labels, predictions and domain ids: at epoch 0 (before training), every
    ``snapshot_every`` epochs and at the last epoch (for a stopped run, at the last finished epoch).

    Parameters
    ----------
    kb : KnowledgeBase, optional
        Default: ``KnowledgeBase()`` at :func:`lepton.kb.default_home`.
    feature_cap : int
        Largest feature sample per domain; 0 stores no features.
    snapshot_every : int, optional
        Default ``max(1, epochs // 5)``.
    checkpoints : sequence of str
        Checkpoints stored (``selected``, ``last``, ``oracle``); checkpoints of the same epoch
        share one file. Feature snapshots are stored as float16 (about 3 significant digits,
        invisible on a map) unless a value is too large for it.

    Attributes
    ----------
    run_id : str or None
        Set in ``on_run_start``.

    Raises
    ------
    KBError
        From the hooks when a write fails (e.g. a full disk); the run is marked ``failed`` with
        the message first, so the training loop stops and other runs stay intact.
    """

    def __init__(self, kb: Optional[KnowledgeBase] = None, feature_cap: int = 2000,
                 snapshot_every: Optional[int] = None, checkpoints: Sequence[str] = DEFAULT_CHECKPOINTS):
        from ..kb import CHECKPOINTS
        bad = sorted(set(checkpoints) - set(CHECKPOINTS))
        if bad or not checkpoints:
            raise ValueError(f"unknown checkpoint {', '.join(bad) or '(none given)'}; store any of "
                             f"{', '.join(CHECKPOINTS)}")
        self.checkpoints = tuple(checkpoints)
        if int(feature_cap) < 0:
            raise ValueError(f"feature_cap must be >= 0, got {feature_cap}")
        if snapshot_every is not None and int(snapshot_every) < 1:
            raise ValueError(f"snapshot_every must be >= 1, got {snapshot_every}")
        self.kb = kb if kb is not None else KnowledgeBase()
        self.feature_cap, self.snapshot_every = int(feature_cap), snapshot_every
        self.run_id: Optional[str] = None
        self.snapshots: List[int] = []
        self._every = 1
        self._sample: List[np.ndarray] = []
        self._beat = 0.0
        self._failed = False

    # ----- hooks ------------------------------------------------------------------------------
    def on_run_start(self, run) -> None:
        cfg = run.config
        self._every = int(self.snapshot_every or max(1, cfg.epochs // 5))
        self._sample = [stratified_sample(d.y_test, self.feature_cap, cfg.seed) if self.feature_cap else
                        np.zeros(0, np.int64) for d in run.domains]
        src = run.source
        meta = {"environment": dict(run.environment), "harmonisation": run.harmonisation,
                "domains": [d.name for d in run.domains], "class_names": list(src.class_names),
                "input_shape": list(src.input_shape), "n_classes": src.n_classes, "roles": list(run.roles),
                "modality": src.modality, "task": cfg.task, "model": dict(run.method.net.spec),
                "notes": [n["message"] for n in run.notes],
                "features": {"cap_per_domain": self.feature_cap, "split": "test", "every": self._every,
                             "n_per_domain": [int(len(s)) for s in self._sample]},
                "device": str(run.device), "seed": cfg.seed, "steps_per_epoch": run.steps_per_epoch}
        self.run_id = self.kb.begin_run(cfg.to_dict(), meta, cfg.init_from)  # the config is the lineage
        run.run_id = self.run_id
        self._beat = time.monotonic()
        self._guard(lambda: self._snapshot(run, 0))

    def on_step_end(self, run, step, epoch, losses) -> None:
        if self.run_id and time.monotonic() - self._beat > HEARTBEAT_S:
            self._beat = time.monotonic()
            self.kb.beat(self.run_id)

    def on_epoch_end(self, run, epoch, metrics) -> None:
        def record() -> None:
            self.kb.write_history(self.run_id, run.history)
            if epoch % self._every == 0 or epoch == run.config.epochs:
                self._snapshot(run, epoch)
            self.kb.beat(self.run_id, epochs_done=epoch, target_acc_last=_finite(metrics.get("target_acc")))
        self._guard(record)
        self._beat = time.monotonic()

    def on_run_end(self, run, result) -> None:
        if self.run_id is None or self._failed:
            return
        def finish() -> None:
            last = result.checkpoints.get("last", {}).get("epoch")
            if result.status == "stopped" and last and last not in self.snapshots and "last" in result.states:
                self._snapshot_state(run, int(last), result.states["last"], result.states.get("selected"))
            self.kb.finish_run(self.run_id, result, keep=self.checkpoints)
        self._guard(finish)

    # ----- helpers ----------------------------------------------------------------------------
    def _guard(self, fn) -> None:
        try:
            fn()
        except KBError as e:
            self._failed = True
            try:
                self.kb.mark_failed(self.run_id, str(e))
            except Exception:  # the index may be unwritable too; the message still reaches the caller
                pass
            raise

    def _snapshot_state(self, run, epoch: int, state, restore) -> None:
        m = run.method
        m.load_state_dict(state)
        run.inference.invalidate()
        try:
            self._snapshot(run, epoch)
        finally:
            run.inference.invalidate()
            if restore is not None:
                m.load_state_dict(restore)

    def _snapshot(self, run, epoch: int) -> None:
        if not self.feature_cap:
            return
        arrays = features_snapshot(run, self._sample, epoch)
        f = arrays["features"]
        if f.size and np.isfinite(f).all() and np.abs(f).max() < F16_MAX:
            arrays["features"] = f.astype(np.float16)  # half the bytes; read back as float32
        arrays["epoch"] = np.int64(epoch)
        self.kb.write_features(self.run_id, epoch, arrays)
        self.snapshots.append(epoch)


def features_snapshot(run, sample: List[np.ndarray], epoch: int = 0) -> Dict[str, Any]:
    """Features, labels, predictions and domain ids of the sampled test rows of every domain, read
    from the run's shared forward pass of ``epoch`` (:class:`lepton.training.inference.InferencePass`:
    only rows that pass has not computed yet are run).

    Parameters
    ----------
    run : lepton.training.RunState
    sample : list of np.ndarray
        int64 test-split indices per domain (``run.domains`` order).
    epoch : int
        The epoch the method's current weights belong to.

    Returns
    -------
    dict
        ``features`` (N, D) float32, ``labels``/``preds``/``domain``/``index`` (N,) int64,
        ``domain_names``/``class_names`` unicode arrays.
    """
    if run.inference is None:
        run.inference = InferencePass(run)
    out = run.inference.at(epoch, {(i, TEST): idx for i, idx in enumerate(sample) if len(idx)})
    feats, labels, preds, dom, index = [], [], [], [], []
    for i, (d, idx) in enumerate(zip(run.domains, sample)):
        if len(idx) == 0:
            continue
        f, logits = out.take(i, TEST, idx)
        feats.append(f)
        fields = run.task.snapshot_fields(d.y_test[idx], logits)
        preds.append(fields["preds"])
        labels.append(fields["labels"])
        dom.append(np.full(len(idx), i, np.int64))
        index.append(idx.astype(np.int64))
    cat = lambda a, shape: np.concatenate(a) if a else np.zeros(shape)  # noqa: E731
    return {"features": cat(feats, (0, 0)).astype(np.float32), "labels": cat(labels, 0).astype(np.int64),
            "preds": cat(preds, 0).astype(np.int64), "domain": cat(dom, 0).astype(np.int64),
            "index": cat(index, 0).astype(np.int64),
            "domain_names": np.array([d.name for d in run.domains], dtype=str),
            "domain_roles": np.array(list(run.roles), dtype=str),
            "class_names": np.array(list(run.source.class_names), dtype=str)}


def _finite(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None
