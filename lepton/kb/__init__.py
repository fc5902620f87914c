"""Knowledge base: stored runs (SQLite index + one folder per run) and the recorder callback.

``KnowledgeBase`` reads and manages stored runs; ``KBRecorder`` is the training-loop callback
that records one. Both are safe across threads and processes (see :mod:`lepton.kb.store`).
Importing this package does not import torch; ``KBRecorder`` is loaded on first use.
"""
from .files import KBError, RunFileError
from .store import (CHECKPOINTS, LIST_COLUMNS, SCHEMA_VERSION, STATUSES, KnowledgeBase, UnknownRunError,
                    default_home)

__all__ = ["KnowledgeBase", "KBRecorder", "KBError", "RunFileError", "UnknownRunError", "default_home",
           "stratified_sample", "CHECKPOINTS", "LIST_COLUMNS", "SCHEMA_VERSION", "STATUSES"]


def __getattr__(name):
    if name in ("KBRecorder", "stratified_sample"):
        from . import recorder
        return getattr(recorder, name)
    raise AttributeError(f"module 'lepton.kb' has no attribute {name!r}")
