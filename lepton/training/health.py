"""Is a finished run's number worth reading? Runaway losses and chance-level accuracy.

A run whose losses grew by orders of magnitude, or whose accuracy is no better than always
guessing the most frequent class, still "completes"; its numbers look like results and are not.
:func:`diagnose` names such runs so the CLI, the store and the app can flag them as ``diverged``
(losses) or ``chance`` (accuracy), in plain words.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

RUNAWAY_FACTOR = 1e3  # a loss this many times above its first epoch (and above 1) has run away


def chance_margin(p: float, n: int) -> float:
    """Two binomial standard errors of an accuracy ``p`` measured on ``n`` examples."""
    return 2.0 * math.sqrt(max(p * (1.0 - p), 1e-12) / max(n, 1))


def runaway_losses(history: Sequence[Dict[str, Any]], factor: float = RUNAWAY_FACTOR) -> List[str]:
    """Sentences for losses whose epoch mean rose ``factor`` times above their start.

    The start is the first step's losses (``losses_at_start`` of the first row, the untrained
    model), else the first epoch's means.

    Parameters
    ----------
    history : sequence of dict
        Per-epoch rows with ``losses`` (name -> epoch mean, float) and ``epoch``.
    factor : float
        Growth, relative to ``max(|first|, 1)``, that counts as runaway.

    Returns
    -------
    list of str
        ``"loss 'cls' rose from 2.3 at the first step to 1.2e+13 (mean of epoch 5)"`` per runaway loss.
    """
    if not history:
        return []
    first = history[0].get("losses_at_start") or history[0].get("losses", {})
    start = "at the first step" if history[0].get("losses_at_start") else f"in epoch {history[0]['epoch']}"
    out = []
    for k, v0 in first.items():
        if k in ("lambda",) or not isinstance(v0, (int, float)) or not math.isfinite(v0):
            continue
        worst = max(((r.get("losses", {}).get(k), r["epoch"]) for r in history
                     if isinstance(r.get("losses", {}).get(k), (int, float))), key=lambda t: abs(t[0]))
        if abs(worst[0]) > factor * max(abs(v0), 1.0):
            out.append(f"loss {k!r} rose from {v0:.3g} {start} to {worst[0]:.3g} (mean of epoch {worst[1]})")
    return out


def at_chance(accuracy: float, y: np.ndarray) -> Tuple[bool, float]:
    """Whether ``accuracy`` on labels ``y`` is within two standard errors of the majority-class rate.

    Returns
    -------
    at_chance : bool
    majority : float
        The fraction of the most frequent class in ``y`` (what always guessing it scores).
    """
    y = np.asarray(y)
    if not len(y) or np.any(y < 0) or not math.isfinite(accuracy):
        return False, float("nan")
    majority = float(np.bincount(y).max() / len(y))
    return accuracy <= majority + chance_margin(majority, len(y)), majority


def diagnose(history: Sequence[Dict[str, Any]], source_acc: float, source_y: np.ndarray,
             target_acc: float = float("nan"), target_y: np.ndarray = np.zeros(0, np.int64)
             ) -> Tuple[List[str], List[str]]:
    """Flags and sentences for a finished run.

    Parameters
    ----------
    history : sequence of dict
        The run's per-epoch rows.
    source_acc, target_acc : float
        Test accuracy (fractions) of the run's model on the first source and on the target.
    source_y, target_y : np.ndarray
        int64 test labels they were measured on (the target's may be unlabelled, ``-1``).

    Returns
    -------
    flags : list of str
        ``"diverged"`` (runaway losses, or the model is at chance on its own source), ``"chance"``
        (at chance on the target only).
    messages : list of str
        What was seen and what to do, one sentence each.
    """
    flags, msgs = [], []
    runaway = runaway_losses(history)
    src_chance, src_major = at_chance(source_acc, source_y)
    tgt_chance, tgt_major = at_chance(target_acc, target_y)
    if runaway or src_chance:
        flags.append("diverged")
        what = "; ".join(runaway) if runaway else ""
        if src_chance:
            what += ("; " if what else "") + (f"source accuracy {100 * source_acc:.1f} % is at chance (always "
                                              f"guessing the most frequent class scores {100 * src_major:.1f} %)")
        msgs.append(f"the run diverged: {what}. Its numbers are not results; lower the learning rate or the loss "
                    "weight and run again")
    elif tgt_chance:
        flags.append("chance")
        msgs.append(f"target accuracy {100 * target_acc:.1f} % is at chance (always guessing the most frequent class "
                    f"scores {100 * tgt_major:.1f} %): nothing transferred")
    return flags, msgs
