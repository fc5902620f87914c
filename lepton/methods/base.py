"""The method contract (the DomainBed ``update``/``predict`` idea) and hyper-parameter declarations."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..models import TransferNet
from ..registry import Registry

METHODS: Registry = Registry("method")


@dataclass(frozen=True)
class HParam:
    """One declared hyper-parameter: default, valid range and help.

    Parameters
    ----------
    default : float, int, str or bool
        Default value.
    low, high : float, optional
        Inclusive range for numbers.
    help : str
        One sentence for the CLI and the app's form.
    choices : tuple of str, optional
        Valid values of a categorical hyper-parameter.
    log : bool
        Whether a slider should use a log scale.
    """

    default: Any
    low: Optional[float] = None
    high: Optional[float] = None
    help: str = ""
    choices: Optional[Tuple[str, ...]] = None
    log: bool = False

    @property
    def kind(self) -> str:
        """``"choice"``, ``"bool"``, ``"int"`` or ``"float"``."""
        if self.choices is not None:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        return "int" if isinstance(self.default, int) else "float"

    def validate(self, name: str, value: Any) -> Any:
        """Coerce ``value`` to the declared kind and check its range.

        Raises
        ------
        ValueError
            Naming the parameter, the value and the valid range or choices.
        """
        kind = self.kind
        if kind == "choice":
            if value not in self.choices:
                raise ValueError(f"hyper-parameter {name}={value!r} is not one of {', '.join(self.choices)}")
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError(f"hyper-parameter {name}={value!r} must be true or false")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"hyper-parameter {name}={value!r} is not a number") from None
        if kind == "int":
            if v != int(v):
                raise ValueError(f"hyper-parameter {name}={value!r} must be a whole number")
            v = int(v)
        if not math.isfinite(v) or (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise ValueError(f"hyper-parameter {name}={value!r} is out of range [{self.low:g}, {self.high:g}]")
        return v

    def describe(self) -> str:
        """``"default 0.001, range [1e-05, 1]: help"`` for listings."""
        rng = f"one of {'|'.join(self.choices)}" if self.choices else (
            "true|false" if self.kind == "bool" else f"range [{self.low:g}, {self.high:g}]")
        return f"default {self.default!r}, {rng}: {self.help}"


COMMON_HPARAMS: Dict[str, HParam] = {
    "lr": HParam(1e-3, 1e-6, 1.0, "Adam learning rate", log=True),
    "weight_decay": HParam(5e-4, 0.0, 0.1, "L2 weight decay of the optimiser"),
    "feature_dim": HParam(128, 8, 2048, "size D of the feature vector (encoder output)"),
}


class Method:
    """Base class of every transfer method: one class, one registry name, a fixed contract.

    Subclasses declare ``HPARAMS`` (merged with :data:`COMMON_HPARAMS`), set ``target_labels``
    (``"none"``; ``"few"``: k labelled target examples per class; ``"all"``: the oracle) and
    implement :meth:`update`. A method owns its modules and optimisers, so adversarial and
    meta-learning methods fit the same contract. Each run builds a fresh instance.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` or ``(D_in,)``.
    n_classes : int
        ``K``.
    hparams : dict, optional
        Overrides of the declared defaults; validated.
    device : str or torch.device
        Where the modules live.
    total_steps : int
        Number of :meth:`update` calls planned (for schedules such as DANN's lambda).
    encoder : str
        Registered encoder name or ``"auto"``.
    amp : bool
        bfloat16 autocast for forward passes (CUDA only).

    Raises
    ------
    ValueError
        Unknown hyper-parameter or a value out of range.
    """

    name: ClassVar[str] = ""
    HPARAMS: ClassVar[Dict[str, HParam]] = {}
    target_labels: ClassVar[str] = "none"
    oracle: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def __init__(self, input_shape: Sequence[int], n_classes: int, hparams: Optional[dict] = None,
                 device: Any = "cpu", total_steps: int = 1, encoder: str = "auto", amp: bool = False):
        self.hparams = self.validate_hparams(hparams or {})
        self.device = torch.device(device)
        self.total_steps = max(1, int(total_steps))
        self.step = 0
        self.amp = bool(amp) and self.device.type == "cuda"
        self.input_shape, self.n_classes = tuple(input_shape), int(n_classes)
        self.net = TransferNet(input_shape, n_classes, encoder, int(self.hparams["feature_dim"]))
        self.modules = nn.ModuleDict({"net": self.net})
        self.build()
        self.modules.to(self.device)
        self.optimizer = self.make_optimizer(self.trainable_parameters())

    # ----- declarations --------------------------------------------------------------------
    @classmethod
    def all_hparams(cls) -> Dict[str, HParam]:
        """Declared hyper-parameters, common ones first."""
        return {**COMMON_HPARAMS, **cls.HPARAMS}

    @classmethod
    def validate_hparams(cls, hparams: dict) -> Dict[str, Any]:
        """Defaults overridden by ``hparams``, each value checked.

        Raises
        ------
        ValueError
            Unknown name (listing the valid ones) or a value out of range.
        """
        decl = cls.all_hparams()
        unknown = sorted(set(hparams) - set(decl))
        if unknown:
            raise ValueError(f"unknown hyper-parameter {', '.join(unknown)} for method {cls.name!r}; "
                             f"valid: {', '.join(decl)}")
        return {k: h.validate(k, hparams.get(k, h.default)) for k, h in decl.items()}

    # ----- hooks for subclasses ------------------------------------------------------------
    def build(self) -> None:
        """Create extra modules (add them to ``self.modules``). Called before moving to device."""

    def trainable_parameters(self):
        """Parameters the optimiser updates (default: all modules)."""
        return self.modules.parameters()

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """Adam with the declared learning rate and weight decay."""
        return torch.optim.Adam(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])

    def update(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """One optimisation step.

        Parameters
        ----------
        batch : dict
            ``xs`` ``(B_s, *input_shape)`` and ``ys`` ``(B_s,)`` source; ``xt`` ``(B_t, ...)``
            unlabelled target; for ``target_labels != "none"`` also ``xl``/``yl``, labelled
            target examples. ``B_s`` and ``B_t`` may differ and may be 1.

        Returns
        -------
        dict of str to float
            Named loss values of this step.
        """
        raise NotImplementedError

    # ----- shared machinery ----------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Training progress ``p = step / total_steps`` in [0, 1]."""
        return min(1.0, self.step / self.total_steps)

    def autocast(self):
        """bfloat16 autocast on CUDA when ``amp``; a no-op context otherwise."""
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def optimize(self, loss: torch.Tensor, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
        """Zero gradients, back-propagate ``loss`` and step ``optimizer`` (default ``self.optimizer``)."""
        opt = optimizer or self.optimizer
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def train(self) -> None:
        self.modules.train()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` float32 of inputs ``(B, *input_shape)``, in eval mode, no gradient."""
        was = self.modules.training
        self.modules.eval()
        with self.autocast():
            out = self.net(x.to(self.device)).float()
        self.modules.train(was)
        return out

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D)`` float32 ``T(E(x))``, in eval mode, no gradient."""
        was = self.modules.training
        self.modules.eval()
        with self.autocast():
            out = self.net.features(x.to(self.device)).float()
        self.modules.train(was)
        return out

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Raw state dict of all modules (``net.*`` and method-specific ones)."""
        return self.modules.state_dict()

    def load_state_dict(self, state: Dict[str, torch.Tensor], strict: bool = True):
        """Load a state dict produced by :meth:`state_dict`."""
        return self.modules.load_state_dict(state, strict=strict)

    def load_encoder(self, state: Dict[str, torch.Tensor]) -> None:
        """Initialise encoder E and transfer module T from another run's ``net.*`` weights.

        Raises
        ------
        ValueError
            If the stored encoder does not fit this input shape or feature size.
        """
        sub = {k[len("net."):]: v for k, v in state.items()
               if k.startswith("net.encoder.") or k.startswith("net.transfer.")}
        own = self.net.state_dict()
        bad = [k for k, v in sub.items() if k not in own or own[k].shape != v.shape]
        if bad or not sub:
            raise ValueError("the stored encoder does not fit this run (different input shape, encoder or "
                             f"feature_dim): mismatched {', '.join(bad[:3]) or 'all weights'}")
        self.net.load_state_dict({**own, **sub})
