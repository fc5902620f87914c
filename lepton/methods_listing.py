"""The method listing (``python -m lepton methods``, the app's method picker help) without importing
torch: built once from :data:`lepton.methods.METHODS` and kept in the cache, keyed by a hash of the
source code of :mod:`lepton.methods` and :mod:`lepton.registry`, so a changed method is listed anew."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List

from .fileio import atomic_write_bytes
from .paths import cache_dir


def _code_hash() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted((here / "methods").glob("*.py")) + [here / "registry.py", Path(__file__).resolve()]:
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def _build() -> List[Dict[str, object]]:
    from .methods import METHODS
    out = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        hp = {k: {"default": h.default, "low": h.low, "high": h.high, "choices": h.choices, "help": h.help,
                  "describe": h.describe()} for k, h in cls.all_hparams().items()}
        out.append({"name": name, "summary": cls.summary, "target_labels": cls.target_labels(),
                    "needs": list(cls.needs), "oracle": cls.oracle, "hparams": hp})
    return out


def method_listing(cache: bool = True) -> List[Dict[str, object]]:
    """Every registered method with its summary and hyper-parameters, in registry order.

    Parameters
    ----------
    cache : bool
        Read and write ``<cache>/methods-<code hash>.json`` (see :func:`lepton.paths.cache_dir`).

    Returns
    -------
    list of dict
        Keys ``name``, ``summary``, ``target_labels`` (str), ``needs`` (list of str), ``oracle`` (bool),
        ``hparams`` (name -> ``default``, ``low``, ``high``, ``choices``, ``help``, ``describe``).
    """
    path = cache_dir() / f"methods-{_code_hash()}.json"
    if cache:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    out = _build()
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(out).encode())
        except OSError:
            pass  # a listing that cannot be kept is only slower
    return out
