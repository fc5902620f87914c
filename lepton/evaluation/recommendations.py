"""The recommendation view of stored ranking runs: one user's source history and the target top-10
of two runs side by side, with where the user's held-out item ranked in each.

Everything is read from the runs' ``recommendations.npz`` (written at the end of training by
:class:`lepton.training.ranking.RankingRecorder`); nothing here runs a model.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ..kb.files import KBError

NAME = "recommendations.npz"


def load(kb, run_id: str) -> Dict[str, np.ndarray]:
    """A ranking run's stored recommendations (see :func:`lepton.training.ranking.recommendation_arrays`).

    Raises
    ------
    KBError
        Unknown run, a classification run, or a ranking run that stored none (stopped before its
        first epoch, or recorded before Lepton kept them).
    """
    rid = kb.resolve(run_id)
    if kb.get_run(rid)["config"].get("task") != "ranking":
        raise KBError(f"run {rid} is not a recommendation run; the recommendation view needs a run of a recommender "
                      "(popularity, bpr-mf, cmf, emcdr)")
    arrays = kb.read_arrays(rid, NAME)
    if arrays is None:
        raise KBError(f"run {rid} stored no recommendations (it ended before its first epoch, or was recorded by an "
                      "older Lepton); train it again")
    return arrays


def same_split(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> bool:
    """Whether two runs were evaluated on the same users, held-out items and cold-start users (the
    same pair and pairing settings), so their ranks can be compared user by user."""
    return all(np.array_equal(a[k], b[k]) for k in ("user_id", "held_out", "cold")) and \
        np.array_equal(a["target_titles"], b["target_titles"])


def comparable_runs(kb, run_id: str) -> List[str]:
    """Stored, finished ranking runs evaluated on the same split as ``run_id`` (newest first), itself
    excluded; the no-transfer baseline ``bpr-mf`` runs come first."""
    rid = kb.resolve(run_id)
    mine = load(kb, rid)
    runs = kb.list_runs()
    if runs.empty:
        return []
    cfg = kb.get_run(rid)["config"]
    src = " + ".join(cfg["source"]) if isinstance(cfg["source"], list) else cfg["source"]
    cand = runs[(runs["task"] == "ranking") & (runs["target"] == cfg["target"]) & (runs["source"] == src)
                & runs["status"].isin(["completed", "stopped"]) & (runs["run_id"] != rid)]
    out = []
    for r in cand.itertuples():
        try:
            if same_split(mine, load(kb, r.run_id)):
                out.append((r.method != "bpr-mf", r.run_id))
        except KBError:
            continue
    return [r for _, r in sorted(out, key=lambda t: t[0])]  # stable: newest first within each group


def users(arrays: Dict[str, np.ndarray]) -> List[str]:
    """The evaluated users' ids, cold-start users first (in stored order within each group)."""
    order = np.r_[np.flatnonzero(arrays["cold"]), np.flatnonzero(~arrays["cold"])]
    return [str(arrays["user_id"][i]) for i in order]


def _row(arrays: Dict[str, np.ndarray], user_id: str) -> int:
    hit = np.flatnonzero(arrays["user_id"] == str(user_id))
    if not len(hit):
        raise KBError(f"user {user_id!r} is not an evaluated target user of this run (a user needs two or more "
                      "target positives to be evaluated); pick one of its users")
    return int(hit[0])


def top_list(arrays: Dict[str, np.ndarray], user_id: str) -> List[Dict[str, Any]]:
    """One run's target top-k for a user: ``[{"position": 1.., "title", "genres", "held_out": bool}]``."""
    r = _row(arrays, user_id)
    held = int(arrays["held_out"][r])
    return [{"position": p + 1, "title": str(arrays["target_titles"][i]),
             "genres": str(arrays["target_genres"][i]).replace("|", ", "), "held_out": int(i) == held}
            for p, i in enumerate(arrays["top"][r])]


def user_view(kb, run_id: str, user_id: str, compare: Optional[str] = None) -> Dict[str, Any]:
    """What the recommendation view shows for one user.

    Parameters
    ----------
    kb : lepton.kb.KnowledgeBase
    run_id : str
        A ranking run.
    user_id : str
        A raw user id among the run's evaluated target users.
    compare : str, optional
        Another ranking run on the same split (see :func:`comparable_runs`), shown beside it.

    Returns
    -------
    dict
        ``user``, ``cold`` (bool), ``history`` (list of source titles the user liked, as trained on),
        ``held_out`` (title), ``runs``: ``[{"run_id", "method", "rank" (1-based among the
        protocol's candidates), "hit" (rank <= 10), "catalogue_rank" (1-based among all target
        items but the user's training positives), "top": :func:`top_list`}]``; ``candidates``
        (how many items the protocol ranks) and ``catalogue`` (target items).

    Raises
    ------
    KBError
        A run without recommendations, an unknown user, or a ``compare`` run on another split.
    """
    rid = kb.resolve(run_id)
    mine = load(kb, rid)
    r = _row(mine, user_id)
    a, b = mine["history_ptr"][r], mine["history_ptr"][r + 1]
    out = {"user": str(user_id), "cold": bool(mine["cold"][r]),
           "history": [str(mine["source_titles"][i]) for i in mine["history"][a:b]],
           "held_out": str(mine["target_titles"][mine["held_out"][r]]), "runs": []}
    for run in [rid] + ([kb.resolve(compare)] if compare else []):
        arrays = mine if run == rid else load(kb, run)
        if run != rid and not same_split(mine, arrays):
            raise KBError(f"run {run} was evaluated on another split than {rid} (other domains or pairing settings: "
                          "positive_rating, cold_start_k, cold_start_share, n_negatives); compare runs of one split")
        rank = int(arrays["rank"][r]) + 1
        out["runs"].append({"run_id": run, "method": kb.get_run(run)["config"]["method"], "rank": rank,
                            "hit": rank <= 10, "catalogue_rank": int(arrays["catalogue_rank"][r]) + 1,
                            "top": top_list(arrays, user_id)})
    out["candidates"], out["catalogue"] = int(mine["n_candidates"]), len(mine["target_titles"])
    return out


def point_table(arrays: Dict[str, np.ndarray], domain: np.ndarray, index: np.ndarray):
    """What stands behind points of a ranking run's map (see
    :func:`lepton.training.ranking.embedding_snapshot`): users (snapshot domains 0, 1) and items (2, 3).

    Parameters
    ----------
    arrays : dict
        :func:`load` of the run.
    domain, index : np.ndarray
        int ``(N,)`` snapshot domain and index of each point.

    Returns
    -------
    pandas.DataFrame
        ``name`` (``user <id>`` or the item's title), ``genres`` (items), ``group`` (cold-start /
        warm for evaluated target users), ``held-out item`` and ``rank`` (1-based, the protocol's)
        for evaluated target users; blank where it does not apply.
    """
    import pandas as pd
    by_user = {int(u): r for r, u in enumerate(arrays["user"])}
    rows = []
    for d, i in zip(np.asarray(domain).tolist(), np.asarray(index).tolist()):
        if d >= 2:
            side = "source" if d == 2 else "target"
            rows.append({"name": str(arrays[f"{side}_titles"][i]),
                         "genres": str(arrays[f"{side}_genres"][i]).replace("|", ", "), "group": "",
                         "held-out item": "", "rank": None})
            continue
        r = by_user.get(i) if d == 1 else None
        rows.append({"name": f"user {arrays['all_user_ids'][i]}", "genres": "",
                     "group": "" if r is None else ("cold-start" if arrays["cold"][r] else "warm"),
                     "held-out item": "" if r is None else str(arrays["target_titles"][arrays["held_out"][r]]),
                     "rank": None if r is None else int(arrays["rank"][r]) + 1})
    return pd.DataFrame(rows, columns=["name", "genres", "group", "held-out item", "rank"])
