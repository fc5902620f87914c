"""Run configuration: a frozen dataclass stored with every run."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Optional, Tuple, Union

SELECTION_SCORES = ("im", "snd", "source-acc", "dev")
SCALINGS = ("auto", "standard", "domain-standard", "l2", "l1", "none")  # = lepton.data.pairing.SCALINGS
PROTOCOLS = ("inductive", "transductive")
AUGMENTS = ("auto", "affine", "none")  # = lepton.methods.augment.AUGMENTS
STEPS = (1, 10_000_000)
#: Bounds of the fields a person sets (the CLI, the app's widgets and :meth:`RunConfig.validate` read these).
EPOCHS = (1, 10000)
BATCH_SIZE = (1, 65536)
#: The generation of run defaults new configs get (see :class:`RunConfig`'s ``defaults_version``).
DEFAULTS_VERSION = 5
#: The automatic budget (``epochs=None``): this many epochs, or more when they give fewer than
#: :data:`AUTO_MIN_STEPS` labelled source batches (steps x source domains; a small domain), as the
#: field's recipes count steps rather than passes.
AUTO_EPOCHS = 10
AUTO_MIN_STEPS = 1000


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a training run.

    Parameters
    ----------
    source : str or tuple of str
        Source domain name, or several (see :func:`lepton.data.load_domain`); all labelled,
        all stored with the role ``source``. A one-element tuple or list is stored as the name.
    target : str
        Target domain name.
    method : str
        Registered method name (``python -m lepton methods``).
    hparams : dict
        Method hyper-parameters (defaults filled in by validation).
    epochs : int, optional
        The budget in epochs: an epoch is ``ceil(N / batch_size)`` optimisation steps with ``N`` the
        training rows of the largest domain of the run (sources and target), for every method, so
        one ``epochs`` gives every method on a pair the same number of steps and a small source
        does not starve the run. Configs stored before this (``defaults_version`` 1) counted
        passes over the largest source (the target for target-only methods). ``None`` (the default):
        the automatic budget, :data:`AUTO_EPOCHS` epochs or as many more whole epochs as give at least
        :data:`AUTO_MIN_STEPS` labelled source batches (steps x source domains), so a domain of a few
        hundred rows still gets the thousand-odd steps published recipes train for; the run stores
        the epochs it resolved to.
    batch_size : int
        Examples per domain per step.
    seed : int
        Seeds model initialisation, batch order and k-shot draws.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    select : str
        Label-free checkpoint score: ``im`` (information maximisation), ``snd`` (soft
        neighbourhood density), ``source-acc`` (source test accuracy) or ``dev`` (deep embedded
        validation, You et al. 2019: importance-weighted source validation risk).
    eval_domains : tuple of str
        Extra domains evaluated after training.
    encoder : str
        Encoder name or ``auto``.
    init_from : str, optional
        Knowledge-base run id whose encoder initialises this run (its parent: the config is the
        one source of lineage).
    init_checkpoint : str
        Which of that run's checkpoints: ``selected`` (its label-free choice) or ``last``.
    eval_cap : int
        Examples evaluated each epoch, per set: a class-stratified sample of the first source's
        and the target's test splits (the accuracy curves) and unlabelled target training rows
        (the label-free scores). The final table evaluates the whole test splits.
    task : str
        What "right" means (:data:`lepton.tasks.TASKS`): ``classification``.
    scaling : str
        Input scaling of feature tables (:func:`lepton.data.pairing.scale_features`): ``auto``
        (standardise tables, leave images), ``standard``, ``domain-standard``, ``l2``, ``l1`` or
        ``none``. Runs stored before this option existed read as ``none``.
    steps : int, optional
        The training budget in optimisation steps, whatever the domains' sizes; ``epochs`` is then
        derived (the last epoch may be partial). ``None``: ``epochs`` passes.
    protocol : str
        ``inductive``: the final table evaluates the target's test split; ``transductive``: the
        whole target domain (train and test rows; the published protocol of the field's tables).
        Training never sees target labels either way.
    augment : str
        Augmentation of labelled image batches (:mod:`lepton.methods.augment`): ``affine`` (a random
        rotation of up to 10 degrees, scaling by 0.9-1.1 and shift of up to 10 % of the side per
        image), ``none``, or ``auto`` (the default: ``affine`` for images of 16 pixels a side or more,
        ``none`` for smaller images and other domains); a planned run stores what ``auto`` resolved to. Runs stored before it existed read
        as ``none``.
    defaults_version : int
        Which generation of Lepton's defaults the run trained under, so a stored run rebuilds as it
        trained: ``5`` (current) SHOT's learning rate is 1e-5 (it was the common 1e-3); ``4``
        self-training adds the Deep CORAL loss by default; ``3`` it did not,
        and its pseudo-labels came from an EMA teacher; ``2`` from the model itself (:attr:`lepton.methods.base.Method.DEFAULTS_BEFORE`); ``1`` an epoch was a pass
        over the largest source rather than the largest training domain.
    """

    source: Union[str, Tuple[str, ...]]
    target: str
    method: str = "source-only"
    hparams: Dict[str, Any] = field(default_factory=dict)
    epochs: Optional[int] = None
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    select: str = "im"
    eval_domains: Tuple[str, ...] = ()
    encoder: str = "auto"
    init_from: Optional[str] = None
    init_checkpoint: str = "selected"
    eval_cap: int = 1000
    task: str = "classification"
    scaling: str = "auto"
    steps: Optional[int] = None
    protocol: str = "inductive"
    augment: str = "auto"
    defaults_version: int = DEFAULTS_VERSION

    def __post_init__(self) -> None:
        src = self.source
        if isinstance(src, (list, tuple)):
            src = tuple(str(s) for s in src)
            object.__setattr__(self, "source", src[0] if len(src) == 1 else src)
        object.__setattr__(self, "eval_domains", tuple(self.eval_domains or ()))

    @property
    def sources(self) -> Tuple[str, ...]:
        """The source domain names, in order."""
        return self.source if isinstance(self.source, tuple) else (self.source,)

    @property
    def source_label(self) -> str:
        """``"a + b"`` for several sources, the name for one."""
        return " + ".join(self.sources)

    def validate(self) -> "RunConfig":
        """Check the fields that need no data.

        Raises
        ------
        ValueError
            Naming the field and what is allowed.
        """
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)
                                        or not EPOCHS[0] <= self.epochs <= EPOCHS[1]):
            raise ValueError(f"epochs must be a whole number in [{EPOCHS[0]}, {EPOCHS[1]}], got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or not BATCH_SIZE[0] <= self.batch_size <= BATCH_SIZE[1]:
            raise ValueError(f"batch-size must be a whole number in [{BATCH_SIZE[0]}, {BATCH_SIZE[1]}], "
                             f"got {self.batch_size!r}")
        if not self.sources or not all(self.sources):
            raise ValueError("give at least one source domain")
        dup = sorted({s for s in self.sources if self.sources.count(s) > 1})
        if dup:
            raise ValueError(f"source domain(s) listed twice: {', '.join(dup)}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative whole number, got {self.seed!r}")
        if self.select not in SELECTION_SCORES:
            raise ValueError(f"select must be one of {', '.join(SELECTION_SCORES)}, got {self.select!r}")
        if self.init_checkpoint not in ("selected", "last"):
            raise ValueError(f"init_checkpoint must be selected or last, got {self.init_checkpoint!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {self.scaling!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or not STEPS[0] <= self.steps <= STEPS[1]):
            raise ValueError(f"steps must be a whole number in [{STEPS[0]}, {STEPS[1]}], got {self.steps!r}")
        if self.defaults_version not in range(1, DEFAULTS_VERSION + 1):
            raise ValueError(f"defaults_version must be 1..{DEFAULTS_VERSION}, got {self.defaults_version!r}")
        if not isinstance(self.hparams, dict):
            raise ValueError("hparams must be a JSON object, e.g. '{\"lr\": 0.001}'")
        return self

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["eval_domains"] = list(self.eval_domains)
        d["source"] = self.source if isinstance(self.source, str) else list(self.source)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunConfig":
        """Inverse of :meth:`to_dict`; unknown keys are ignored; a missing ``scaling`` or ``augment``
        (a run stored before it existed) reads as ``none`` and a missing ``defaults_version`` as ``1``, as that
        run trained."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw.setdefault("scaling", "none")  # a config stored before input scaling existed: rebuilt as it trained
        kw.setdefault("defaults_version", 1)  # stored before epochs over the largest domain
        kw.setdefault("augment", "none")  # stored before augmentation existed: it trained without
        if "eval_domains" in kw:
            kw["eval_domains"] = tuple(kw["eval_domains"])
        if isinstance(kw.get("source"), list):
            kw["source"] = tuple(kw["source"])
        return cls(**kw)

    def to_json(self) -> str:
        """Canonical JSON of :meth:`to_dict` (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)
