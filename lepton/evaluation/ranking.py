"""Ranking metrics for recommendation: where a held-out item ranks among candidates, HR@K, NDCG@K.

The protocol is He et al., WWW 2017 (neural collaborative filtering): each user's held-out item is
ranked against sampled items the user never touched; HR@K is 1 when it is in the top K, NDCG@K is
``1 / log2(rank + 2)`` then (rank 0 = first), else 0 for both.
"""
from __future__ import annotations

from typing import Dict

import numpy as np


def rank_of_first(scores: np.ndarray) -> np.ndarray:
    """The 0-based rank of column 0 among each row's scores, ties counted against it.

    Parameters
    ----------
    scores : np.ndarray
        float ``(U, C)``: column 0 is the held-out item, the others its candidates.

    Returns
    -------
    np.ndarray
        int64 ``(U,)``: how many candidates score at least as high as the held-out item (a tie is a
        loss, so a model that scores every item alike ranks it last, not first).
    """
    s = np.asarray(scores, np.float64)
    return (s[:, 1:] >= s[:, :1]).sum(1).astype(np.int64)


def hit_rate(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """HR@k per user: float ``(U,)``, 1.0 where ``rank < k``."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k per user with one relevant item: float ``(U,)``, ``1 / log2(rank + 2)`` where ``rank < k``, else 0."""
    r = np.asarray(ranks, np.float64)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def ranking_summary(ranks: np.ndarray, k: int = 10) -> Dict[str, float]:
    """``{"hr@k", "ndcg@k", "n"}``: the means over users (NaN for no user) and the number of users."""
    r = np.asarray(ranks)
    if not len(r):
        return {f"hr@{k}": float("nan"), f"ndcg@{k}": float("nan"), "n": 0}
    return {f"hr@{k}": float(hit_rate(r, k).mean()), f"ndcg@{k}": float(ndcg(r, k).mean()), "n": int(len(r))}
