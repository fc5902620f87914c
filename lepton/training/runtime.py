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
    if name in (None, "", "auto"):
        name = os.environ.get("LEPTON_DEVICE", "auto") or "auto"
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
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available here; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for but this machine has {torch.cuda.device_count()} CUDA "
                         "device(s); use cuda:0 .. cuda:N-1 or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' asked for but Apple MPS is not available here; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


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
