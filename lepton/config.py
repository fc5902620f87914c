"""Run configuration: a frozen dataclass stored with every run."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional, Tuple

SELECTION_SCORES = ("im", "snd", "source-acc")


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a training run.

    Parameters
    ----------
    source, target : str
        Domain names (see :func:`lepton.data.load_domain`).
    method : str
        Registered method name (``python -m lepton methods``).
    hparams : dict
        Method hyper-parameters (defaults filled in by validation).
    epochs : int
        Passes over the source training split (the target split for ``target-only``).
    batch_size : int
        Examples per domain per step.
    seed : int
        Seeds model initialisation, batch order and k-shot draws.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    select : str
        Label-free checkpoint score: ``im`` (information maximisation), ``snd`` (soft
        neighbourhood density) or ``source-acc`` (source test accuracy).
    eval_domains : tuple of str
        Extra domains evaluated after training.
    encoder : str
        Encoder name or ``auto``.
    init_from : str, optional
        Knowledge-base run id whose encoder initialises this run.
    eval_cap : int
        Target-train examples used for label-free scores each epoch.
    """

    source: str
    target: str
    method: str = "source-only"
    hparams: Dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    select: str = "im"
    eval_domains: Tuple[str, ...] = ()
    encoder: str = "auto"
    init_from: Optional[str] = None
    eval_cap: int = 2000

    def validate(self) -> "RunConfig":
        """Check the fields that need no data.

        Raises
        ------
        ValueError
            Naming the field and what is allowed.
        """
        if not isinstance(self.epochs, int) or not 1 <= self.epochs <= 10000:
            raise ValueError(f"epochs must be a whole number in [1, 10000], got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 65536:
            raise ValueError(f"batch-size must be a whole number in [1, 65536], got {self.batch_size!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative whole number, got {self.seed!r}")
        if self.select not in SELECTION_SCORES:
            raise ValueError(f"select must be one of {', '.join(SELECTION_SCORES)}, got {self.select!r}")
        if not isinstance(self.hparams, dict):
            raise ValueError("hparams must be a JSON object, e.g. '{\"lr\": 0.001}'")
        return self

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["eval_domains"] = list(self.eval_domains)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunConfig":
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "eval_domains" in kw:
            kw["eval_domains"] = tuple(kw["eval_domains"])
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
