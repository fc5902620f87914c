"""Training: the one loop, callbacks, runtime helpers."""
from .callbacks import Callback, PrintProgress
from .loop import NonFiniteLossError, RunResult, RunState, fit, k_shot_indices, prepare
from .runtime import resolve_device, seed_everything

__all__ = ["Callback", "PrintProgress", "NonFiniteLossError", "RunResult", "RunState", "fit", "prepare",
           "k_shot_indices", "resolve_device", "seed_everything"]
