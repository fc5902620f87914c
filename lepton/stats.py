"""Small statistics shared by the core (no torch): mean ± std over seeds or draws."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> Dict[str, Any]:
    """``{"mean", "std", "values"}`` of a list of numbers.

    Parameters
    ----------
    values : sequence of float

    Returns
    -------
    dict
        ``mean`` (float; NaN for no value), ``std``: the sample standard deviation (``ddof=1``; 0 for
        one value, NaN for none) and ``values`` (list of float, as given).
    """
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return {"mean": float("nan"), "std": float("nan"), "values": []}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "values": [float(a) for a in v]}
