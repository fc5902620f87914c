"""Imported once by the training workers' forkserver (:mod:`lepton.training.workers`): the heavy
imports and the built-in digits, so that every run forks warm and shows progress quickly."""
import scipy.ndimage  # noqa: F401  (shifted domains)
import sklearn.datasets  # noqa: F401
import sklearn.metrics  # noqa: F401

import torch

import lepton.kb  # noqa: F401
import lepton.pipeline  # noqa: F401
import lepton.training.recorder  # noqa: F401
import lepton.training.run  # noqa: F401
from lepton.data import load_domain

# The first optimiser a process builds imports torch._dynamo (about 2 s here): pay it once, in the
# forkserver, instead of in every run before its first step.
torch.optim.Adam([torch.zeros(1, requires_grad=True)])

try:
    for _name in ("digits", "digits-small", "digits-rotated"):  # the default lessons' domains
        load_domain(_name)
except Exception:  # noqa: BLE001 - a warm cache is an optimisation only
    pass
