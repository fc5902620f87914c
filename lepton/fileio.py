"""Atomic file writes shared by the knowledge base and the data caches (a leaf: imports nothing of lepton)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable, Optional

TMP_PREFIX = ".tmp-"


def atomic_write_bytes(path: os.PathLike, data: bytes, fsync: bool = False,
                       write: Optional[Callable] = None) -> Path:
    """Write ``data`` to ``path`` atomically (temporary name in the same folder + ``os.replace``).

    Parameters
    ----------
    path : path-like
        Destination; its folder must exist.
    data : bytes
    fsync : bool
        Flush the file to the disk before the rename (for files that mark a run complete).
    write : callable, optional
        ``write(fh, data)`` writing into the open temporary file (default ``fh.write(data)``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        From the file system (``ENOSPC`` for a full disk); the temporary file is removed and
        ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as fh:
            (write or (lambda f, d: f.write(d)))(fh, data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
