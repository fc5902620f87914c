"""The method contract (the DomainBed ``update``/``predict`` idea) and hyper-parameter declarations."""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..models import TransferNet, use_generator
from ..registry import Registry

METHODS: Registry = Registry("method", name_attr="name")

from .batch import SOURCE, STREAMS, TARGET, TARGET_ALL, TARGET_FEW, Batch  # noqa: F401,E402


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
        """Check ``value``'s type against the declared kind (no coercion: a string is not a number,
        ``true`` is not 1) and its range; an integral float is accepted for an int.

        Raises
        ------
        ValueError
            Naming the parameter, the value and the valid type, range or choices.
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
        if isinstance(value, bool):
            raise ValueError(f"hyper-parameter {name}={value!r} must be a number, not true/false")
        if isinstance(value, str):
            raise ValueError(f"hyper-parameter {name}={value!r} is a string; write the number without quotes "
                             f"({name}: {self.default!r})")
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


_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build modules under one process-wide lock with the global torch RNG seeded to ``seed`` and
    restored afterwards, so parameter initialisation is reproducible when runs start together.
    Training itself never draws from the global RNG (see :class:`lepton.models.SeededDropout`)."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class Method(nn.Module):
    """Base class of every transfer method: one class, one registry name, a fixed contract.

    Subclasses declare ``HPARAMS`` (merged with :data:`COMMON_HPARAMS`) and ``needs`` (the data
    streams the loop serves: :data:`SOURCE`, :data:`TARGET`, :data:`TARGET_FEW`,
    :data:`TARGET_ALL`; a source-free method needs only :data:`TARGET`), and implement
    :meth:`update`. A method is an ``nn.Module`` around an injected network; it owns its extra
    modules and optimisers, so adversarial and meta-learning methods fit the same contract.
    Every run builds a fresh instance (:func:`build_method`); the registry sets :attr:`name`.

    Parameters
    ----------
    net : lepton.models.TransferNet
        The network ``head(T(E(x)))`` this method trains.
    hparams : dict, optional
        Overrides of the declared defaults; validated.
    device : str or torch.device
        Where the modules live.
    total_steps : int
        Number of :meth:`update` calls planned (for schedules such as DANN's lambda).
    amp : bool
        bfloat16 autocast for forward passes (CUDA only).
    seed : int
        Seeds the method's own generators (:attr:`generator` for sampling on the CPU, and the
        dropout masks).

    Raises
    ------
    ValueError
        Unknown hyper-parameter or a value out of range (naming the method).
    """

    name: ClassVar[str] = ""
    #: The task the method solves (:data:`lepton.tasks.TASKS`); recommenders say ``ranking``.
    task: ClassVar[str] = "classification"
    HPARAMS: ClassVar[Dict[str, HParam]] = {}
    #: Defaults that changed, so a stored run rebuilds as it trained: ``{version: {name: value}}``
    #: gives a config whose ``defaults_version`` is below ``version`` and that lacks ``name`` the old
    #: default ``value`` (:class:`lepton.config.RunConfig`'s ``defaults_version``).
    DEFAULTS_BEFORE: ClassVar[Dict[int, Dict[str, Any]]] = {}
    needs: ClassVar[Tuple[str, ...]] = (SOURCE, TARGET)
    oracle: ClassVar[bool] = False
    #: Whether the method adapts a stored run (``init_from`` required, :meth:`load_start`), as source-free SHOT.
    needs_start: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def __init__(self, net: TransferNet, hparams: Optional[dict] = None, device: Any = "cpu",
                 total_steps: int = 1, amp: bool = False, seed: int = 0):
        super().__init__()
        bad = sorted(set(self.needs) - set(STREAMS))
        if bad:
            raise ValueError(f"method {self.name!r} declares unknown data streams {bad}; valid: {', '.join(STREAMS)}")
        self.hparams = self.validate_hparams(hparams or {})
        self._device = torch.device(device)
        self.total_steps = max(1, int(total_steps))
        self.amp = bool(amp) and self._device.type == "cuda"
        self.net = net
        self.input_shape, self.n_classes = tuple(net.input_shape), int(net.n_classes)
        self.generator = torch.Generator().manual_seed(int(seed) + 7919)
        self.build()
        self.to(self._device)
        gen = torch.Generator(device=self._device) if self._device.type != "mps" else None
        if gen is not None:
            gen.manual_seed(int(seed) + 104729)
        use_generator(self, gen)
        self.optimizer = self.make_optimizer(self.trainable_parameters())

    # ----- declarations --------------------------------------------------------------------
    @classmethod
    def all_hparams(cls) -> Dict[str, HParam]:
        """Declared hyper-parameters, common ones first."""
        return {**COMMON_HPARAMS, **cls.HPARAMS}

    @classmethod
    def validate_hparams(cls, hparams: dict, defaults_version: Optional[int] = None) -> Dict[str, Any]:
        """Defaults overridden by ``hparams``, each value checked.

        ``defaults_version`` (a stored config's; ``None``: today's) picks the defaults that run
        trained under (:attr:`DEFAULTS_BEFORE`).

        Raises
        ------
        ValueError
            Unknown name (listing the valid ones) or a value out of range, naming the method.
        """
        decl = cls.all_hparams()
        unknown = sorted(set(hparams) - set(decl))
        if unknown:
            raise ValueError(f"unknown hyper-parameter {', '.join(unknown)} for method {cls.name!r}; "
                             f"valid: {', '.join(decl)}")
        if defaults_version is not None:
            for version, old in sorted(cls.DEFAULTS_BEFORE.items()):  # the oldest change first: it wins
                if defaults_version < version:
                    hparams = {**old, **hparams}
        out = {}
        for k, h in decl.items():
            try:
                out[k] = h.validate(k, hparams.get(k, h.default))
            except ValueError as e:
                raise ValueError(f"{e} (method {cls.name!r})") from None
        return out

    @classmethod
    def target_labels(cls) -> str:
        """``"none"``, ``"few"`` (k per class) or ``"all"`` (the oracle): which target labels training sees."""
        if TARGET_ALL in cls.needs:
            return "all"
        return "few" if TARGET_FEW in cls.needs else "none"

    @classmethod
    def source_free(cls) -> bool:
        """Whether the method trains without labelled source data."""
        return SOURCE not in cls.needs

    @classmethod
    def fitted_labels(cls, hparams: Dict[str, Any]) -> Optional[str]:
        """Which labelled data the run's model is fitted to, so run health judges it on that:
        ``"source"``, ``"target"`` (the target-only oracle) or ``None`` (no labels it should fit,
        e.g. source-free SHOT)."""
        if cls.target_labels() == "all" and cls.source_free():
            return "target"
        return None if cls.source_free() else "source"

    @classmethod
    def plan_notes(cls, hparams: Dict[str, Any], batch_size: int, sizes: Sequence[int]) -> List[Tuple[str, str]]:
        """``(level, sentence)`` pairs (``warning`` or ``info``) about this run's settings that a person should
        see before training (none by default).

        Parameters
        ----------
        hparams : dict
            Validated hyper-parameters.
        batch_size : int
        sizes : sequence of int
            Training examples of each stream the loop will cycle (sources, then target).
        """
        return []

    # ----- hooks for subclasses ------------------------------------------------------------
    def build(self) -> None:
        """Create extra modules (assign them as attributes). Called before moving to the device."""

    def on_data(self, sources: Sequence[Tuple[str, torch.Tensor, torch.Tensor]]) -> None:
        """Called once by the loop before the first step with the whole harmonised training split of
        every source domain, ``(name, x (N, ...), y (N,))`` on the method's device. Methods that
        sample their own tasks (episodes) or build one head per domain override it."""

    def on_target(self, xt: torch.Tensor) -> None:
        """Called once by the loop before the first step with the whole unlabelled target training
        split ``(N_t, *input_shape)`` on the method's device, when the method needs :data:`TARGET`
        (never its labels). Methods that cluster the whole target (SHOT) override it."""

    def load_start(self, state: Dict[str, torch.Tensor]) -> None:
        """Initialise from a stored run's ``state_dict`` (``init_from``): by default its encoder and
        transfer module (:meth:`load_encoder`); a method that adapts the whole stored model overrides it."""
        self.load_encoder(state)

    def trainable_parameters(self):
        """Parameters the optimiser updates (default: all)."""
        return self.parameters()

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """Adam with the declared learning rate and weight decay."""
        return torch.optim.Adam(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])

    def update(self, batch: Batch, step: int) -> Dict[str, float]:
        """One optimisation step.

        Parameters
        ----------
        batch : Batch
            The streams declared in :attr:`needs` (see :class:`Batch`).
        step : int
            Steps already taken in this run (0 for the first), for schedules.

        Returns
        -------
        dict of str to float
            Named loss values of this step.
        """
        raise NotImplementedError

    # ----- shared machinery ----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the modules live."""
        return self._device

    def progress(self, step: int) -> float:
        """Training progress ``p = step / total_steps`` in [0, 1]."""
        return min(1.0, max(0, int(step)) / self.total_steps)

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

    def source_target_pass(self, batch: Batch):
        """One training-mode pass over a batch's source and target inputs (under :meth:`autocast`).

        Returns
        -------
        fs, ft : torch.Tensor
            Features ``(B_s, D)`` and ``(B_t, D)``.
        logits_s, logits_t : torch.Tensor
            Head outputs ``(B_s, K)`` and ``(B_t, K)``.
        cls : torch.Tensor
            Scalar source cross-entropy ``CE(h(f_s), y_s)``.
        """
        import torch.nn.functional as F
        with self.autocast():
            fs, ft = self.net.features(batch.xs), self.net.features(batch.xt)
            logits_s, logits_t = self.net.head(fs), self.net.head(ft)
            cls = F.cross_entropy(logits_s, batch.ys)
        return fs, ft, logits_s, logits_t, cls

    def _eval_call(self, fn, x: torch.Tensor) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            with torch.no_grad(), self.autocast():
                out = fn(x.to(self._device))
                return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()
        finally:
            self.train(was)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` float32 of inputs ``(B, *input_shape)``, in eval mode, no gradient."""
        return self._eval_call(self.net, x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D)`` float32 ``T(E(x))``, in eval mode, no gradient."""
        return self._eval_call(self.net.features, x)

    def infer(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features ``(B, D)`` and logits ``(B, K)``, float32, of one eval-mode pass without gradient
        (what :meth:`features` and :meth:`predict` give, for the price of one)."""
        def both(xb: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            f = self.net.features(xb)  # (B, D)
            return f, self.net.head(f)  # (B, K)
        return self._eval_call(both, x)

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


def build_method(name: str, input_shape: Sequence[int], n_classes: int, hparams: Optional[dict] = None,
                 device: Any = "cpu", total_steps: int = 1, encoder: str = "auto", modality: Optional[str] = None,
                 seed: int = 0, amp: bool = False, make_head=None) -> Method:
    """A fresh, seeded instance of a registered method around a new network.

    Parameters
    ----------
    name : str
        Registered method name.
    input_shape : tuple of int
        ``(C, H, W)`` or ``(D_in,)``.
    n_classes : int
        ``K``.
    hparams : dict, optional
    device, total_steps, amp, seed
        As in :class:`Method`; ``seed`` also seeds parameter initialisation (:func:`seeded_init`).
    encoder : str
        Registered encoder name or ``auto`` (the modality's encoder).
    modality : str, optional
        The domains' modality.
    make_head : callable, optional
        The task's head builder ``(D, K) -> nn.Module`` (:meth:`lepton.tasks.Task.make_head`).

    Returns
    -------
    Method

    Raises
    ------
    lepton.registry.UnknownNameError
        Unknown method or encoder.
    ValueError
        Bad hyper-parameters (naming the method and the parameter).
    """
    cls = METHODS.get(name)
    hp = cls.validate_hparams(hparams or {})
    with seeded_init(seed):
        net = TransferNet(input_shape, n_classes, encoder, int(hp["feature_dim"]), modality, make_head)
        return cls(net, hp, device=device, total_steps=total_steps, amp=amp, seed=seed)
