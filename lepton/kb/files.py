"""Atomic writes and checked reads of the files in a knowledge-base run folder.

Every file is written to a temporary name in the same folder and moved into place with
:func:`os.replace`, so a reader (or a process that is killed mid-write) sees either the old file
or the new one, never half of one. Reads turn a missing or damaged file into a
:class:`RunFileError` that names the file and says what to do.
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np

from .. import fileio

TMP_PREFIX = fileio.TMP_PREFIX


class KBError(ValueError):
    """A knowledge-base problem shown to the user as one line (unknown run, damaged files,
    a newer database, a full disk). A ``ValueError``, so the CLI reports it with exit status 2."""


class RunFileError(KBError):
    """A run file is missing or cannot be read; the message names the file."""


def _write_payload(fh, data: bytes) -> None:
    """Write ``data`` to the open temporary file (the step a full disk makes fail)."""
    fh.write(data)


def atomic_write_bytes(path: os.PathLike, data: bytes, fsync: bool = False) -> Path:
    """:func:`lepton.fileio.atomic_write_bytes` through :func:`_write_payload` (which a test makes
    fail like a full disk)."""
    return fileio.atomic_write_bytes(path, data, fsync, write=lambda fh, d: _write_payload(fh, d))


def json_ready(obj: Any) -> Any:
    """JSON-ready copy: NaN/inf floats become ``None``, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    return obj


def write_json(path: os.PathLike, obj: Any, fsync: bool = False) -> Path:
    """Write ``obj`` as JSON atomically (non-finite floats stored as ``null``)."""
    data = json.dumps(json_ready(obj), indent=1, sort_keys=True, default=str).encode("utf-8")
    return atomic_write_bytes(path, data, fsync)


def read_json(path: os.PathLike, run_id: str = "") -> Any:
    """Read a JSON file of a run.

    Raises
    ------
    RunFileError
        Missing or unparsable, naming the file and the run.
    """
    return _read_run_file(path, run_id, lambda p: json.loads(p.read_text(encoding="utf-8")),
                          (OSError, UnicodeDecodeError, json.JSONDecodeError))


def _read_run_file(path: os.PathLike, run_id: str, load: Callable[[Path], Any], damaged: tuple,
                   what: str = "file") -> Any:
    """``load(path)``, turning a missing file or one of the ``damaged`` errors into a :class:`RunFileError`."""
    path = Path(path)
    try:
        return load(path)
    except FileNotFoundError:
        shown = path.name if what == "checkpoint" else path
        raise RunFileError(f"run {run_id}: {what} {shown} is missing{_hint(run_id)}") from None
    except damaged as e:
        raise RunFileError(f"run {run_id}: {what} {path.name} is damaged ({e}){_hint(run_id)}") from None


def _hint(run_id: str) -> str:
    return f"; remove the run with `python -m lepton kb delete {run_id}`" if run_id else ""


def write_npz(path: os.PathLike, arrays: Dict[str, np.ndarray], fsync: bool = False) -> Path:
    """Write numpy arrays (numbers or unicode strings, no objects) as an uncompressed ``.npz``."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue(), fsync)


def read_npz(path: os.PathLike, run_id: str = "") -> Dict[str, np.ndarray]:
    """Read an ``.npz`` with ``allow_pickle=False``.

    Raises
    ------
    RunFileError
        Missing or damaged.
    """
    def load(p: Path) -> Dict[str, np.ndarray]:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    return _read_run_file(path, run_id, load, (OSError, ValueError, EOFError, KeyError))


def write_state(path: os.PathLike, state: Dict[str, Any], fsync: bool = True) -> Path:
    """Write a raw ``state_dict`` (CPU tensors) as safetensors, atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    return atomic_write_bytes(path, save(tensors), fsync)


def read_state(path: os.PathLike, run_id: str = "") -> Dict[str, Any]:
    """Read a safetensors ``state_dict`` (name -> CPU ``torch.Tensor``).

    Raises
    ------
    RunFileError
        Missing or damaged.
    """
    from safetensors.torch import load

    # safetensors raises its own SafetensorError for bad headers, hence Exception
    return _read_run_file(path, run_id, lambda p: load(p.read_bytes()), (Exception,), what="checkpoint")


def call_writing(what: str, fn: Callable[[], Any]) -> Any:
    """Run a write and turn an ``OSError`` into a :class:`KBError` that says what failed.

    Raises
    ------
    KBError
        E.g. ``could not write the feature snapshot: [Errno 28] No space left on device``.
    """
    try:
        return fn()
    except OSError as e:
        extra = "; free some disk space or set LEPTON_HOME to another disk" if e.errno == 28 else ""
        raise KBError(f"could not write {what}: {e}{extra}") from e
