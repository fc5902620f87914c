"""Transfer methods: one class each, one registry (:data:`METHODS`); :func:`build_method` makes a
fresh seeded instance around a new network."""
from .base import (COMMON_HPARAMS, METHODS, SOURCE, STREAMS, TARGET, TARGET_ALL, TARGET_FEW, Batch, HParam, Method,
                   build_method, seeded_init)
from . import supervised, alignment, self_training  # noqa: F401,E402  (registration)
from . import discriminability, source_free  # noqa: F401,E402  (registration: mcc, afn, shot)
from .alignment import dann_lambda
from . import pretraining, multitask, meta  # noqa: F401,E402  (registration: ssl, multitask, maml, reptile)
from . import recommend  # noqa: F401,E402  (registration: popularity, bpr-mf, cmf, emcdr: the ranking task)



def method_names(task: str = "classification"):
    """Registered method names whose :attr:`Method.task` is ``task`` (``classification`` or ``ranking``), in registry order."""
    return [n for n in METHODS.names() if getattr(METHODS.get(n), "task", "classification") == task]


__all__ = ["method_names", "METHODS", "HParam", "Method", "COMMON_HPARAMS", "dann_lambda", "Batch", "build_method", "seeded_init",
           "SOURCE", "TARGET", "TARGET_FEW", "TARGET_ALL", "STREAMS"]
