"""Runtime: device choice and the environment record (seeding is per run: see :mod:`lepton.data.sampling`)."""
from __future__ import annotations

import os
import platform
from typing import Dict

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Pick the device: an explicit name wins; ``auto`` means ``$LEPTON_DEVICE`` if set, else
    CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    ValueError
        For an unknown device name or one that is not available here.
    """
    origin = ""
    if name in (None, "", "auto"):
        name = os.environ.get("LEPTON_DEVICE", "auto") or "auto"
        if name != "auto":
            origin = f" (from LEPTON_DEVICE={name})"
    fix = "unset LEPTON_DEVICE or set it to auto or cpu" if origin else "use --device cpu or auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}{origin}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for{origin} but CUDA is not available here; {fix}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for{origin} but this machine has {torch.cuda.device_count()} CUDA "
                         "device(s); use cuda:0 .. cuda:N-1 or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device 'mps' asked for{origin} but Apple MPS is not available here; {fix}")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}{origin}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def training_threads() -> int:
    """Torch CPU threads for a training process: ``$LEPTON_THREADS`` if set, else half the cores
    (at least 1). Measured on this project's 2-core machine (digits, DANN, 3 epochs): 1 thread 1.3 s
    idle and 3.6 s beside a CPU-bound process; torch's default of 2 threads 5.5 s beside it and up to
    50 s when other work shared the cores: its threads wait for each other whenever one is descheduled.

    Raises
    ------
    ValueError
        ``$LEPTON_THREADS`` is not a whole number >= 1.
    """
    env = os.environ.get("LEPTON_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"LEPTON_THREADS must be a whole number >= 1, got {env!r}")
        return n
    return max(1, (os.cpu_count() or 1) // 2)


def use_training_threads() -> int:
    """Set this process's torch threads to :func:`training_threads` (entry points only: the CLI and
    the worker processes; library code never changes process-wide settings). Returns the number."""
    n = training_threads()
    torch.set_num_threads(n)
    return n


def environment(device: torch.device) -> Dict[str, str]:
    """Versions and device of this process, stored with each run."""
    import sklearn
    env = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "scikit-learn": sklearn.__version__, "platform": platform.platform(), "device": str(device),
           "cpu_threads": str(torch.get_num_threads())}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    from .. import __version__
    env["lepton"] = __version__
    return env
