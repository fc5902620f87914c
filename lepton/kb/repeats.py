"""Repeats over seeds: one config run once per seed, reported as mean ± std.

``python -m lepton train --seeds 0 1 2`` trains a config once per seed (:func:`seed_summary` turns
the runs' results into mean ± std of every figure they report), and the Runs page groups stored runs
whose configs differ only in their seed (:func:`seed_groups`). Standard deviations are sample ones
(``ddof=1``) and 0 for a single seed, as :func:`lepton.stats.mean_std`.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import pandas as pd

from ..stats import mean_std
from .files import KBError
from .matrix import cell_text

#: The figures a result table row may hold (classification: accuracy; ranking: HR@10, NDCG@10).
METRICS = ("accuracy", "hr@10", "ndcg@10")
#: What names a row of a result table (the figure's place): domain, role, split, checkpoint, users.
ROW_KEYS = ("domain", "role", "split", "checkpoint", "users")
#: ``list_runs`` columns averaged per seed group.
GROUP_COLUMNS = ("source_acc", "target_acc", "target_acc_last", "target_acc_oracle", "wall_time_s")


def check_seeds(seeds: Iterable[int]) -> List[int]:
    """The seeds of a repeat, as given, after checking each appears once.

    Parameters
    ----------
    seeds : iterable of int

    Returns
    -------
    list of int

    Raises
    ------
    ValueError
        No seed, or a seed given twice (naming it): two runs of one seed are the same run.
    """
    out = [int(s) for s in seeds]
    if not out:
        raise ValueError("--seeds needs at least one seed, e.g. --seeds 0 1 2")
    twice = sorted(s for s, n in Counter(out).items() if n > 1)
    if twice:
        raise ValueError(f"--seeds lists seed {', '.join(map(str, twice))} more than once; a seed gives the same run "
                         "every time, so give each seed once, e.g. --seeds 0 1 2")
    return out


def repeat_key(config: Mapping[str, Any]) -> str:
    """What identifies a repeat: the stored config without its ``seed``, as sorted JSON.

    Two runs repeat each other exactly when their keys are equal (method, domains, hyper-parameters
    with their defaults filled in, budget, encoder, starting run, scaling, protocol, ...).
    """
    return json.dumps({k: v for k, v in dict(config).items() if k != "seed"}, sort_keys=True, default=str)


def seed_summary(summaries: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Mean ± std over seeds of every figure a set of runs of one config reports.

    Parameters
    ----------
    summaries : sequence of dict
        ``RunResult.summary()`` of each seed's run (same config but the seed), in seed order.

    Returns
    -------
    dict
        ``seeds`` (list of int); ``table``: one dict per figure, the row's place (``domain``,
        ``role``, ``split``, ``checkpoint``, and ``users`` for ranking) plus ``metric``, ``mean``,
        ``std`` (ddof 1; 0 for one seed), ``values`` (one per seed that has it, fractions in
        [0, 1]) and ``n``; rows of unlabelled domains are left out. ``wall_time_s`` and ``steps``
        (optimisation steps done): ``{"mean", "std", "values"}``. ``failed``: seeds whose run did not
        complete (their figures are not in the means).
    """
    seeds = [int(s["config"]["seed"]) for s in summaries]
    done = [s for s in summaries if s.get("status") == "completed"]
    cells: Dict[tuple, List[float]] = {}
    for s in done:
        for row in s.get("table") or []:
            if not row.get("labelled", True):
                continue
            place = tuple(row.get(k) for k in ROW_KEYS)
            for m in METRICS:
                v = row.get(m)
                if isinstance(v, (int, float)) and v == v:
                    cells.setdefault(place + (m,), []).append(float(v))
    table = []
    for key, vals in cells.items():
        row = {k: v for k, v in zip(ROW_KEYS, key[:-1]) if v is not None}
        table.append({**row, "metric": key[-1], **mean_std(vals), "n": len(vals)})
    steps = [float((s.get("budget") or {}).get("steps_done", 0)) for s in done]
    return {"seeds": seeds, "table": table, "wall_time_s": mean_std([float(s.get("wall_time_s", 0)) for s in done]),
            "steps": mean_std(steps),
            "failed": [int(s["config"]["seed"]) for s in summaries if s.get("status") != "completed"]}


def _config(kb, run_id: str) -> Optional[Dict[str, Any]]:
    try:
        return kb.run_config(run_id)
    except KBError:  # a damaged or vanished folder: that run is simply not grouped
        return None


def seed_groups(kb, runs: Optional[pd.DataFrame] = None, min_seeds: int = 2) -> pd.DataFrame:
    """Stored runs that differ only in their seed, one row per group, with mean ± std over seeds.

    Only ``completed`` runs count. When one seed appears twice in a group (a rerun), the newest
    run of that seed is used and the older is counted in ``duplicates``.

    Parameters
    ----------
    kb : KnowledgeBase
    runs : pandas.DataFrame, optional
        ``kb.list_runs()`` (read here when not given).
    min_seeds : int
        Groups with fewer distinct seeds are left out (default 2: a repeat needs two).

    Returns
    -------
    pandas.DataFrame
        Newest group first; columns ``method``, ``source``, ``target``, ``epochs``, ``task``,
        ``seeds`` (str, e.g. ``"0, 1, 2"``), ``n`` (int), ``run_ids`` (list of str, in seed order),
        ``diverged`` (how many of them are flagged diverged), ``duplicates``, ``created`` (newest),
        and for each of ``source_acc``, ``target_acc``, ``target_acc_last``,
        ``target_acc_oracle``, ``wall_time_s``: ``<col>_mean``, ``<col>_std`` (ddof 1; NaN where
        no run has a value) and, for the accuracies, ``<col>_text`` (``"97.1 ± 0.3 (3)"``, in %; the
        target columns hold NDCG@10 for ranking runs). Empty (with these columns) when no group
        qualifies.
    """
    cols = ["method", "source", "target", "epochs", "task", "seeds", "n", "run_ids", "diverged", "duplicates",
            "created"] + [f"{c}_{s}" for c in GROUP_COLUMNS for s in ("mean", "std")] + \
           [f"{c}_text" for c in GROUP_COLUMNS if c != "wall_time_s"]
    runs = kb.list_runs() if runs is None else runs
    if runs is None or runs.empty:
        return pd.DataFrame(columns=cols)
    done = runs[runs["status"].astype(str).eq("completed")].sort_values(["created", "run_id"], ascending=False)
    groups: Dict[str, List[Mapping[str, Any]]] = {}
    for row in done.to_dict("records"):
        cfg = _config(kb, row["run_id"])
        if cfg is not None:
            groups.setdefault(repeat_key(cfg), []).append(row)
    out = []
    for members in groups.values():
        newest: Dict[Any, Mapping[str, Any]] = {}
        for r in members:  # newest first: keep the first of each seed
            newest.setdefault(r["seed"], r)
        if len(newest) < int(min_seeds):
            continue
        chosen = sorted(newest.values(), key=lambda r: (r["seed"] is None, r["seed"]))
        first = chosen[0]
        rec: Dict[str, Any] = {"method": first["method"], "source": first["source"], "target": first["target"],
                               "epochs": first["epochs"], "task": first.get("task", "classification"),
                               "seeds": ", ".join(str(r["seed"]) for r in chosen), "n": len(chosen),
                               "run_ids": [r["run_id"] for r in chosen],
                               "diverged": int(sum(bool(r.get("diverged")) for r in chosen)),
                               "duplicates": len(members) - len(chosen), "created": max(r["created"] for r in chosen)}
        for c in GROUP_COLUMNS:
            vals = [float(r[c]) for r in chosen if r.get(c) is not None and r[c] == r[c]]
            ms = mean_std(vals)
            rec[f"{c}_mean"] = ms["mean"]
            rec[f"{c}_std"] = ms["std"] if len(vals) > 1 else float("nan")
            if c != "wall_time_s":
                rec[f"{c}_text"] = cell_text(ms["mean"], rec[f"{c}_std"], len(vals))
        out.append(rec)
    df = pd.DataFrame(out, columns=cols)
    return df.sort_values("created", ascending=False).reset_index(drop=True) if len(df) else df
