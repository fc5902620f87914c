"""The domain registry: named domains, shift composition by name, custom paths.

Name syntax
-----------
``BASE[:SHIFT[=VALUE]]...`` applies shift operators left to right to a registered image or audio
domain, e.g. ``digits:rotate=30``, ``mnist:invert``, ``usps:noise=0.3:blur=1``,
``fsdd-george:noise=10:telephone``. See :mod:`lepton.data.shifts` and :mod:`lepton.data.audio` for
the operators. A name that is an existing path is a custom domain: a folder laid out
``root/<class>/<image>`` or ``root/<class>/<clip>.wav`` or a feature table (``.csv``, ``.npz``, ``.mat``); a
table's options follow a ``#``: ``PATH#label=COLUMN,x=KEY,base=1`` (see :mod:`lepton.data.custom`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..registry import Registry
from ..paths import resolve_data_dir
from .domain import DataError, Domain


@dataclass(frozen=True)
class DomainSpec:
    """A registered domain: how to load it and what it is.

    Parameters
    ----------
    name : str
        Registry name.
    modality : str
        ``"image"``, ``"features"``, ``"text"`` or ``"audio"``.
    description : str
        One line for listings.
    loader : callable
        ``loader(data_dir: Path) -> Domain``.
    files : callable, optional
        ``files(data_dir) -> list[Path]`` of files the loader reads; empty for built-ins.
    needs : callable, optional
        ``needs(data_dir) -> list[Path]``: the few paths whose presence marks the domain available
        (a folder of thousands of clips: the folder), for listings; default ``files``.
    """

    name: str
    modality: str
    description: str
    loader: Callable[[Path], Domain]
    files: Optional[Callable[[Path], List[Path]]] = None
    needs: Optional[Callable[[Path], List[Path]]] = None

    def missing_files(self, data_dir: Optional[Path] = None) -> List[Path]:
        """Files (or folders) the loader needs that are not present in ``data_dir``."""
        check = self.needs or self.files
        if check is None:
            return []
        return [p for p in check(resolve_data_dir(data_dir)) if not p.exists()]


DOMAINS: Registry[DomainSpec] = Registry("domain")


_CACHE: Dict[tuple, Domain] = {}


def load_domain(name: str, data_dir: Optional[os.PathLike] = None, cache: bool = True) -> Domain:
    """Load a domain by registry name, shifted name (``digits:rotate=30``) or custom path.

    Parameters
    ----------
    name : str
        See the module docstring for the syntax.
    data_dir : path-like, optional
        Folder with benchmark files (default :func:`resolve_data_dir`).
    cache : bool
        Keep loaded domains in memory for this process (they are treated as read-only).

    Returns
    -------
    Domain

    Raises
    ------
    lepton.registry.UnknownNameError
        Unknown name (the message lists valid names).
    DataError
        Missing, corrupt or unusable data files; bad shift parameters.
    """
    from . import benchmarks, builtin, custom, shifts, text, audio, interactions  # noqa: F401  (registers built-ins)

    if isinstance(name, str) and name.strip() and name.strip().split(":")[0] not in DOMAINS:
        _register_user_domains()
    if not isinstance(name, str) or not name.strip():
        raise DataError("a domain name is empty; run `python -m lepton domains` to list domains")
    name = name.strip()
    ddir = resolve_data_dir(data_dir)
    key = (name, str(ddir))
    if cache and key in _CACHE:
        return _CACHE[key]
    if name not in DOMAINS and _is_path(name):
        dom = custom.load_custom(name)
    else:
        base, ops = shifts.parse_name(name)
        dom = _load_registered(base, ddir)
        if ops:
            dom = shifts.apply_shifts(dom, ops, name=name)
    if cache:
        _CACHE[key] = dom
    return dom


def domain_modality(name: str) -> Optional[str]:
    """A domain's modality from its name without loading its data (registered: the registry's;
    a path: ``interactions`` for a table with user and item columns); ``None`` when unknown."""
    from . import benchmarks, builtin, custom, shifts, text, audio, interactions  # noqa: F401
    base = str(name).split(":")[0].strip()
    if base in DOMAINS:
        return DOMAINS.get(base).modality
    if _is_path(str(name)):
        path = Path(str(name).rpartition("#")[0] or str(name)).expanduser()
        if not path.exists():
            path = Path(str(name)).expanduser()
        return "interactions" if path.is_file() and interactions.is_interaction_table(path) else None
    return None


def _is_path(name: str) -> bool:
    """A custom path (possibly with ``#options``; a ``#`` may also be part of the path itself)."""
    path_part = name.rpartition("#")[0] or name
    return (os.sep in name.split("#", 1)[0] or os.sep in path_part or Path(name).expanduser().exists()
            or Path(path_part).expanduser().exists())


def _register_user_domains() -> None:
    """Register the domains a user added (uploads kept under ``$LEPTON_HOME/domains``)."""
    from .user_domains import load_user_domains
    load_user_domains()


def _load_registered(name: str, ddir: Path) -> Domain:
    """Load a registered domain from the registry (helper of :func:`load_domain`)."""
    spec = DOMAINS.get(name)
    return spec.loader(ddir)


def list_domains(data_dir: Optional[os.PathLike] = None) -> List[dict]:
    """One row per registered domain: name, modality, description, files present.

    Returns
    -------
    list of dict
        Keys ``name``, ``modality``, ``description``, ``available`` (bool), ``missing`` (paths).
    """
    from . import benchmarks, builtin, custom, shifts, text, audio, interactions  # noqa: F401

    _register_user_domains()
    ddir = resolve_data_dir(data_dir)
    rows = []
    for n in DOMAINS.names():
        spec = DOMAINS.get(n)
        missing = spec.missing_files(ddir)
        rows.append({"name": n, "modality": spec.modality, "description": spec.description,
                     "available": not missing, "missing": [str(p) for p in missing]})
    return rows
