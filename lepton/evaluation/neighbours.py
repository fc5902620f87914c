"""Nearest neighbours of one example in a run's feature space, within each domain (for the map)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def nearest_in_each_domain(kb, run_id: str, row: int, epoch: int = None, k: int = 6) -> pd.DataFrame:
    """The ``k`` examples of each domain of a run closest to snapshot row ``row`` in the model's
    feature space (Euclidean distance on the stored features, scikit-learn's ``NearestNeighbors``),
    the example itself left out: what the model thinks is alike across the domains.

    Parameters
    ----------
    kb : lepton.kb.KnowledgeBase
    run_id : str
    row : int
        Row of the feature snapshot (the map's ``row`` column).
    epoch : int, optional
        Snapshot epoch (default: the last).
    k : int
        Neighbours per domain.

    Returns
    -------
    pandas.DataFrame
        Columns ``row``, ``domain``, ``domain_id``, ``role``, ``index`` (row of that domain's test
        split), ``label``, ``pred``, ``distance`` (float), nearest first within each domain.

    Raises
    ------
    IndexError
        ``row`` is not a row of the snapshot.
    lepton.kb.KBError
        The run has no snapshot at ``epoch``.
    """
    from sklearn.neighbors import NearestNeighbors

    f = kb.load_features(run_id, epoch)
    x = np.asarray(f["features"], dtype=np.float32)
    if not 0 <= int(row) < len(x):
        raise IndexError(f"row {row} is not in the snapshot (0..{len(x) - 1})")
    names, roles, cls = f["domain_names"], f["domain_roles"], f["class_names"]
    out = []
    for d in np.unique(f["domain"]):
        idx = np.flatnonzero((f["domain"] == d) & (np.arange(len(x)) != int(row)))
        if not len(idx):
            continue
        nn = NearestNeighbors(n_neighbors=min(int(k), len(idx))).fit(x[idx])
        dist, pos = nn.kneighbors(x[int(row)][None])
        for di, p in zip(dist[0], pos[0]):
            r = int(idx[p])
            lab = int(f["labels"][r])
            out.append({"row": r, "domain": names[d], "domain_id": int(d), "role": roles[d],
                        "index": int(f["index"][r]), "label": cls[lab] if 0 <= lab < len(cls) else "no label",
                        "pred": cls[int(f["preds"][r])], "distance": float(di)})
    return pd.DataFrame(out, columns=["row", "domain", "domain_id", "role", "index", "label", "pred", "distance"])
