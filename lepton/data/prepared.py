"""Preparation once: loading, resizing and harmonising benchmark domains is cached on disk per
(domains, roles) and reused by later runs and processes.

The cache key holds everything the result depends on, so a changed file or option never serves
stale data: each domain's name (shift operators and their values are part of it), the role of each,
the size and modification time of every file its loader reads, and a hash of the source code of the
data package (a new loader or pairing rule makes a new key). Only pairs whose every domain reads
files (the benchmarks, the built-in digits through scikit-learn's bundled file, and their shifted
versions) are cached; uploaded and custom-path domains are prepared each time. Per-file derived
arrays (the log-mel features of audio clips, also of a user's audio folder) are kept once per set of
files by :func:`cached_arrays`, keyed the same way.

Layout: ``<cache>/prepared/<key>.npz`` (arrays, ``allow_pickle=False``) beside ``<key>.json``
(names, classes, provenance and the harmonisation record), written atomically, JSON last.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..fileio import atomic_write_bytes
from ..paths import cache_dir, resolve_data_dir
from .domain import Domain

_CODE_HASH: Optional[str] = None


def _code_hash() -> str:
    global _CODE_HASH
    if _CODE_HASH is None:
        h = hashlib.sha256()
        for p in sorted(Path(__file__).resolve().parent.glob("*.py")):
            h.update(p.name.encode() + p.read_bytes())
        _CODE_HASH = h.hexdigest()[:16]
    return _CODE_HASH


def _files(name: str, ddir: Path) -> Optional[List[Path]]:
    """Files a (possibly shifted) registered domain reads, or ``None`` when it reads none."""
    from . import benchmarks, builtin, shifts, text, audio  # noqa: F401  (registers the domains)
    from .catalog import DOMAINS
    base = shifts.parse_name(name)[0] if ":" in name else name
    if base not in DOMAINS:
        return None
    spec = DOMAINS.get(base)
    return list(spec.files(ddir)) if spec.files is not None else None


def cache_key(names: Sequence[str], roles: Sequence[str], data_dir=None, scaling: str = "none",
              text_features: str = "tfidf") -> Optional[str]:
    """The key of a pair's prepared data, or ``None`` when it is not cached (see the module docstring)."""
    ddir = resolve_data_dir(data_dir)
    parts = {"names": list(names), "roles": list(roles), "code": _code_hash(), "files": []}
    if scaling != "none":
        parts["scaling"] = scaling
    if text_features != "tfidf":
        parts["text_features"] = text_features
    for n in names:
        files = _files(n, ddir)
        stamps = _stamps(files) if files else None
        if stamps is None:
            return None  # reads no file, or one is missing: the loader reports it
        parts["files"] += stamps
    return _digest(parts)


def _stamps(files: Sequence[Path]) -> Optional[List[list]]:
    """``[resolved path, size, mtime_ns]`` of every file, or ``None`` when one is missing."""
    try:
        return [[str(Path(p).resolve()), st.st_size, st.st_mtime_ns] for p in files for st in [Path(p).stat()]]
    except OSError:
        return None


def _digest(parts: Dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _save(path: Path, domains: List[Domain], record: Dict[str, object]) -> None:
    arrays = {}
    for i, d in enumerate(domains):
        for k in ("x_train", "y_train", "x_test", "y_test"):
            arrays[f"{i}_{k}"] = getattr(d, k)
        for split in ("train", "test"):
            for col, v in d.meta(split).items():
                arrays[f"{i}_meta_{split}_{col}"] = v
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    meta = {"domains": [{"name": d.name, "modality": d.modality, "class_names": list(d.class_names),
                         "source": d.source, "content_fraction": d.content_fraction, "notes": d.notes,
                         "meta": {s: list(d.meta(s)) for s in ("train", "test")}}
                        for d in domains], "record": record}
    text = json.dumps(meta, default=str)  # before any write: an unserialisable record caches nothing
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
    atomic_write_bytes(path.with_suffix(".json"), text.encode())


def _load(path: Path) -> Optional[Tuple[List[Domain], Dict[str, object]]]:
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
            doms = [Domain(m["name"], m["modality"], z[f"{i}_x_train"], z[f"{i}_y_train"], z[f"{i}_x_test"],
                           z[f"{i}_y_test"], list(m["class_names"]), m["source"], float(m["content_fraction"]),
                           dict(m["notes"]), *({c: z[f"{i}_meta_{s}_{c}"] for c in m.get("meta", {}).get(s, [])}
                                                 for s in ("train", "test")))  # per-row columns
                    for i, m in enumerate(meta["domains"])]
        return doms, meta["record"]
    except (OSError, ValueError, KeyError, EOFError):
        return None  # absent or damaged: prepare again


def prepare(names: Sequence[str], roles: Sequence[str], data_dir=None, cache: bool = True, scaling: str = "none",
            text_features: str = "tfidf") -> Tuple[List[Domain], Dict[str, object]]:
    """Load and harmonise ``names`` (see :func:`lepton.data.pairing.harmonise`), through the disk cache.

    Parameters
    ----------
    names : sequence of str
        Domain names, in the order of ``roles``.
    roles : sequence of str
        ``source``, ``target`` or ``eval`` per domain.
    data_dir : path-like, optional
    cache : bool
        Read and write the disk cache (``LEPTON_PREP_CACHE=0`` turns it off too).
    scaling : str
        Input scaling of feature tables (:func:`lepton.data.pairing.harmonise`).
    text_features : str
        ``tfidf`` or ``tokens`` (:func:`lepton.data.pairing.harmonise`).

    Returns
    -------
    domains : list of Domain
    record : dict
        The harmonisation record.

    Raises
    ------
    lepton.data.DataError, lepton.registry.UnknownNameError
        As :func:`lepton.data.load_domain` and :func:`lepton.data.pairing.harmonise`.
    """
    from .catalog import load_domain
    from .pairing import harmonise
    use = cache and os.environ.get("LEPTON_PREP_CACHE", "1") != "0"
    key = cache_key(names, roles, data_dir, scaling, text_features) if use else None
    path = cache_dir() / "prepared" / key if key else None
    if path is not None and path.with_suffix(".json").exists():
        got = _load(path)
        if got is not None:
            return got
    domains, record = harmonise([load_domain(n, data_dir) for n in names], roles, scaling, text_features)
    if path is not None:
        try:
            _save(path, domains, record)
        except (OSError, TypeError, ValueError):
            pass  # a cache that cannot be written is only slower
    return domains, record


def cached_arrays(kind: str, files: Sequence[Path], params: Dict[str, object],
                  compute: Callable[[], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Arrays derived from ``files`` (decoded clips, features), computed once and kept on disk.

    The key is built like :func:`cache_key`'s: ``kind``, ``params``, the data-code hash and the
    resolved path, size and modification time of every file, so a changed file or option is never
    served stale. Stored as ``<cache>/prepared/<kind>-<key>.npz`` (``allow_pickle=False``), written
    atomically; ``LEPTON_PREP_CACHE=0`` turns it off, a missing file computes without caching (the
    computation reports it), a damaged entry is computed again.

    Parameters
    ----------
    kind : str
        A short tag for the file name (``"audio"``).
    files : sequence of pathlib.Path
        Every file ``compute`` reads.
    params : dict
        JSON-serialisable options the result depends on.
    compute : callable
        ``compute() -> dict of str to np.ndarray`` (numeric or str arrays, no objects).

    Returns
    -------
    dict of str to np.ndarray
    """
    key = None
    if os.environ.get("LEPTON_PREP_CACHE", "1") != "0":
        stamps = _stamps(files)  # None when a file is missing: compute() reports it
        if stamps is not None:
            key = _digest({"kind": kind, "params": params, "code": _code_hash(), "files": stamps})
    path = cache_dir() / "prepared" / f"{kind}-{key}.npz" if key else None
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            pass  # damaged: compute again
    out = compute()
    if path is not None:
        try:
            buf = io.BytesIO()
            np.savez(buf, **out)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buf.getvalue())
        except (OSError, TypeError, ValueError):
            pass  # a cache that cannot be written is only slower
    return out


def domain_summary(name: str, data_dir=None) -> Dict[str, object]:
    """Train/test sizes and input shape of a domain, for listings, through the disk cache.

    A benchmark's summary is stored beside the prepared pairs under the same kind of key (file sizes,
    modification times, data-code hash), so ``python -m lepton domains`` reads the big files once.

    Parameters
    ----------
    name : str
        A registered (possibly shifted) domain name.
    data_dir : path-like, optional

    Returns
    -------
    dict
        ``train`` (int), ``test`` (int), ``shape`` (list of int; ``[]`` for a text domain, whose
        inputs are strings).

    Raises
    ------
    lepton.data.DataError, lepton.registry.UnknownNameError
        As :func:`lepton.data.load_domain`.
    """
    from .catalog import load_domain
    use = os.environ.get("LEPTON_PREP_CACHE", "1") != "0"
    key = cache_key([name], ["summary"], data_dir) if use else None
    path = cache_dir() / "prepared" / f"summary-{key}.json" if key else None
    if path is not None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    d = load_domain(name, data_dir)
    shape = [] if d.modality == "text" else list(d.input_shape)
    out = {"train": int(d.sizes()["train"]), "test": int(d.sizes()["test"]), "shape": shape}
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(out).encode())
        except OSError:
            pass
    return out
