"""Knowledge base: stored runs (SQLite index + one folder per run). It only stores, and it is the
only writer of run folders; the recorder that fills it lives with training
(:class:`lepton.training.recorder.KBRecorder`). Importing this package does not import torch."""
from ..paths import default_home
from .files import KBError, RunFileError
from .store import CHECKPOINTS, LIST_COLUMNS, SCHEMA_VERSION, STATUSES, KnowledgeBase, UnknownRunError

__all__ = ["KnowledgeBase", "KBError", "RunFileError", "UnknownRunError", "default_home",
           "CHECKPOINTS", "LIST_COLUMNS", "SCHEMA_VERSION", "STATUSES"]
