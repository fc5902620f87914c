"""2-D maps of stored feature snapshots: UMAP (default), PCA and t-SNE coordinates.

Source and target (and any evaluation domain) are always fitted together in ONE map; nothing is
``transform``-ed into another domain's map, which would pull the target onto the source's
structure and hide the shift (umap-learn issues #506, #968). Maps are seeded, cached on disk in
the run folder (``maps/``) keyed by run, epoch(s), domains, method and parameters, so a finished
run's map opens in milliseconds. All UMAP fits in the process hold one lock: two numba fits at
once can abort the process (umap-learn #665). umap-learn is imported only inside the functions.

Coordinates only; plotting is the app's business.
"""
from __future__ import annotations

import hashlib
import threading
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

MAP_METHODS = ("umap", "pca", "tsne")
_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "umap": {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "random_state": 0, "pca_dims": 50},
    "pca": {"random_state": 0},
    "tsne": {"perplexity": 30.0, "random_state": 0, "pca_dims": 50},
}
_CACHE_VERSION = 1
#: One lock for every UMAP fit in this process (numba's workqueue aborts on concurrent fits).
UMAP_LOCK = threading.Lock()


def resolve_params(method: str, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The method's default parameters overridden by ``params``.

    Parameters
    ----------
    method : str
        ``umap``, ``pca`` or ``tsne``.
    params : dict, optional
        ``umap``: ``n_neighbors`` (capped at N-1), ``min_dist``, ``metric``, ``random_state``,
        ``pca_dims`` (PCA to this many dims first when D is larger; 0 = never);
        ``pca``: ``random_state``; ``tsne``: ``perplexity`` (capped at (N-1)/3), ``random_state``,
        ``pca_dims``.

    Raises
    ------
    ValueError
        Unknown method, or an unknown parameter (naming the valid ones).
    """
    if method not in MAP_METHODS:
        raise ValueError(f"unknown map method {method!r}; use one of {', '.join(MAP_METHODS)}")
    p = dict(_DEFAULTS[method])
    unknown = sorted(set(params or {}) - set(p))
    if unknown:
        raise ValueError(f"unknown {method} map parameter {', '.join(unknown)}; valid: {', '.join(p)}")
    p.update(params or {})
    return p


def _reduce(x: np.ndarray, dims: int, seed: int) -> np.ndarray:
    if not dims or x.shape[1] <= dims or len(x) <= dims:
        return x
    from sklearn.decomposition import PCA
    return PCA(int(dims), random_state=seed).fit_transform(x).astype(np.float32)


def _umap(x: np.ndarray, p: Dict[str, Any], init: Any = None) -> np.ndarray:
    import umap  # lazy: importing and the first fit compile numba code

    n = len(x)
    kw = dict(n_neighbors=int(max(2, min(int(p["n_neighbors"]), n - 1))), min_dist=float(p["min_dist"]),
              metric=p["metric"], random_state=int(p["random_state"]), force_approximation_algorithm=True,
              n_components=2)
    inits = [init] if init is not None else (["spectral", "random"] if n >= 10 else ["random"])
    with UMAP_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs override, disconnected-graph notes: expected here
        for i, how in enumerate(inits):
            try:
                return umap.UMAP(init=how, **kw).fit_transform(x)
            except (TypeError, ValueError, np.linalg.LinAlgError):  # spectral init fails on odd graphs
                if i == len(inits) - 1:
                    raise
    raise AssertionError("unreachable")


def _pca(x: np.ndarray, p: Dict[str, Any]) -> np.ndarray:
    from sklearn.decomposition import PCA
    k = min(2, x.shape[0], x.shape[1])
    out = np.zeros((len(x), 2), np.float32)
    out[:, :k] = PCA(k, random_state=int(p["random_state"])).fit_transform(x)
    return out


def _tsne(x: np.ndarray, p: Dict[str, Any], init: Optional[np.ndarray] = None) -> np.ndarray:
    from sklearn.manifold import TSNE
    perp = float(max(1.0, min(float(p["perplexity"]), (len(x) - 1) / 3.0)))
    if init is not None:  # sklearn expects a small initial spread, like its own "pca" init
        init = (init - init.mean(0)) / (init[:, 0].std() + 1e-12) * 1e-4
    ts = TSNE(2, perplexity=perp, init=init if init is not None else "pca", learning_rate="auto",
              random_state=int(p["random_state"]))
    return ts.fit_transform(x)


def embed(x: np.ndarray, method: str = "umap", params: Optional[Dict[str, Any]] = None,
          init: Optional[np.ndarray] = None) -> np.ndarray:
    """2-D coordinates of the rows of ``x`` (one joint fit of all rows).

    Parameters
    ----------
    x : np.ndarray
        ``(N, D)`` features (any float dtype; images are flattened).
    method : str
        ``umap`` (umap-learn, McInnes et al. 2018), ``pca`` or ``tsne`` (scikit-learn; van der
        Maaten & Hinton 2008).
    params : dict, optional
        See :func:`resolve_params`.
    init : np.ndarray, optional
        ``(N, 2)`` starting coordinates (umap, tsne), e.g. the previous epoch's frame.

    Returns
    -------
    np.ndarray
        ``(N, 2)`` float32.

    Raises
    ------
    ValueError
        Fewer than 3 points, non-finite features, or bad parameters.
    ImportError
        umap-learn missing (``pip install umap-learn``) for ``method="umap"``.
    """
    p = resolve_params(method, params)
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    if len(x) < 3:
        raise ValueError(f"a map needs at least 3 points, got {len(x)}; pick more domains or a run with more "
                         "test examples")
    if not np.isfinite(x).all():
        raise ValueError("the features contain NaN or infinite values; the run diverged, so there is nothing to map")
    if method == "pca":
        out = _pca(x, p)
    else:
        xr = _reduce(x, int(p.get("pca_dims") or 0), int(p["random_state"]))
        if method == "umap":
            try:
                out = _umap(xr, p, init)
            except ImportError as e:
                raise ImportError("UMAP maps need umap-learn: pip install umap-learn (or use method='pca')") from e
        else:
            out = _tsne(xr, p, init)
    out = np.asarray(out, np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{method} gave non-finite coordinates for these {len(x)} points; try method='pca'")
    return out


# ----- the knowledge-base side ---------------------------------------------------------------------
def _select(snap: Dict[str, Any], domains: Optional[Sequence[Any]]) -> np.ndarray:
    names = snap["domain_names"]
    if domains is None:
        return np.arange(len(snap["domain"]))
    ids = []
    roles = list(snap.get("domain_roles") or [])
    for d in domains:
        if isinstance(d, (int, np.integer)) and 0 <= int(d) < len(names):
            ids.append(int(d))
        elif d in ("source", "target") and d in roles:
            ids.extend(i for i, r in enumerate(roles) if r == d)
        elif d in names:
            ids.append(names.index(d))
        else:
            raise ValueError(f"domain {d!r} is not in this run; it has {', '.join(names)} (or 'source'/'target')")
    return np.flatnonzero(np.isin(snap["domain"], sorted(set(ids))))


def _frame(snap: Dict[str, Any], rows: np.ndarray, xy: np.ndarray, epoch: int):
    import pandas as pd
    names = list(snap["domain_names"])
    roles = list(snap.get("domain_roles") or (["source", "target"] + ["eval"] * (len(names) - 2)))
    if len(set(names)) < len(names):
        names = [f"{n} ({r})" for n, r in zip(names, roles)]
    cls = np.asarray(snap["class_names"], dtype=object)
    dom, lab, pred = snap["domain"][rows], snap["labels"][rows], snap["preds"][rows]
    return pd.DataFrame({
        "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32),
        "domain": np.asarray(names, dtype=object)[dom], "domain_id": dom,
        "role": np.asarray(roles, dtype=object)[dom],
        "label": cls[lab], "label_id": lab, "pred": cls[pred], "pred_id": pred, "correct": lab == pred,
        "row": rows.astype(np.int64), "index": snap["index"][rows], "epoch": np.full(len(rows), epoch, np.int64)})


def compute_map(kb, run_id: str, epoch: Optional[int] = None, method: str = "umap",
                params: Optional[Dict[str, Any]] = None, domains: Optional[Sequence[Any]] = None,
                cache: bool = True):
    """2-D map of one feature snapshot of a stored run, all chosen domains in one fit.

    Parameters
    ----------
    kb : lepton.kb.KnowledgeBase
    run_id : str
    epoch : int, optional
        Snapshot epoch (0 = before training); default the last one.
    method : str
        ``umap`` (default), ``pca`` or ``tsne``.
    params : dict, optional
        See :func:`resolve_params`.
    domains : sequence, optional
        Domain names, ids or ``"source"``/``"target"``; default every domain of the run.
    cache : bool
        Read and write the on-disk cache (``<run>/maps/``).

    Returns
    -------
    pandas.DataFrame
        One row per point: ``x``, ``y`` (float32), ``domain`` (name), ``domain_id``, ``role``
        (source/target/eval), ``label`` and ``pred`` (class names), ``label_id``, ``pred_id``,
        ``correct`` (bool), ``row`` (row of the snapshot, 0..N-1, for ``load_features``),
        ``index`` (row in that domain's harmonised test split), ``epoch``.

    Raises
    ------
    lepton.kb.KBError
        Unknown run, or a run without feature snapshots (or none at ``epoch``).
    ValueError
        Fewer than 3 points, unknown domain, method or parameter.
    """
    rid = kb.resolve(run_id)
    snap = kb.load_features(rid, epoch)
    rows = _select(snap, domains)
    p = resolve_params(method, params)
    key = {"kind": "map", "run": rid, "epochs": [snap["epoch"]], "rows": _rows_key(rows), "method": method,
           "params": p, "v": _CACHE_VERSION}
    xy = kb.cached_map(rid, key) if cache else None
    if xy is None or len(xy) != len(rows):
        xy = embed(snap["features"][rows], method, p)
        if cache:
            kb.cache_map(rid, key, xy)
    return _frame(snap, rows, xy, snap["epoch"])


def _rows_key(rows: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(rows, np.int64).tobytes()).hexdigest()[:16]


def _procrustes(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Rotate/reflect ``cur`` (centred) onto ``prev`` (orthogonal Procrustes, scipy)."""
    from scipy.linalg import orthogonal_procrustes
    a, b = cur - cur.mean(0), prev - prev.mean(0)
    r, _ = orthogonal_procrustes(a, b)
    return (a @ r + prev.mean(0)).astype(np.float32)


def _aligned_umap(xs: List[np.ndarray], p: Dict[str, Any]) -> List[np.ndarray]:
    import umap
    n = len(xs[0])
    rel = [{i: i for i in range(n)} for _ in range(len(xs) - 1)]  # the same samples every epoch
    au = umap.AlignedUMAP(n_neighbors=int(max(2, min(int(p["n_neighbors"]), n - 1))), min_dist=float(p["min_dist"]),
                          metric=p["metric"], random_state=int(p["random_state"]), force_approximation_algorithm=True,
                          init="spectral" if n >= 10 else "random")
    with UMAP_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        au.fit(xs, relations=rel)
    return [np.asarray(e, np.float32) for e in au.embeddings_]


def aligned_maps(kb, run_id: str, epochs: Optional[Sequence[int]] = None, method: str = "umap",
                 params: Optional[Dict[str, Any]] = None, domains: Optional[Sequence[Any]] = None,
                 cache: bool = True):
    """Maps of several snapshots of one run, aligned so the points move smoothly between epochs.

    ``umap``: :class:`umap.AlignedUMAP` with identity relations between consecutive epochs (the
    same samples are snapshotted each epoch). ``pca``: independent fits, each rotated onto the
    previous frame (orthogonal Procrustes). ``tsne``: each frame starts from the previous one.

    Parameters
    ----------
    epochs : sequence of int, optional
        Default: every snapshot of the run.
    method, params, domains, cache
        As in :func:`compute_map`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`compute_map`, frames stacked, ``epoch`` telling them apart.

    Raises
    ------
    lepton.kb.KBError, ValueError
        As :func:`compute_map`.
    """
    import pandas as pd
    rid = kb.resolve(run_id)
    eps = list(kb.feature_epochs(rid)) if epochs is None else [int(e) for e in epochs]
    snaps = [kb.load_features(rid, e) for e in eps] if eps else [kb.load_features(rid)]
    rows = _select(snaps[0], domains)
    p = resolve_params(method, params)
    key = {"kind": "aligned", "run": rid, "epochs": [s["epoch"] for s in snaps], "rows": _rows_key(rows),
           "method": method, "params": p, "v": _CACHE_VERSION}
    coords = kb.cached_map(rid, key) if cache else None
    if coords is None or coords.shape[:2] != (len(snaps), len(rows)):
        coords = np.stack(_aligned_frames([s["features"][rows] for s in snaps], method, p))
        if cache:
            kb.cache_map(rid, key, coords)
    return pd.concat([_frame(s, rows, c, s["epoch"]) for s, c in zip(snaps, coords)], ignore_index=True)


def _aligned_frames(xs: List[np.ndarray], method: str, p: Dict[str, Any]) -> List[np.ndarray]:
    if method == "umap" and len(xs) > 1 and len(xs[0]) >= 3:
        try:
            return _aligned_umap([_reduce(x, int(p.get("pca_dims") or 0), int(p["random_state"])) for x in xs], p)
        except (TypeError, ValueError, np.linalg.LinAlgError):  # odd tiny graphs: chain frames instead
            pass
    frames: List[np.ndarray] = []
    for x in xs:
        init = frames[-1] if (frames and method != "pca") else None
        xy = embed(x, method, p, init=init)
        frames.append(_procrustes(frames[-1], xy) if frames else xy)
    return frames


def warm_up(aligned: bool = False) -> float:
    """Compile umap-learn's numba code with a tiny seeded fit (holding the UMAP lock).

    The first UMAP fit in a process spends 15-90 s compiling; the app calls this once in a
    background thread at start so the first real map is quick.

    Parameters
    ----------
    aligned : bool
        Also compile :class:`umap.AlignedUMAP` (used by :func:`aligned_maps`; ~20 s more).

    Returns
    -------
    float
        Seconds taken (0.0 when umap-learn is not installed).
    """
    t0 = time.perf_counter()
    try:
        x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
        embed(x, "umap", {"n_neighbors": 10})
        if aligned:
            _aligned_umap([x, x + 0.01], resolve_params("umap", {"n_neighbors": 10}))
    except ImportError:
        return 0.0
    return time.perf_counter() - t0
