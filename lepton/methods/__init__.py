"""Transfer methods: one class each, one registry (:data:`METHODS`)."""
from .base import COMMON_HPARAMS, METHODS, HParam, Method
from . import supervised, alignment, self_training  # noqa: F401,E402  (registration)
from .alignment import dann_lambda

__all__ = ["METHODS", "HParam", "Method", "COMMON_HPARAMS", "dann_lambda"]
from . import pretraining, multitask, meta  # noqa: F401,E402  (registration: ssl, multitask, maml, reptile)
