"""The transfer matrix: source x target -> mean ± std over seeds of ONE method at ONE checkpoint.

Built from :meth:`KnowledgeBase.list_runs` (a DataFrame; no database access here). Runs of different
methods, oracle methods (which train on target labels) and the oracle checkpoint are never mixed in
unless asked for, so a cell always says exactly what it holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional

import pandas as pd

#: Checkpoint kind -> the accuracy column of ``list_runs()``.
CHECKPOINT_COLUMNS = {"selected": "target_acc", "last": "target_acc_last", "oracle": "target_acc_oracle"}
#: How each checkpoint kind is named in captions (the oracle one says that it uses target labels).
CHECKPOINT_WORDS = {"selected": "label-free checkpoint", "last": "last-epoch checkpoint",
                    "oracle": "oracle checkpoint (picked with target labels)"}
#: Methods that are oracles whatever the registry says (``target-only`` trains on labelled target data).
ORACLE_METHODS = frozenset({"target-only"})
ORACLE_NOTE = "(oracle: uses target labels)"
NO_STD = "–"


@dataclass(frozen=True)
class TransferMatrix:
    """One method's transfer matrix at one checkpoint (see :func:`transfer_matrix`).

    Attributes
    ----------
    method, checkpoint : str
    mean, std : pandas.DataFrame
        Index ``source``, columns ``target``; fractions in [0, 1]; NaN where the method has no run
        with a value at this checkpoint for the pair (``std`` is NaN for a single seed too).
    n : pandas.DataFrame of int
        Seeds (= runs used) per cell; 0 where there is none.
    text : pandas.DataFrame of str
        ``"mean ± std (n)"`` in percent, e.g. ``"34.1 ± 1.2 (3)"``; ``"82.6 ± – (1)"`` for one seed;
        ``""`` for an empty cell.
    runs_used : int
        Runs that went into the cells (one per seed and pair).
    diverged : int
        Runs of this method left out because they diverged (status ``diverged`` or a true
        ``diverged`` column).
    duplicates : int
        Completed runs left out because a newer run of the same method, pair and seed exists.
    oracle_method : bool
        The method trains on target labels.
    """

    method: str
    checkpoint: str
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    text: pd.DataFrame
    runs_used: int = 0
    diverged: int = 0
    duplicates: int = 0
    oracle_method: bool = False

    @property
    def empty(self) -> bool:
        """No cell holds a value."""
        return self.runs_used == 0

    def caption(self) -> str:
        """What the matrix shows, in one sentence: method, checkpoint, statistic, count."""
        who = f"{self.method} {ORACLE_NOTE}" if self.oracle_method else self.method
        out = (f"{who}, {CHECKPOINT_WORDS[self.checkpoint]}, target accuracy in %: mean ± std over seeds, "
               f"n = runs (completed runs only; one per seed, the newest when a seed repeats).")
        if self.diverged:
            out += f" {self.diverged} diverged run(s) left out."
        return out


def is_oracle(method: str, oracle_methods: Iterable[str] = ()) -> bool:
    """Whether ``method`` trains on target labels (``target-only`` or any name in ``oracle_methods``)."""
    return method in ORACLE_METHODS or method in set(oracle_methods)


def method_label(method: str, oracle_methods: Iterable[str] = ()) -> str:
    """The method's name, with ``(oracle: uses target labels)`` after an oracle method."""
    return f"{method} {ORACLE_NOTE}" if is_oracle(method, oracle_methods) else method


def _diverged(runs: pd.DataFrame) -> pd.Series:
    flag = runs["status"].astype(str).eq("diverged")
    if "diverged" in runs:
        flag |= runs["diverged"].fillna(False).astype(bool)
    return flag


def _usable(runs: pd.DataFrame, task: Optional[str]) -> pd.DataFrame:
    """Completed, not diverged runs (of ``task``, where the table says)."""
    keep = runs["status"].astype(str).eq("completed") & ~_diverged(runs)
    if task is not None and "task" in runs:
        keep &= runs["task"].fillna("classification").eq(task)
    return runs[keep]


def method_options(runs: pd.DataFrame, oracle_methods: Iterable[str] = (), include_oracle: bool = False,
                   task: Optional[str] = "classification") -> List[str]:
    """The methods a transfer matrix can be drawn for, the default first.

    Parameters
    ----------
    runs : pandas.DataFrame
        :meth:`KnowledgeBase.list_runs` (columns ``method``, ``status``, ``created``, ...).
    oracle_methods : iterable of str
        Registered methods whose class is an oracle (``Method.oracle``); ``target-only`` always is.
    include_oracle : bool
        List the oracle methods too (after all others).
    task : str or None
        Only runs of this task (``None``: any).

    Returns
    -------
    list of str
        Methods with at least one completed, not diverged run: non-oracle methods by number of such
        runs (most first; ties: the one with the newest run first), then, if asked, the oracle
        methods in the same order. ``[]`` when there is none.
    """
    if runs is None or runs.empty or "method" not in runs:
        return []
    ok = _usable(runs, task).dropna(subset=["method"])
    if ok.empty:
        return []
    stats = ok.groupby("method").agg(count=("method", "size"), newest=("created", "max")).reset_index()
    stats = stats.sort_values(["count", "newest", "method"], ascending=[False, False, True])
    names = [str(m) for m in stats["method"]]
    plain = [m for m in names if not is_oracle(m, oracle_methods)]
    oracles = [m for m in names if is_oracle(m, oracle_methods)]
    return plain + (oracles if include_oracle else [])


def cell_text(mean: float, std: float, n: int) -> str:
    """``"mean ± std (n)"`` in percent with one decimal; std ``–`` for one seed; ``""`` for no run."""
    if not n or mean is None or not math.isfinite(mean):
        return ""
    s = NO_STD if n < 2 or std is None or not math.isfinite(std) else f"{100 * std:.1f}"
    return f"{100 * mean:.1f} ± {s} ({int(n)})"


def transfer_matrix(runs: pd.DataFrame, method: str, checkpoint: str = "selected",
                    oracle_methods: Iterable[str] = (), task: Optional[str] = "classification") -> TransferMatrix:
    """The transfer matrix of one method at one checkpoint: per (source, target) the mean and
    standard deviation over seeds of the target test accuracy, with the number of seeds.

    Only ``completed`` runs of ``method`` count; runs that diverged (status ``diverged``, or a true
    value in a ``diverged`` column where the table has one) are left out and counted in
    :attr:`TransferMatrix.diverged`. Each seed gives one value: when several runs share a method,
    pair and seed, the newest (by ``created``, then ``run_id``) with a value at the checkpoint is
    used. A run without a value at that checkpoint (e.g. no oracle evaluation) is not counted.

    Parameters
    ----------
    runs : pandas.DataFrame
        :meth:`KnowledgeBase.list_runs`: columns ``run_id``, ``created``, ``status``, ``method``,
        ``source``, ``target``, ``seed``, ``target_acc``, ``target_acc_last``,
        ``target_acc_oracle`` (and optionally ``task``, ``diverged``).
    method : str
        The one method shown (registry name, e.g. ``dann``).
    checkpoint : {"selected", "last", "oracle"}
        ``selected``: the label-free checkpoint (the run's model; default). ``last``: the last
        epoch. ``oracle``: the epoch picked with target test labels, for comparison only.
    oracle_methods : iterable of str
        Methods whose class is an oracle; marks :attr:`TransferMatrix.oracle_method`.
    task : str or None
        Only runs of this task (``None``: any).

    Returns
    -------
    TransferMatrix
        Rows: the sources, columns: the targets of this method's completed runs (sorted, the same
        grid at every checkpoint; a pair without a value at this checkpoint is an empty cell).
        ``std`` is the sample standard deviation (``ddof=1``), NaN for one seed.

    Raises
    ------
    ValueError
        Unknown ``checkpoint`` (naming the valid ones), or a table without the needed columns.
    """
    if checkpoint not in CHECKPOINT_COLUMNS:
        raise ValueError(f"unknown checkpoint {checkpoint!r}; use one of {', '.join(CHECKPOINT_COLUMNS)}")
    col = CHECKPOINT_COLUMNS[checkpoint]
    need = {"run_id", "created", "status", "method", "source", "target", "seed", col}
    missing = sorted(need - set(runs.columns)) if runs is not None else sorted(need)
    if missing:
        raise ValueError(f"the runs table lacks the column(s) {', '.join(missing)}; pass KnowledgeBase.list_runs()")
    mine = runs[runs["method"] == method]
    n_diverged = int(_diverged(mine).sum())
    ok = _usable(mine, task).dropna(subset=["source", "target"]).copy()
    sources, targets = sorted(set(ok["source"].astype(str))), sorted(set(ok["target"].astype(str)))
    ok[col] = pd.to_numeric(ok[col], errors="coerce")
    ok = ok[ok[col].abs() < math.inf]  # drops NaN and inf
    ok["seed_key"] = ok["seed"].astype(object).where(ok["seed"].notna(), "none").astype(str)
    ok = ok.sort_values(["created", "run_id"], ascending=False)
    newest = ok.drop_duplicates(subset=["source", "target", "seed_key"], keep="first")
    g = newest.groupby(["source", "target"])[col]
    grid = dict(index=pd.Index(sources, name="source"), columns=pd.Index(targets, name="target"))
    mean = g.mean().unstack("target").reindex(**grid).astype(float)
    std = g.std(ddof=1).unstack("target").reindex(**grid).astype(float)
    n = g.size().unstack("target").reindex(**grid).fillna(0).astype(int)
    for df in (mean, std, n):
        df.index.name, df.columns.name = "source", "target"
    text = pd.DataFrame([[cell_text(mean.iat[i, j], std.iat[i, j], n.iat[i, j]) for j in range(mean.shape[1])]
                         for i in range(mean.shape[0])], index=mean.index, columns=mean.columns, dtype=object)
    return TransferMatrix(method=method, checkpoint=checkpoint, mean=mean, std=std, n=n, text=text,
                          runs_used=int(len(newest)), diverged=n_diverged, duplicates=int(len(ok) - len(newest)),
                          oracle_method=is_oracle(method, oracle_methods))
