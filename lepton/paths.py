"""Where Lepton keeps things: the knowledge base (``$LEPTON_HOME``) and the data folder
(``$LEPTON_DATA_DIR``) and the cache (``$LEPTON_CACHE_DIR``). The one module that reads those variables."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional


def default_home() -> Path:
    """Where the knowledge base lives: ``$LEPTON_HOME``, else the platform's user data folder
    (``$XDG_DATA_HOME/lepton`` or ``~/.local/share/lepton`` on Linux, ``~/Library/Application
    Support/lepton`` on macOS, ``%LOCALAPPDATA%\\lepton`` on Windows).

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    env = os.environ.get("LEPTON_HOME")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform.startswith("win"):
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "lepton"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "lepton"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "lepton"


def cache_dir() -> Path:
    """Where derived, rebuildable files live (prepared data, listings): ``$LEPTON_CACHE_DIR``, else
    ``<knowledge-base home>/cache``. Deleting it loses nothing but time.

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    env = os.environ.get("LEPTON_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return default_home() / "cache"


def resolve_data_dir(data_dir: Optional[os.PathLike] = None) -> Path:
    """Folder holding benchmark files: the argument, else ``$LEPTON_DATA_DIR``, else a user cache
    (``$XDG_CACHE_HOME/lepton/data`` or ``~/.cache/lepton/data``).

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("LEPTON_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lepton" / "data"
