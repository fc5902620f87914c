"""The one training loop: every method, seeded, device-aware, with callbacks and a cooperative stop."""
from __future__ import annotations

import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..config import RunConfig
from ..data import Domain, load_domain
from ..data.pairing import harmonise
from ..evaluation.metrics import accuracy, batched, confusion, label_free_scores, per_class_accuracy
from ..methods import METHODS, Method
from .callbacks import Callback
from .runtime import environment, resolve_device, seed_everything


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the message names the loss and the step."""


class StopRequested(Exception):
    """Internal: the cooperative stop flag was seen."""


@dataclass
class RunState:
    """What callbacks see during a run.

    Attributes
    ----------
    config : RunConfig
        With hyper-parameters filled in from the method's defaults.
    method : Method
        The method being trained (``method.features(x)`` gives ``(B, D)`` features).
    domains : list of Domain
        Harmonised ``[source, target, *eval_domains]``.
    harmonisation : dict
        What pairing did (see :func:`lepton.data.pairing.harmonise`).
    device : torch.device
    steps_per_epoch, total_steps : int
    history : list of dict
        One row per finished epoch.
    """

    config: RunConfig
    method: Method
    domains: List[Domain]
    harmonisation: Dict[str, Any]
    device: torch.device
    steps_per_epoch: int
    total_steps: int
    environment: Dict[str, str]
    history: List[Dict[str, Any]] = field(default_factory=list)
    labelled_target_idx: Optional[np.ndarray] = None

    @property
    def source(self) -> Domain:
        return self.domains[0]

    @property
    def target(self) -> Domain:
        return self.domains[1]


@dataclass
class RunResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    status : str
        ``completed``, ``stopped`` or ``failed``.
    error : str
        Why a run failed (empty otherwise).
    checkpoints : dict
        ``selected`` (label-free score), ``last``, ``oracle`` (best sampled target test accuracy,
        shown for comparison only): each ``{"epoch", "score", "source_acc", "target_acc",
        "target_acc_sampled"}``; accuracies on the full test splits (source accuracy of the
        ``selected`` checkpoint only; NaN for the others).
    table : list of dict
        Rows ``{"domain", "role", "split", "checkpoint", "accuracy", "n"}``.
    per_class : list of dict
        Target test per-class accuracy of the selected checkpoint.
    confusion : list of list of int
        Target test confusion matrix ``(K, K)`` of the selected checkpoint.
    states : dict
        ``state_dict`` per checkpoint name (CPU tensors).
    """

    config: RunConfig
    status: str
    error: str = ""
    history: List[Dict[str, Any]] = field(default_factory=list)
    checkpoints: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    table: List[Dict[str, Any]] = field(default_factory=list)
    per_class: List[Dict[str, Any]] = field(default_factory=list)
    confusion: List[List[int]] = field(default_factory=list)
    harmonisation: Dict[str, Any] = field(default_factory=dict)
    environment: Dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    states: Dict[str, Dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    def summary(self) -> Dict[str, Any]:
        """JSON-ready dict of everything but the weights."""
        return {"config": self.config.to_dict(), "status": self.status, "error": self.error,
                "checkpoints": self.checkpoints, "table": self.table, "per_class": self.per_class,
                "confusion": self.confusion, "harmonisation": self.harmonisation,
                "environment": self.environment, "wall_time_s": round(self.wall_time_s, 3),
                "history": self.history}


def prepare(config: RunConfig, data_dir=None, init_state: Optional[Dict[str, torch.Tensor]] = None) -> RunState:
    """Load and harmonise the domains and build a fresh method (no training yet).

    Raises
    ------
    lepton.registry.UnknownNameError
        Unknown domain or method (listing valid names).
    ValueError
        Invalid config or hyper-parameters; :class:`lepton.data.DataError` for unusable data.
    """
    config.validate()
    if config.source == config.target:
        warnings.warn(f"source and target are the same domain ({config.source}); nothing is transferred")
    cls = METHODS.get(config.method)
    hparams = cls.validate_hparams(config.hparams)
    names = [config.source, config.target, *config.eval_domains]
    domains, record = harmonise([load_domain(n, data_dir) for n in names])
    src, tgt = domains[0], domains[1]
    device = resolve_device(config.device)
    n_steps_data = len(tgt.y_train) if cls.target_labels == "all" else len(src.y_train)
    steps_per_epoch = max(1, math.ceil(n_steps_data / config.batch_size))
    total = steps_per_epoch * config.epochs
    config = RunConfig.from_dict({**config.to_dict(), "hparams": hparams})
    seed_everything(config.seed)
    method = cls(src.input_shape, src.n_classes, hparams, device=device, total_steps=total,
                 encoder=config.encoder, amp=device.type == "cuda")
    if init_state is not None:
        method.load_encoder(init_state)
    run = RunState(config, method, domains, record, device, steps_per_epoch, total, environment(device))
    if cls.target_labels == "few":
        run.labelled_target_idx = k_shot_indices(tgt.y_train, int(hparams["k"]), config.seed, tgt)
    elif cls.target_labels == "all":
        run.labelled_target_idx = np.arange(len(tgt.y_train))
    return run


def k_shot_indices(y: np.ndarray, k: int, seed: int, domain: Optional[Domain] = None) -> np.ndarray:
    """Draw ``k`` examples of each class (seeded, without replacement).

    Parameters
    ----------
    y : np.ndarray
        int64 ``(N,)`` labels of the target train split.
    k : int
        Examples per class.

    Returns
    -------
    np.ndarray
        int64 ``(k * K,)`` sorted indices.

    Raises
    ------
    ValueError
        If a class has fewer than ``k`` examples (naming the class and its count).
    """
    rng = np.random.default_rng(seed)
    out = []
    names = domain.class_names if domain is not None else None
    for c in range(int(y.max()) + 1 if len(y) else 0):
        idx = np.flatnonzero(y == c)
        if len(idx) < k:
            cname = names[c] if names else str(c)
            raise ValueError(f"k={k} labelled target examples per class asked for, but class {cname!r} has only "
                             f"{len(idx)} in the target training split; lower k")
        out.append(rng.choice(idx, k, replace=False))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


class _Cycler:
    """Endless seeded shuffled batches of indices ``0..n-1``."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator):
        self.n, self.bs, self.gen, self.perm, self.pos = n, batch_size, gen, None, n

    def next(self) -> torch.Tensor:
        if self.pos >= self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
        b = self.perm[self.pos:self.pos + self.bs]
        self.pos += len(b)
        return b


def fit(config: RunConfig, callbacks: Sequence[Callback] = (), stop_event: Optional[threading.Event] = None,
        data_dir=None, init_state: Optional[Dict[str, torch.Tensor]] = None, run: Optional[RunState] = None) -> RunResult:
    """Train ``config.method`` from ``config.source`` to ``config.target`` and evaluate honestly.

    Each epoch passes once over the source training split in seeded shuffled batches (the last
    one may be partial, even of size 1) while the target split is cycled independently. After
    each epoch the loop evaluates source and target test accuracy and a label-free score on (up
    to ``eval_cap``) unlabelled target training examples. The checkpoint the label-free score
    picks is the run's model; the last one and the oracle-best one (by target test accuracy,
    for comparison only) are reported beside it. Target labels reach training only in methods
    that declare them (``finetune``: k per class; ``target-only``: the oracle).

    Parameters
    ----------
    config : RunConfig
    callbacks : sequence of Callback
    stop_event : threading.Event, optional
        Set it to stop cooperatively after the current step; the result is ``stopped``.
    data_dir : path-like, optional
        Benchmark data folder.
    init_state : dict, optional
        A stored ``state_dict`` whose encoder and transfer module initialise the model.
    run : RunState, optional
        A prepared run (from :func:`prepare`), to reuse.

    Returns
    -------
    RunResult
        ``failed`` with a message for a non-finite loss (naming the loss and step).

    Raises
    ------
    ValueError, KeyError, lepton.data.DataError
        Bad configuration or data, before training starts.
    """
    t0 = time.perf_counter()
    run = run or prepare(config, data_dir, init_state)
    cfg = run.config
    status, error = "completed", ""
    snaps: Dict[str, Dict[str, Any]] = {}
    for cb in callbacks:
        cb.on_run_start(run)
    try:
        _train(run, callbacks, stop_event, snaps)
    except StopRequested:
        status = "stopped"
    except NonFiniteLossError as e:
        status, error = "failed", str(e)
    except BaseException as e:
        result = RunResult(cfg, "failed", f"{type(e).__name__}: {e}", run.history, harmonisation=run.harmonisation,
                           environment=run.environment, wall_time_s=time.perf_counter() - t0)
        for cb in callbacks:
            cb.on_run_end(run, result)
        raise
    result = _finish(run, snaps, status, error)
    result.wall_time_s = time.perf_counter() - t0
    for cb in callbacks:
        cb.on_run_end(run, result)
    return result


def _tensors(run: RunState):
    dev = run.device
    src, tgt = run.source, run.target
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)
    d = {"xs": t(src.x_train), "ys": t(src.y_train), "xt": t(tgt.x_train)}
    if run.labelled_target_idx is not None:
        d["xl"], d["yl"] = t(tgt.x_train[run.labelled_target_idx]), t(tgt.y_train[run.labelled_target_idx])
    return d


def _train(run: RunState, callbacks, stop_event, snaps) -> None:
    cfg, method = run.config, run.method
    data = _tensors(run)
    gen = torch.Generator().manual_seed(cfg.seed)
    bs = cfg.batch_size
    oracle_all = method.target_labels == "all"
    main = _Cycler(len(data["yl"]) if oracle_all else len(data["ys"]), bs, gen)
    tgt_c = _Cycler(len(data["xt"]), bs, gen)
    src_c = _Cycler(len(data["ys"]), bs, gen)
    lab_c = _Cycler(len(data["yl"]), bs, gen) if "yl" in data and not oracle_all else None
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        method.train()
        sums: Dict[str, float] = {}
        for _ in range(run.steps_per_epoch):
            if stop_event is not None and stop_event.is_set():
                raise StopRequested
            batch = _batch(data, main, src_c, tgt_c, lab_c, oracle_all)
            method.step = step
            losses = method.update(batch)
            step += 1
            for k, v in losses.items():
                if not math.isfinite(v):
                    raise NonFiniteLossError(f"loss {k!r} became {v} at step {step} (epoch {epoch}) of "
                                             f"{cfg.method}; lower the learning rate or the loss weight")
                sums[k] = sums.get(k, 0.0) + v
            for cb in callbacks:
                cb.on_step_end(run, step, epoch, losses)
        method.step = step
        row = evaluate_epoch(run, epoch, {k: v / run.steps_per_epoch for k, v in sums.items()})
        run.history.append(row)
        _snapshot(run, row, snaps)
        for cb in callbacks:
            cb.on_epoch_end(run, epoch, row)


def _batch(data, main, src_c, tgt_c, lab_c, oracle_all):
    if oracle_all:
        i = main.next()
        return {"xl": data["xl"][i], "yl": data["yl"][i], "xs": data["xs"][src_c.next()],
                "ys": data["ys"][src_c.next()][:0], "xt": data["xt"][i]}
    i = main.next()
    b = {"xs": data["xs"][i], "ys": data["ys"][i], "xt": data["xt"][tgt_c.next()]}
    if lab_c is not None:
        j = lab_c.next()
        b["xl"], b["yl"] = data["xl"][j], data["yl"][j]
    return b


def _cap(n: int, cap: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of at most ``cap`` indices of ``0..n-1`` (all of them if ``n <= cap``)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def _capped_accuracy(run: RunState, dom: Domain) -> float:
    if len(dom.y_test) == 0:
        return float("nan")
    idx = _cap(len(dom.y_test), run.config.eval_cap, run.config.seed)
    return accuracy(dom.y_test[idx], batched(run.method.predict, dom.x_test[idx]).argmax(1))


def evaluate_epoch(run: RunState, epoch: int, losses: Dict[str, float]) -> Dict[str, Any]:
    """Evaluate the current model: source/target test accuracy and the label-free scores.

    Per-epoch numbers use a fixed seeded sample of at most ``eval_cap`` test examples per domain
    (and of unlabelled target *training* examples for the label-free scores); the final table
    of :func:`fit` evaluates the whole test splits.

    Returns
    -------
    dict
        ``epoch``, ``source_acc``, ``target_acc``, ``score`` (the configured selection score),
        ``scores`` (all label-free scores), ``losses`` (epoch means), ``time``.
    """
    m = run.method
    src, tgt = run.source, run.target
    sacc, tacc = _capped_accuracy(run, src), _capped_accuracy(run, tgt)
    idx = _cap(len(tgt.y_train), run.config.eval_cap, run.config.seed)
    scores = label_free_scores(batched(m.predict, tgt.x_train[idx]))
    scores["source-acc"] = sacc
    return {"epoch": epoch, "source_acc": sacc, "target_acc": tacc, "score": scores[run.config.select],
            "scores": scores, "losses": losses, "time": time.time()}


def _snapshot(run: RunState, row: Dict[str, Any], snaps: Dict[str, Dict[str, Any]]) -> None:
    state = {k: v.detach().cpu().clone() for k, v in run.method.state_dict().items()}
    snaps["last"] = {"row": row, "state": state}
    for name, key in (("selected", "score"), ("oracle", "target_acc")):
        v = row[key]
        best = snaps.get(name)
        if best is None or (math.isfinite(v) and not (v <= best["row"][key])):
            snaps[name] = {"row": row, "state": state}


def _finish(run: RunState, snaps, status: str, error: str) -> RunResult:
    cfg, m = run.config, run.method
    res = RunResult(cfg, status, error, run.history, harmonisation=run.harmonisation, environment=run.environment)
    if "last" not in snaps:
        return res
    for name in ("selected", "last", "oracle"):
        s = snaps[name]
        r = s["row"]
        res.checkpoints[name] = {"epoch": r["epoch"], "score": r["score"], "source_acc": float("nan"),
                                 "target_acc": float("nan"), "target_acc_sampled": r["target_acc"]}
        res.states[name] = s["state"]
    roles = ["source", "target"] + ["eval"] * (len(run.domains) - 2)
    full = lambda dom: accuracy(dom.y_test, batched(m.predict, dom.x_test).argmax(1)) if len(dom.y_test) else float("nan")
    rows = []
    for ck in ("last", "oracle", "selected"):  # end with the selected state loaded
        m.load_state_dict(snaps[ck]["state"])
        for dom, role in zip(run.domains, roles):
            if role == "target" or ck == "selected":
                rows.append({"domain": dom.name, "role": role, "split": "test", "checkpoint": ck,
                             "accuracy": full(dom), "n": int(len(dom.y_test))})
                if role in ("source", "target"):
                    res.checkpoints[ck][f"{role}_acc"] = rows[-1]["accuracy"]
    order = {"selected": 0, "last": 1, "oracle": 2}
    res.table = sorted(rows, key=lambda r: (roles.index(r["role"]), r["domain"], order[r["checkpoint"]]))
    pred = batched(m.predict, run.target.x_test).argmax(1) if len(run.target.y_test) else np.zeros(0, int)
    res.per_class = per_class_accuracy(run.target.y_test, pred, run.target.class_names).to_dict("records")
    res.confusion = confusion(run.target.y_test, pred, run.target.n_classes).tolist() if len(pred) else []
    return res
