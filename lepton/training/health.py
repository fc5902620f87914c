"""Is a finished run's number worth reading? Runaway losses and chance-level accuracy.

A run whose losses grew by orders of magnitude, or whose accuracy is no better than always
guessing the most frequent class, still "completes"; its numbers look like results and are not.
:func:`diagnose` names such runs so the CLI, the store and the app can flag them as ``diverged``
(losses) or ``chance`` (accuracy), in plain words.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

RUNAWAY_FACTOR = 1e3  # a loss this many times above its first epoch (and above 1) has run away
ALIGNMENT_LOSSES = ("coral", "mmd", "domain")  # names the alignment methods report their loss under
NEGLIGIBLE_ALIGNMENT = 1e-3  # weight x alignment loss below this share of the task loss does nothing
LOW_SOURCE_ACC = 0.6  # a model below this on its own labelled source has not fitted it
COLLAPSE_SHARE = 0.01  # a class predicted for fewer than 1 % of the target rows counts as unused


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


def health_warnings(history: Sequence[Dict[str, Any]], source_acc: float, target_pred: np.ndarray, n_classes: int,
                    trade_off: float = 1.0, fitted: str = "source") -> Tuple[List[str], List[str]]:
    """Weaker signs than divergence that a run's number is not what its method can do.

    Parameters
    ----------
    history : sequence of dict
        Per-epoch rows (``losses``).
    source_acc : float
        Test accuracy of the run's model on the first source.
    target_pred : np.ndarray
        int ``(N,)`` the model's predicted classes on the target test rows (labels not needed).
    n_classes : int
    trade_off : float
        The method's alignment loss weight (1 when it has none).
    fitted : str
        Which labelled data ``source_acc`` measures, in words (``"target"`` for the target-only oracle).

    Returns
    -------
    flags : list of str
        ``collapsed`` (predictions on few classes), ``underfit`` (source accuracy below
        :data:`LOW_SOURCE_ACC`), ``weak-alignment`` (weighted alignment loss below
        :data:`NEGLIGIBLE_ALIGNMENT` of the task loss in the last epoch).
    messages : list of str
    """
    flags, msgs = [], []
    pred = np.asarray(target_pred)
    if len(pred) >= 10 * n_classes and n_classes >= 3:
        share = np.bincount(pred, minlength=n_classes) / len(pred)
        used = int((share >= COLLAPSE_SHARE).sum())
        if used <= n_classes // 2:
            flags.append("collapsed")
            msgs.append(f"the target predictions collapsed onto {used} of {n_classes} classes (the most frequent takes "
                        f"{100 * share.max():.0f} % of the rows): the model maps the target to a few classes, as "
                        "self-training does when its pseudo-labels reinforce early mistakes; compare with source-only "
                        "or raise the confidence threshold")
    if math.isfinite(source_acc) and source_acc < LOW_SOURCE_ACC:
        flags.append("underfit")
        msgs.append(f"the model fits its own labelled {fitted} poorly ({100 * source_acc:.1f} % {fitted} accuracy): "
                    "give it more optimisation steps (--steps) before reading its target accuracy")
    last = history[-1].get("losses", {}) if history else {}
    task = last.get("cls")
    for k in ALIGNMENT_LOSSES:
        v = last.get(k)
        if v is not None and task and math.isfinite(v) and abs(trade_off * v) < NEGLIGIBLE_ALIGNMENT * abs(task):
            flags.append("weak-alignment")
            msgs.append(f"the alignment loss {k!r} ({trade_off:g} x {v:.2g}) is negligible beside the task loss "
                        f"({task:.2g}) in the last epoch: this run is source-only in effect; raise trade_off or "
                        "check the features' scale (--scaling)")
            break
    return flags, msgs


def diagnose(history: Sequence[Dict[str, Any]], source_acc: float, source_y: np.ndarray,
             target_acc: float = float("nan"), target_y: np.ndarray = np.zeros(0, np.int64), fitted: str = "source"
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
    fitted : str
        Which labelled data ``source_acc`` measures, in words (``"target"`` for the target-only
        oracle, whose source accuracy is low by design).

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
            what += ("; " if what else "") + (f"{fitted} accuracy {100 * source_acc:.1f} % is at chance (always "
                                              f"guessing the most frequent class scores {100 * src_major:.1f} %)")
        msgs.append(f"the run diverged: {what}. Its numbers are not results; lower the learning rate or the loss "
                    "weight and run again")
    elif tgt_chance:
        flags.append("chance")
        msgs.append(f"target accuracy {100 * target_acc:.1f} % is at chance (always guessing the most frequent class "
                    f"scores {100 * tgt_major:.1f} %): nothing transferred")
    return flags, msgs


def selection_gap(checkpoints: Dict[str, Dict[str, Any]]) -> Optional[str]:
    """One sentence: what the label-free checkpoint choice cost against the oracle-best epoch.

    Parameters
    ----------
    checkpoints : dict
        A run's ``checkpoints`` (``selected`` and ``oracle``: ``epoch``, ``target_acc``).

    Returns
    -------
    str or None
        ``None`` when either accuracy is missing (an unlabelled target).
    """
    sel, orc = (checkpoints.get(k, {}) for k in ("selected", "oracle"))
    a, b = sel.get("target_acc"), orc.get("target_acc")
    if a is None or b is None or a != a or b != b:
        return None
    if sel.get("epoch") == orc.get("epoch"):
        return f"the label-free choice (epoch {sel.get('epoch')}) is also the oracle-best epoch: it cost nothing here"
    return (f"the label-free choice (epoch {sel.get('epoch')}, {100 * a:.1f}%) is {100 * (b - a):.1f} points below the "
            f"oracle-best epoch ({orc.get('epoch')}, {100 * b:.1f}%), which only target labels could pick")
