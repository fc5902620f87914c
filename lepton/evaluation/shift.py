"""How far apart are two domains? Proxy A-distance, linear MMD and per-class centroid distances.

:func:`shift_between` works on any two feature (or flattened pixel) arrays;
:func:`shift_statistics` compares a stored run's source and target features before and after
adaptation; :func:`domain_shift` compares two raw domains before any training.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from .. import losses
from .metrics import proxy_a_distance


def shift_between(fs: np.ndarray, ft: np.ndarray, ys: Optional[np.ndarray] = None, yt: Optional[np.ndarray] = None,
                  class_names: Optional[Sequence[str]] = None, seed: int = 0) -> Dict[str, Any]:
    """Distances between a source and a target sample.

    * ``proxy_a_distance``: ``2 (1 - 2 err)`` of a linear domain classifier, in [0, 2]
      (:func:`lepton.evaluation.metrics.proxy_a_distance`; Ben-David et al. 2006);
    * ``mmd``: linear-kernel MMD ``||mean(fs) - mean(ft)||^2`` (:func:`lepton.losses.linear_mmd`;
      Gretton et al. 2012), in squared feature units;
    * ``mmd_relative``: ``mmd`` divided by the pooled total variance
      ``mean ||f - mean(f)||^2`` (unit-free, so epochs and feature spaces compare);
    * ``per_class``: distance between the two domains' centroids of each class, raw and divided
      by the pooled RMS spread ``sqrt(mean ||f - mean(f)||^2)``.

    Parameters
    ----------
    fs, ft : np.ndarray
        ``(N_s, D)`` and ``(N_t, D)`` (higher-rank inputs are flattened).
    ys, yt : np.ndarray, optional
        int ``(N,)`` labels for the per-class table.
    class_names : sequence of str, optional
    seed : int
        Seeds the proxy A-distance split.

    Returns
    -------
    dict
        ``proxy_a_distance``, ``mmd``, ``mmd_relative``, ``mean_class_distance`` (mean of the
        normalised per-class distances, NaN without labels), ``n_source``, ``n_target`` and
        ``per_class`` (pandas.DataFrame: ``class``, ``n_source``, ``n_target``, ``distance``,
        ``distance_relative``; NaN for a class missing in one domain).

    Raises
    ------
    ValueError
        Fewer than 4 examples in a domain or different feature sizes.
    """
    import pandas as pd
    fs = np.asarray(fs, np.float32).reshape(len(fs), -1)
    ft = np.asarray(ft, np.float32).reshape(len(ft), -1)
    pad = proxy_a_distance(fs, ft, seed=seed)
    mmd = float(losses.linear_mmd(torch.from_numpy(fs), torch.from_numpy(ft)))
    pooled = np.concatenate([fs, ft]).astype(np.float64)
    var = float(((pooled - pooled.mean(0)) ** 2).sum(1).mean())
    spread = float(np.sqrt(var)) if var > 0 else float("nan")
    rows = []
    if ys is not None and yt is not None:
        ys, yt = np.asarray(ys), np.asarray(yt)
        k = len(class_names) if class_names is not None else int(max(ys.max(initial=-1), yt.max(initial=-1))) + 1
        names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
        for c in range(k):
            ms, mt = ys == c, yt == c
            d = float(np.linalg.norm(fs[ms].mean(0) - ft[mt].mean(0))) if ms.any() and mt.any() else float("nan")
            rows.append({"class": names[c], "n_source": int(ms.sum()), "n_target": int(mt.sum()), "distance": d,
                         "distance_relative": d / spread if spread == spread else float("nan")})
    table = pd.DataFrame(rows, columns=["class", "n_source", "n_target", "distance", "distance_relative"])
    rel = table["distance_relative"].dropna()
    return {"proxy_a_distance": pad, "mmd": mmd, "mmd_relative": mmd / var if var > 0 else float("nan"),
            "mean_class_distance": float(rel.mean()) if len(rel) else float("nan"),
            "n_source": int(len(fs)), "n_target": int(len(ft)), "per_class": table}


def shift_statistics(kb, run_id: str, epoch: Optional[int] = None, seed: int = 0) -> Dict[str, Any]:
    """Source-target shift of a stored run's features, before adaptation and after.

    "Before" is the first feature snapshot (epoch 0: the initial encoder, or the one loaded with
    ``--init-from``), "after" the snapshot at ``epoch`` (default: the last).

    Parameters
    ----------
    kb : lepton.kb.KnowledgeBase
    run_id : str
    epoch : int, optional
    seed : int

    Returns
    -------
    dict
        ``run_id``, ``source``, ``target`` (names), ``before`` and ``after`` (each ``epoch``,
        ``proxy_a_distance``, ``mmd``, ``mmd_relative``, ``mean_class_distance``) and
        ``per_class`` (pandas.DataFrame: ``class``, ``n_source``, ``n_target``, ``before``,
        ``after`` (normalised centroid distances), ``before_raw``, ``after_raw``).

    Raises
    ------
    lepton.kb.KBError
        Unknown run or no feature snapshots.
    ValueError
        Fewer than 4 sampled examples in the source or the target.
    """
    rid = kb.resolve(run_id)
    epochs = kb.feature_epochs(rid)
    first = kb.load_features(rid, epochs[0] if epochs else None)
    last = kb.load_features(rid, epoch)
    roles = first["domain_roles"]
    src_ids = [i for i, r in enumerate(roles) if r == "source"]
    tgt_id = roles.index("target")
    out: Dict[str, Any] = {"run_id": rid, "source": " + ".join(first["domain_names"][i] for i in src_ids),
                           "target": first["domain_names"][tgt_id]}
    tables = {}
    for when, snap in (("before", first), ("after", last)):
        s, t = np.isin(snap["domain"], src_ids), snap["domain"] == tgt_id
        st = shift_between(snap["features"][s], snap["features"][t], snap["labels"][s], snap["labels"][t],
                           snap["class_names"], seed)
        tables[when] = st.pop("per_class")
        out[when] = {"epoch": int(snap["epoch"]), **st}
    pc = tables["before"][["class", "n_source", "n_target"]].copy()
    pc["before"], pc["after"] = tables["before"]["distance_relative"], tables["after"]["distance_relative"]
    pc["before_raw"], pc["after_raw"] = tables["before"]["distance"], tables["after"]["distance"]
    out["per_class"] = pc
    return out


def domain_shift(source, target, split: str = "train", cap: int = 2000, seed: int = 0) -> Dict[str, Any]:
    """Shift between two raw domains (flattened pixels or feature vectors), before any training.

    The two domains are first made comparable as training would (:func:`lepton.data.pairing.harmonise`:
    one image size and channel count, shared classes), then a class-stratified sample of at most
    ``cap`` examples per domain is compared with :func:`shift_between`.

    Parameters
    ----------
    source, target : lepton.data.Domain or str
        Domains or domain names (see :func:`lepton.data.load_domain`).
    split : str
        ``train`` or ``test``.
    cap : int
        Largest sample per domain.
    seed : int

    Returns
    -------
    dict
        ``proxy_a_distance``, ``mmd``, ``mmd_relative``, ``mean_class_distance``, ``n_source``,
        ``n_target``, ``per_class`` (DataFrame) and ``space`` (a sentence saying what was compared).

    Raises
    ------
    lepton.data.DataError
        Domains that cannot be paired (different modalities or feature sizes, no shared class).
    ValueError
        Fewer than 4 examples in a domain.
    """
    from ..data import load_domain
    from ..data.pairing import harmonise
    from ..data.sampling import stratified_sample

    doms = [load_domain(d) if isinstance(d, str) else d for d in (source, target)]
    (s, t), record = harmonise(doms)
    (xs, ys), (xt, yt) = s.split(split), t.split(split)
    i, j = stratified_sample(ys, cap, seed), stratified_sample(yt, cap, seed)
    out = shift_between(xs[i], xt[j], ys[i], yt[j], s.class_names, seed)
    what = "pixels" if s.modality == "image" else "input features"
    out["space"] = (f"raw {what} ({int(np.prod(s.input_shape))} values per example) of the {split} split, "
                    f"after pairing; up to {cap} examples per domain")
    return out
