"""Ranking runs (cross-domain recommendation): the plan, the loop and the stored result.

:func:`lepton.training.plan`, :func:`~lepton.training.fit` and :func:`~lepton.training.train` hand a
run whose method is a recommender (:mod:`lepton.methods.recommend`) to :func:`plan_ranking` and
:func:`fit_ranking`, so the CLI and the knowledge base reach it the same way as a classification run.
Each step trains on one batch of ``(user, positive, sampled item)`` triples per domain the method
needs; after each epoch the model ranks every warm target user's validation item (their latest
training positive, held out: the label-free checkpoint choice, no test item involved) and, for the
record, their test item. Results are HR@10 and NDCG@10 for all evaluated users, the cold-start users
and the others.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..config import RunConfig
from ..data import load_domain
from ..data.interactions import RankingData, pair_interactions
from ..data.sampling import Cycler, batches_per_pass
from ..evaluation.ranking import rank_of_first, ranking_summary
from ..methods import METHODS, SOURCE, seeded_init
from ..methods.recommend import RankBatch, Recommender
from .callbacks import Callback
from .runtime import environment, resolve_device

K = 10
GROUPS = ("all", "cold-start", "warm")


def is_ranking(config: RunConfig) -> bool:
    """Whether ``config``'s method is a recommender (the ranking task)."""
    return getattr(METHODS.get(config.method), "task", "classification") == "ranking"


@dataclass
class RankingState:
    """A planned ranking run (the ranking counterpart of :class:`lepton.training.RunState`)."""

    config: RunConfig
    method: Recommender
    data: RankingData
    device: torch.device
    steps_per_epoch: int
    total_steps: int
    environment: Dict[str, str]
    notes: List[Dict[str, str]] = field(default_factory=list)
    history: List[Dict[str, Any]] = field(default_factory=list)
    run_id: Optional[str] = None
    steps_done: int = 0

    @property
    def harmonisation(self) -> Dict[str, Any]:
        return self.data.record


def plan_ranking(config: RunConfig, data_dir=None) -> RankingState:
    """Load and pair the interaction domains of ``config`` and build its recommender.

    Raises
    ------
    lepton.data.DataError
        Domains that are not interaction domains, no shared users, too few interactions, a
        ``cold_start_k`` no user can give (see :func:`lepton.data.interactions.pair_interactions`).
    ValueError
        Bad hyper-parameters, evaluation domains or ``init_from`` (not supported for ranking).
    """
    from .plan import _note, resolve_epochs
    config.validate()
    cls = METHODS.get(config.method)
    hp = cls.validate_hparams(config.hparams, config.defaults_version)
    if config.eval_domains:
        raise ValueError("a ranking run evaluates its target only; drop --eval")
    if config.init_from:
        raise ValueError("init_from is not supported for recommendation runs yet")
    if config.target in config.sources:
        raise ValueError(f"the target {config.target!r} is also a source domain; pick another target")
    doms = [load_domain(n, data_dir) for n in (*config.sources, config.target)]
    data = pair_interactions(doms[:-1], doms[-1], hp["positive_rating"], int(hp["cold_start_k"]),
                             hp["cold_start_share"], int(hp["n_negatives"]))
    notes: List[Dict[str, str]] = []
    for msg in data.record["notes"]:
        _note(notes, "info", msg)
    if not len(data.val) and cls.trains:
        _note(notes, "warning", "no warm target user has a validation item (every evaluated user is cold-start or has "
              "two positives only), so no label-free checkpoint choice is possible: the run's model is its last epoch")
    n_main = max(len(data.train_t), len(data.train_s) if SOURCE in cls.needs else 0)
    per_epoch = batches_per_pass(n_main, config.batch_size) if cls.trains else 1
    epochs = resolve_epochs(config, per_epoch) if cls.trains else 1
    total = per_epoch * epochs if config.steps is None or not cls.trains else config.steps
    _note(notes, "info", f"training budget: {total:,} optimisation steps ({epochs} epoch(s) of {per_epoch} batches of "
          f"{config.batch_size} over {n_main:,} positives)" if cls.trains else f"{config.method} does not train")
    device = resolve_device(config.device)
    config = RunConfig.from_dict({**config.to_dict(), "hparams": hp, "epochs": epochs, "task": "ranking"})
    n_u, n_s, n_t = data.n_users, len(data.items_s), len(data.items_t)
    with seeded_init(config.seed):
        method = cls(n_u, n_s, n_t, hp, device=device, total_steps=total, seed=config.seed)
    method.on_ranking_data(data)
    return RankingState(config, method, data, device, per_epoch, total, environment(device), notes)


def evaluate(method: Recommender, users: np.ndarray, candidates: np.ndarray, items_all: int,
             seen: Sequence[np.ndarray], items: Optional[np.ndarray] = None) -> np.ndarray:
    """0-based ranks ``(U,)`` of each user's held-out item: among its sampled candidates, or (no
    candidates, full ranking) among all target items but the user's training positives."""
    if candidates.shape[1]:
        return rank_of_first(method.scores(users, candidates))
    ranks = np.empty(len(users), np.int64)
    everything = np.arange(items_all)
    for r, (u, i) in enumerate(zip(users, items)):
        cand = np.r_[i, np.setdiff1d(everything, np.r_[seen[u], i])]
        ranks[r] = rank_of_first(method.scores(np.array([u]), cand[None]))[0]
    return ranks


def _test_ranks(run: RankingState) -> np.ndarray:
    d = run.data
    return evaluate(run.method, d.test_users, d.candidates, len(d.items_t), d.seen_t, d.test_items)


def _groups(ranks: np.ndarray, cold: np.ndarray) -> Dict[str, Dict[str, float]]:
    return {"all": ranking_summary(ranks, K), "cold-start": ranking_summary(ranks[cold], K),
            "warm": ranking_summary(ranks[~cold], K)}


def _epoch_row(run: RankingState, epoch: int, losses: Dict[str, float]) -> Dict[str, Any]:
    d = run.data
    run.method.eval()
    val = evaluate(run.method, d.val[:, 0], d.val_candidates, len(d.items_t), d.seen_t, d.val[:, 1])
    test = _groups(_test_ranks(run), d.cold)
    run.method.train()
    score = ranking_summary(val, K)[f"ndcg@{K}"]
    return {"epoch": epoch, "losses": losses, "score": score, "scores": {"val-ndcg@10": score},
            "source_acc": float("nan"), "target_acc": test["all"][f"ndcg@{K}"],
            "target_cold": test["cold-start"][f"ndcg@{K}"], "groups": test, "time": time.time()}


def fit_ranking(run: RankingState, callbacks: Sequence[Callback] = (), stop_event: Optional[threading.Event] = None):
    """Train a planned ranking run; the checkpoint with the best validation NDCG@10 is its model.

    Returns
    -------
    lepton.training.RunResult
        ``checkpoints`` hold NDCG@10 of all test users as ``target_acc`` (the task's main metric)
        and ``hr@10``/``ndcg@10`` per user group; ``table`` rows ``{"domain", "role", "split",
        "checkpoint", "users", "hr@10", "ndcg@10", "n"}``; ``task`` ``ranking``.
    """
    from .loop import NonFiniteLossError, RunResult, close_run
    t0 = time.perf_counter()
    cfg, m, d = run.config, run.method, run.data
    for cb in callbacks:
        cb.on_run_start(run)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = run.device
    streams = {"target": torch.as_tensor(d.train_t, device=dev), "source": torch.as_tensor(d.train_s, device=dev)}
    n_items = {"target": len(d.items_t), "source": len(d.items_s)}
    use = ["target"] + (["source"] if SOURCE in m.needs else [])
    cyc = {k: Cycler(len(streams[k]), cfg.batch_size, gen) for k in use}
    status, error, snaps = "completed", "", {}
    step = 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            sums: Dict[str, float] = {}
            for _ in range(min(run.steps_per_epoch, run.total_steps - step) if m.trains else 0):
                if stop_event is not None and stop_event.is_set():
                    raise _Stop
                trip = {}
                for k in use:
                    pos = streams[k][cyc[k].next().to(dev)]
                    neg = torch.randint(n_items[k], (len(pos),), generator=gen).to(dev)
                    trip[k] = torch.cat([pos, neg[:, None]], 1)
                losses = m.update(RankBatch(trip.get("source"), trip["target"]), step)
                step += 1
                run.steps_done = step
                for k, v in losses.items():
                    if not math.isfinite(v):
                        raise NonFiniteLossError(f"loss {k!r} became {v} at step {step} of {cfg.method}; lower the "
                                                 "learning rate")
                    sums[k] = sums.get(k, 0.0) + v / run.steps_per_epoch
                for cb in callbacks:
                    cb.on_step_end(run, step, epoch, losses)
            row = _epoch_row(run, epoch, sums)
            run.history.append(row)
            state = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
            snaps["last"] = (row, state)
            last_wins = m.select_last or not len(d.val)  # nothing label-free to choose by: the last epoch
            for name, key in (("selected", "score"), ("oracle", "target_acc")):
                if name not in snaps or row[key] > snaps[name][0][key] or (name == "selected" and last_wins):
                    snaps[name] = (row, state)
            for cb in callbacks:
                cb.on_epoch_end(run, epoch, row)
    except _Stop:
        status = "stopped"
    except NonFiniteLossError as e:
        status, error = "failed", str(e)
    except BaseException as e:  # the store still learns the run failed, then the error goes on
        res = RunResult(cfg, "failed", f"{type(e).__name__}: {e}", run.history, harmonisation=d.record,
                        environment=run.environment, plan=run)
        close_run(run, res, t0, callbacks)
        raise
    res = RunResult(cfg, status, error, run.history, harmonisation=d.record, environment=run.environment, plan=run)
    table = []
    for ck in ("selected", "last", "oracle"):
        if ck not in snaps:
            continue
        row, state = snaps[ck]
        groups = row["groups"]  # the epoch's own test evaluation: no second pass with its weights
        res.states[ck] = state
        res.checkpoints[ck] = {"epoch": row["epoch"], "score": row["score"], "source_acc": float("nan"),
                               "target_acc": groups["all"][f"ndcg@{K}"], "groups": groups}
        for g in GROUPS:
            table.append({"domain": d.record["target"], "role": "target", "split": "test", "checkpoint": ck,
                          "users": g, **groups[g]})
    if "selected" in snaps:
        m.load_state_dict(snaps["selected"][1])
    res.table = table
    return close_run(run, res, t0, callbacks)


class _Stop(Exception):
    pass


class RankingRecorder(Callback):
    """Store a ranking run in the knowledge base: config, history, result, the selected
    checkpoint's user and item embeddings (a feature snapshot for the map) and each evaluated user's
    top-10 (``recommendations.npz``)."""

    def __init__(self, kb, checkpoints: Sequence[str] = ("selected", "last"), feature_cap: int = 2000):
        self.kb, self.checkpoints, self.cap, self.run_id = kb, tuple(checkpoints), int(feature_cap), None

    def on_run_start(self, run) -> None:
        d = run.data
        meta = {"environment": dict(run.environment), "harmonisation": d.record, "task": "ranking",
                "domains": [*d.record["sources"], d.record["target"]],
                "roles": ["source"] * len(d.record["sources"]) + ["target"], "modality": "interactions",
                "notes": [n["message"] for n in run.notes], "device": str(run.device), "seed": run.config.seed,
                "steps_per_epoch": run.steps_per_epoch, "class_names": [], "n_classes": 0,
                "model": {"kind": run.config.method, "feature_dim": int(run.config.hparams["feature_dim"])}}
        self.run_id = self.kb.begin_run(run.config.to_dict(), meta, None)
        run.run_id = self.run_id

    def on_epoch_end(self, run, epoch, metrics) -> None:
        self.kb.write_history(self.run_id, run.history)
        self.kb.beat(self.run_id, epochs_done=epoch)

    def on_run_end(self, run, result) -> None:
        if self.run_id is None:
            return
        if "selected" in result.checkpoints:  # fit_ranking left the selected weights loaded
            if self.cap and run.method.trains:
                self.kb.write_features(self.run_id, result.checkpoints["selected"]["epoch"],
                                       embedding_snapshot(run, self.cap))
            self.kb.write_arrays(self.run_id, "recommendations.npz", recommendation_arrays(run))
        self.kb.finish_run(self.run_id, result, keep=self.checkpoints)


#: Snapshot domains of a ranking run: users of each side, then items of each side.
SNAPSHOT_PARTS = ("source users", "target users", "source items", "target items")


def _titles(d: RankingData, ids: Sequence[str]) -> np.ndarray:
    return np.array([str(d.item_info.get(i, {}).get("title", i)) for i in ids], dtype=str)


def _genres(d: RankingData, ids: Sequence[str]) -> List[List[str]]:
    return [list(d.item_info.get(i, {}).get("genres", [])) for i in ids]


def item_genre(genres: List[List[str]]) -> List[str]:
    """Each item's colour on the map: the first of its genres that not every item of its domain
    has (a drama domain's items are all Drama; what sets one apart is its other genre), else its
    first genre, else ``"no genre"``."""
    common = set.intersection(*(set(g) for g in genres)) if genres else set()
    return [next((x for x in g if x not in common), g[0] if g else "no genre") for g in genres]


def embedding_snapshot(run: RankingState, cap: int) -> Dict[str, np.ndarray]:
    """Embeddings of a seeded sample of at most ``cap`` users per side and of the items, for the map.

    Returns
    -------
    dict
        A feature snapshot (see :meth:`lepton.kb.KnowledgeBase.load_features`): ``features``
        (N, D) float32; ``domain`` into :data:`SNAPSHOT_PARTS` (0 source users, 1 target users,
        2 source items, 3 target items; a method without source item embeddings has none);
        ``index`` the user or item index; ``labels`` 0 warm / 1 cold-start for users, ``2 + g``
        for an item of genre ``class_names[2 + g]`` (:func:`item_genre`); ``preds`` -1.
    """
    d, m = run.data, run.method
    rng = np.random.default_rng(run.config.seed)
    cold = np.zeros(d.n_users, np.int64)
    cold[d.test_users[d.cold]] = 1
    genres = {side: item_genre(_genres(d, ids)) for side, ids in (("source", d.items_s), ("target", d.items_t))}
    names = sorted(set(genres["source"]) | set(genres["target"]))
    feats, dom, idx, lab = [], [], [], []

    def add(part: int, x: Optional[np.ndarray], index: np.ndarray, labels: np.ndarray) -> None:
        if x is not None and len(index):
            feats.append(x), dom.append(np.full(len(index), part, np.int64))
            idx.append(index.astype(np.int64)), lab.append(labels.astype(np.int64))
    for j, (side, users) in enumerate((("source", np.unique(d.train_s[:, 0])), ("target", np.unique(d.test_users)))):
        pick = np.sort(rng.choice(users, min(cap, len(users)), replace=False)) if len(users) else users
        add(j, m.user_features(pick, side), pick, cold[pick])
    for j, (side, ids) in enumerate((("source", d.items_s), ("target", d.items_t)), start=2):
        items = np.arange(len(ids))
        add(j, m.item_features(items, side), items, np.array([2 + names.index(g) for g in genres[side]], np.int64))
    src, tgt = ", ".join(d.record["sources"]), d.record["target"]
    return {"features": np.concatenate(feats), "domain": np.concatenate(dom), "index": np.concatenate(idx),
            "labels": np.concatenate(lab), "preds": np.full(sum(map(len, idx)), -1, np.int64),
            "domain_names": np.array([f"{src} users", f"{tgt} users", f"{src} items", f"{tgt} items"], dtype=str),
            "domain_roles": np.array(["source", "target", "source", "target"], dtype=str),
            "class_names": np.array(["warm", "cold-start", *names], dtype=str), "epoch": np.int64(0)}


def recommendation_arrays(run: RankingState, k: int = K) -> Dict[str, np.ndarray]:
    """What the run's model recommends to each evaluated target user, for the recommendation view.

    Computed once in the training process with the selected weights, so reading it never runs a model.

    Returns
    -------
    dict of np.ndarray
        Per evaluated user ``u`` (``U`` of them): ``user`` (U,) int64 user index, ``user_id`` (U,)
        str, ``cold`` (U,) bool, ``held_out`` (U,) int64 target item, ``rank`` (U,) int64 0-based
        rank of the held-out item under the run's protocol among ``n_candidates`` (its HR@10 counts
        ``rank < 10``), ``catalogue_rank`` (U,) its 0-based rank over the whole catalogue but the
        user's training positives (the list ``top`` is cut from), ``top``
        (U, k) int64 the model's top-``k`` target items over the whole catalogue but the user's
        training positives; ``history_ptr`` (U + 1,) and ``history`` (H,) int64: user ``r``'s source
        training positives are ``history[history_ptr[r]:history_ptr[r + 1]]``; ``source_titles`` (S,)
        and ``target_titles`` (T,) str, ``source_genres`` (S,) and ``target_genres`` (T,) str
        (``|``-joined); ``all_user_ids`` (n_users,) str, every user's id by user index.
    """
    d, m = run.data, run.method
    m.eval()
    users = d.test_users
    n_t = len(d.items_t)
    kk = min(k, n_t)
    top = np.empty((len(users), kk), np.int64)
    full = np.empty(len(users), np.int64)
    everything = np.arange(n_t)
    for a in range(0, len(users), 128):
        u = users[a:a + 128]
        s = m.scores(u, np.tile(everything, (len(u), 1))).astype(np.float64)
        for r, uu in enumerate(u):
            s[r, d.seen_t[uu]] = -np.inf
        held = s[np.arange(len(u)), d.test_items[a:a + len(u)]][:, None]
        full[a:a + len(u)] = (s >= held).sum(1) - 1  # ties count against the held-out item, as in the protocol
        top[a:a + len(u)] = np.argsort(-s, axis=1, kind="stable")[:, :kk]
    order = np.argsort(d.train_s[:, 0], kind="stable")
    by_user = d.train_s[order]
    lo = np.searchsorted(by_user[:, 0], users, "left")
    hi = np.searchsorted(by_user[:, 0], users, "right")
    ptr = np.r_[0, np.cumsum(hi - lo)]
    hist = np.concatenate([by_user[a:b, 1] for a, b in zip(lo, hi)]) if len(users) else np.zeros(0, np.int64)
    return {"user": users.astype(np.int64), "user_id": np.array([d.users[u] for u in users], dtype=str),
            "cold": d.cold.astype(bool), "held_out": d.test_items.astype(np.int64),
            "rank": _test_ranks(run).astype(np.int64), "catalogue_rank": full, "top": top,
            "n_candidates": np.int64(d.candidates.shape[1] or n_t), "history_ptr": ptr.astype(np.int64),
            "history": hist.astype(np.int64), "source_titles": _titles(d, d.items_s),
            "target_titles": _titles(d, d.items_t),
            "target_genres": np.array(["|".join(g) for g in _genres(d, d.items_t)], dtype=str),
            "source_genres": np.array(["|".join(g) for g in _genres(d, d.items_s)], dtype=str),
            "all_user_ids": np.array(d.users, dtype=str)}
