"""2-D maps of stored feature snapshots: UMAP (default), PCA and t-SNE coordinates.

Source and target (and any evaluation domain) are always fitted together in ONE map; nothing is
``transform``-ed into another domain's map, which would pull the target onto the source's
structure and hide the shift (umap-learn issues #506, #968). Maps are seeded, cached on disk in
the run folder (``maps/``) keyed by run, epoch(s), domains, method and parameters, so a finished
run's map opens in milliseconds. All UMAP fits in the process hold one lock: two numba fits at
once can abort the process (umap-learn #665). umap-learn is imported only inside the functions.

Degenerate features are refused before any fit (:func:`check_features`): NaN or infinite values,
values so large that sums of squares overflow 32-bit floats, collapsed features (every row the
same vector) and too few distinct rows for the method's neighbourhood. scikit-learn's t-SNE
(1.9) dies with a segmentation fault on collapsed and on overflowing features (its PCA start
divides by a zero or infinite spread); a map of the others shows nothing. The errors
(:class:`DegenerateFeaturesError`, a ``ValueError``) say what is wrong and what to pick instead.
Callers that must survive a native crash of the projection library anyway fit in a child process
(``compute_map(..., isolate=True)``, :func:`run_isolated`), which turns the crash into a
:class:`MapCrashError`; the server's long-lived map process is :mod:`lepton.evaluation.mapworker`.

Coordinates only; plotting is the app's business.
"""
from __future__ import annotations

import hashlib
import math
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


class DegenerateFeaturesError(ValueError):
    """Features that no map can be fitted to (non-finite, overflowing, collapsed, too few distinct rows).

    The message is one line for the user: what is wrong with which features, and what to do.
    """


class MapCrashError(RuntimeError):
    """The child process fitting a map ended without an answer (segfault, abort, killed)."""


_F32_MAX = float(np.finfo(np.float32).max)
#: A duplicate share at or above this is stated in the map's notes (``DataFrame.attrs["notes"]``).
DUPLICATE_NOTE_SHARE = 0.1
_LABELS = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}


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


def _n(v: int) -> str:
    return f"{int(v):,}"


def _subject(run_id: Optional[str], epoch: Optional[int]) -> str:
    if run_id is None:
        return "the features"
    return f"the features of run {run_id}" + ("" if epoch is None else f" at epoch {int(epoch)}")


def _earlier(epoch: Optional[int]) -> str:
    return "pick another run" if epoch == 0 else "pick an earlier epoch or another run"


def distinct_rows(x: np.ndarray) -> int:
    """The number of distinct rows of a 2-D array (``-0.0`` equals ``0.0``).

    Parameters
    ----------
    x : np.ndarray
        ``(N, D)`` finite values.

    Returns
    -------
    int
    """
    x = np.ascontiguousarray(np.asarray(x).reshape(len(x), -1))
    if x.dtype.kind == "f":
        x = x + x.dtype.type(0)  # -0.0 -> 0.0, so both compare equal as bytes
    if not len(x) or not x.shape[1]:
        return min(len(x), 1)
    rows = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
    return int(len(np.unique(rows)))


def needed_distinct(method: str, n: int, params: Optional[Dict[str, Any]] = None) -> int:
    """Distinct rows a map of ``n`` points needs: its neighbourhood plus the point itself.

    Parameters
    ----------
    method : str
        ``umap`` (``n_neighbors`` + 1, capped as in the fit), ``tsne`` (perplexity + 1, capped as
        in the fit) or ``pca`` (2).
    n : int
        Number of rows.
    params : dict, optional
        See :func:`resolve_params`.

    Returns
    -------
    int
    """
    p = resolve_params(method, params)
    if method == "umap":
        return int(max(2, min(int(p["n_neighbors"]), n - 1))) + 1
    if method == "tsne":
        return int(math.ceil(max(1.0, min(float(p["perplexity"]), (n - 1) / 3.0)))) + 1
    return 2


def check_features(x: np.ndarray, method: str = "umap", params: Optional[Dict[str, Any]] = None, *,
                   run_id: Optional[str] = None, epoch: Optional[int] = None) -> List[str]:
    """Refuse features no map can show, before any fit; return notes about ones it can.

    Parameters
    ----------
    x : np.ndarray
        ``(N, D)`` features (any numeric dtype; more dimensions are flattened).
    method : str
        ``umap``, ``pca`` or ``tsne``: sets how many distinct rows are needed
        (:func:`needed_distinct`).
    params : dict, optional
        See :func:`resolve_params`.
    run_id, epoch : optional
        Named in the messages ("the features of run X at epoch E ...").

    Returns
    -------
    list of str
        Notes for the map's caption, e.g. how many rows repeat another exactly (said when at
        least :data:`DUPLICATE_NOTE_SHARE` of them do).

    Raises
    ------
    DegenerateFeaturesError
        Fewer than 3 rows; NaN or infinite values; a value so large that sums of squares over
        the N x D features overflow 32-bit floats (|x| >= sqrt(float32 max / (4 N D)), about
        1e16 for 2,000 x 128); every row the same vector (each column's spread at most 1e-6 of
        its magnitude: collapsed features); fewer distinct rows than :func:`needed_distinct`.
    """
    what = _subject(run_id, epoch)
    raw = np.asarray(x)
    n = len(raw)
    raw = raw.reshape(n, -1)
    if n < 3:
        raise DegenerateFeaturesError(f"a map needs at least 3 points, got {n}; pick more domains or a run with more "
                                      "test examples")
    if raw.dtype.kind not in "fiub":
        raise DegenerateFeaturesError(f"{what} are not numbers (dtype {raw.dtype}); nothing to map")
    d = raw.shape[1]
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw)
        if bad.any():
            nan, inf = int(np.isnan(raw).sum()), int(bad.sum() - np.isnan(raw).sum())
            kinds = " and ".join(k for k, c in ((f"{_n(nan)} NaN", nan), (f"{_n(inf)} infinite", inf)) if c)
            raise DegenerateFeaturesError(
                f"{what} contain {kinds} values (in {_n(bad.any(1).sum())} of the {_n(n)} rows): training "
                f"diverged; {_earlier(epoch)}, or train again with a lower learning rate")
    big = float(np.abs(raw).max(initial=0).astype(np.float64)) if raw.size else 0.0
    limit = math.sqrt(_F32_MAX / (4.0 * n * max(d, 1)))
    if big >= limit:
        raise DegenerateFeaturesError(
            f"{what} hold values as large as {big:.3g}; a map of {_n(n)} points in {_n(d)} dimensions needs them "
            f"below {limit:.3g}, or the sums of squares overflow 32-bit floats: training blew up; "
            f"{_earlier(epoch)}, or train again with a lower learning rate")
    x64 = raw.astype(np.float64)
    spread = np.ptp(x64, axis=0) if d else np.zeros(0)
    scale = np.abs(x64).max(axis=0) if d else np.zeros(0)
    if not d or bool((spread <= 1e-6 * scale).all()):
        exact = "" if not d or float(spread.max()) == 0.0 else f" up to rounding (largest spread {spread.max():.2g})"
        raise DegenerateFeaturesError(
            f"{what} collapsed: all {_n(n)} rows are the same vector{exact}; the model learned nothing a map can "
            f"show; {_earlier(epoch)}")
    u = distinct_rows(raw)
    need = needed_distinct(method, n, params)
    if u < need:
        p = resolve_params(method, params)
        hood = (f"with n_neighbors {int(max(2, min(int(p['n_neighbors']), n - 1)))}" if method == "umap" else
                f"with perplexity {max(1.0, min(float(p['perplexity']), (n - 1) / 3.0)):g}" if method == "tsne"
                else "")
        alt = (f"; {_earlier(epoch)}, or use method 'pca'" if method != "pca" else f"; {_earlier(epoch)}")
        raise DegenerateFeaturesError(
            f"{what} nearly collapsed: only {_n(u)} distinct vectors among {_n(n)} rows ({_n(n - u)} rows repeat "
            f"another exactly); a {_LABELS[method]} map {hood + ' ' if hood else ''}needs at least {_n(need)} "
            f"distinct vectors{alt}")
    notes = []
    if n - u and (n - u) >= DUPLICATE_NOTE_SHARE * n:
        notes.append(f"{_n(n - u)} of the {_n(n)} rows repeat another row exactly ({_n(u)} distinct vectors): "
                     "repeated points lie on top of each other in the map")
    return notes


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
    DegenerateFeaturesError
        Features no map can show (:func:`check_features`): fewer than 3 points, NaN or infinite
        values, overflowing values, collapsed features, too few distinct rows.
    ValueError
        Bad parameters, or non-finite coordinates out of the fit.
    ImportError
        umap-learn missing (``pip install umap-learn``) for ``method="umap"``.
    """
    p = resolve_params(method, params)
    check_features(x, method, p)
    x = np.asarray(x, np.float32).reshape(len(x), -1)
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


# ----- fitting in a child process ------------------------------------------------------------------
def describe_exit(exitcode: Optional[int]) -> str:
    """How a child process ended, in words: ``"signal 11, SIGSEGV"``, ``"exit status 1"``.

    Parameters
    ----------
    exitcode : int or None
        :attr:`multiprocessing.Process.exitcode` or :attr:`subprocess.Popen.returncode`
        (negative: killed by that signal).

    Returns
    -------
    str
    """
    import signal
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return f"signal {-exitcode}, {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


_CHILD_CODE = ("import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
               "from lepton.evaluation.projection import _isolated_main; _isolated_main(sys.argv[1])")


def _isolated_main(out_path: str) -> None:
    """Child side of :func:`run_isolated`: read the call from stdin, write ``("ok", result)`` or
    ``("error", exception)`` to ``out_path`` (whole or not at all)."""
    import os
    import pickle
    import sys
    try:
        fn, args, kwargs = pickle.load(sys.stdin.buffer)
        out = ("ok", fn(*args, **kwargs))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
        out = ("error", e)
    try:
        data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - an exception (or a result) that does not pickle
        msg = f"{type(out[1]).__name__}: {out[1]}" if out[0] == "error" else f"the result could not be sent back: {e}"
        data = pickle.dumps(("error", RuntimeError(msg)))
    with open(out_path + ".part", "wb") as f:
        f.write(data)
    os.replace(out_path + ".part", out_path)


def run_isolated(fn, *args, what: str = "fitting a map", **kwargs):
    """``fn(*args, **kwargs)`` in a fresh Python process; a native crash there becomes an exception here.

    The child is a new interpreter (``python -c``, the caller's ``sys.path`` and environment, e.g.
    ``NUMBA_CACHE_DIR``), not a :mod:`multiprocessing` child: it never re-imports the caller's
    ``__main__``, so scripts without an ``if __name__ == "__main__"`` guard may call this too.
    ``fn`` and the arguments are pickled (``fn`` by name: it must be importable at module level);
    the caller's monkeypatches do not reach the child, except by replacing what is pickled.

    Parameters
    ----------
    fn : callable
        A module-level function, e.g. :func:`embed`.
    *args, **kwargs
        Its arguments.
    what : str
        The work, for the crash message: "fitting t-SNE on 2,000 points of run X at epoch 3".

    Returns
    -------
    object
        What ``fn`` returned.

    Raises
    ------
    MapCrashError
        The child died without an answer: "the map process crashed (signal 11, SIGSEGV) while
        fitting t-SNE on ...; ...".
    Exception
        Whatever ``fn`` raised in the child (re-raised here).
    """
    import os
    import pickle
    import subprocess
    import sys
    import tempfile
    call = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)  # fails here, before any process
    with tempfile.TemporaryDirectory(prefix="lepton-map-") as tmp:
        out_path = os.path.join(tmp, "result.pkl")
        proc = subprocess.Popen([sys.executable, "-c", _CHILD_CODE, out_path], stdin=subprocess.PIPE)
        try:
            try:
                pickle.dump(list(sys.path), proc.stdin)
                proc.stdin.write(call)
                proc.stdin.close()
            except (BrokenPipeError, OSError):  # the child died before it read the call
                pass
            code = proc.wait()
        finally:
            if proc.poll() is None:  # e.g. interrupted while the child still fits
                proc.kill()
                proc.wait()
        answer = None
        if os.path.exists(out_path):  # written whole (renamed into place), even if the child died after
            with open(out_path, "rb") as f:
                answer = pickle.load(f)
    if answer is None:
        raise MapCrashError(f"the map process crashed ({describe_exit(code)}) while {what}; nothing else was "
                            "affected: try method 'pca', another epoch or other parameters")
    status, value = answer
    if status == "error":
        raise value
    return value


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


NO_LABEL = "no label"  # the class shown for rows of an unlabelled domain (label -1)


def _frame(snap: Dict[str, Any], rows: np.ndarray, xy: np.ndarray, epoch: int):
    import pandas as pd
    names = list(snap["domain_names"])
    roles = list(snap.get("domain_roles") or (["source", "target"] + ["eval"] * (len(names) - 2)))
    if len(set(names)) < len(names):
        names = [f"{n} ({r})" for n, r in zip(names, roles)]
    cls = np.asarray(list(snap["class_names"]) + [NO_LABEL], dtype=object)  # index -1: an unlabelled domain
    dom, lab, pred = snap["domain"][rows], snap["labels"][rows], snap["preds"][rows]
    correct = pd.array(lab == pred, dtype="boolean")
    correct[lab < 0] = pd.NA  # no label: neither right nor wrong
    return pd.DataFrame({
        "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32),
        "domain": np.asarray(names, dtype=object)[dom], "domain_id": dom,
        "role": np.asarray(roles, dtype=object)[dom],
        "label": cls[lab], "label_id": lab, "pred": cls[pred], "pred_id": pred, "correct": correct,
        "row": rows.astype(np.int64), "index": snap["index"][rows], "epoch": np.full(len(rows), epoch, np.int64)})


def compute_map(kb, run_id: str, epoch: Optional[int] = None, method: str = "umap",
                params: Optional[Dict[str, Any]] = None, domains: Optional[Sequence[Any]] = None,
                cache: bool = True, isolate: bool = False):
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
    isolate : bool
        Fit UMAP / t-SNE in a fresh Python process (:func:`run_isolated`), so that a native crash
        of the projection library raises :class:`MapCrashError` here instead of killing this
        process. PCA and cached maps never start a process.

    Returns
    -------
    pandas.DataFrame
        One row per point: ``x``, ``y`` (float32), ``domain`` (name), ``domain_id``, ``role``
        (source/target/eval), ``label`` and ``pred`` (class names), ``label_id``, ``pred_id``,
        ``correct`` (bool), ``row`` (row of the snapshot, 0..N-1, for ``load_features``),
        ``index`` (row in that domain's harmonised test split), ``epoch``.
        ``attrs["notes"]``: list of plain-words notes on the features (e.g. heavy duplication).

    Raises
    ------
    lepton.kb.KBError
        Unknown run, or a run without feature snapshots (or none at ``epoch``).
    DegenerateFeaturesError
        Features no map can show, named by run and epoch (:func:`check_features`); checked
        before the cache is read, so an old map of collapsed features is not shown either.
    ValueError
        Unknown domain, method or parameter.
    MapCrashError
        ``isolate=True`` and the child process fitting the map died.
    """
    rid = kb.resolve(run_id)
    snap = kb.load_features(rid, epoch)
    rows = _select(snap, domains)
    p = resolve_params(method, params)
    x = snap["features"][rows]
    notes = check_features(x, method, p, run_id=rid, epoch=snap["epoch"])
    key = {"kind": "map", "run": rid, "epochs": [snap["epoch"]], "rows": _rows_key(rows), "method": method,
           "params": p, "v": _CACHE_VERSION}
    xy = kb.cached_map(rid, key) if cache else None
    if xy is None or len(xy) != len(rows):
        if isolate and method != "pca":
            xy = run_isolated(embed, x, method, p,
                              what=f"fitting {_LABELS[method]} on {_n(len(x))} points of run {rid} at epoch "
                                   f"{snap['epoch']}")
        else:
            xy = embed(x, method, p)
        if cache:
            kb.cache_map(rid, key, xy)
    df = _frame(snap, rows, xy, snap["epoch"])
    df.attrs["notes"] = notes
    return df


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
    lepton.kb.KBError, DegenerateFeaturesError, ValueError
        As :func:`compute_map`; every epoch's features are checked before any fit.
    """
    import pandas as pd
    rid = kb.resolve(run_id)
    eps = list(kb.feature_epochs(rid)) if epochs is None else [int(e) for e in epochs]
    snaps = [kb.load_features(rid, e) for e in eps] if eps else [kb.load_features(rid)]
    rows = _select(snaps[0], domains)
    p = resolve_params(method, params)
    key = {"kind": "aligned", "run": rid, "epochs": [s["epoch"] for s in snaps], "rows": _rows_key(rows),
           "method": method, "params": p, "v": _CACHE_VERSION}
    notes: List[str] = []
    for s in snaps:
        notes += check_features(s["features"][rows], method, p, run_id=rid, epoch=s["epoch"])
    coords = kb.cached_map(rid, key) if cache else None
    if coords is None or coords.shape[:2] != (len(snaps), len(rows)):
        coords = np.stack(_aligned_frames([s["features"][rows] for s in snaps], method, p))
        if cache:
            kb.cache_map(rid, key, coords)
    df = pd.concat([_frame(s, rows, c, s["epoch"]) for s, c in zip(snaps, coords)], ignore_index=True)
    df.attrs["notes"] = notes
    return df


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
