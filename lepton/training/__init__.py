"""Training: plan a run, the one loop, the one way to run it end to end, callbacks, runtime helpers."""
from ..data.sampling import k_shot_indices
from .callbacks import Callback, PrintProgress
from .loop import NonFiniteLossError, RunResult, fit
from .plan import RunState, check, plan
from .run import train
from .runtime import resolve_device

__all__ = ["Callback", "PrintProgress", "NonFiniteLossError", "RunResult", "RunState", "fit", "plan", "check",
           "train", "k_shot_indices", "resolve_device"]
