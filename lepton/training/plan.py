"""``plan(config)``: validate a run, load and harmonise its domains, build a fresh method, and say
in plain words what is odd about it, before anything trains. The app's pre-flight check shows a
plan's notes and errors, so pre-flight and training cannot disagree."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ..config import AUTO_EPOCHS, AUTO_MIN_STEPS, RunConfig
from ..data import DataError, Domain
from ..data.prepared import prepare
from ..data.sampling import batches_per_pass, k_shot_indices
from ..methods import METHODS, Method, build_method
from ..methods.base import SOURCE, TARGET, TARGET_ALL
from ..tasks import TASKS, Task
from ..methods.augment import AFFINE, resolve_augment
from .runtime import environment, resolve_device


@dataclass
class RunState:
    """A planned run: what :func:`lepton.training.fit` trains and what callbacks see.

    Attributes
    ----------
    config : RunConfig
        With hyper-parameters filled in from the method's defaults and ``init_from`` resolved to
        a full run id.
    method : Method
        The fresh method (``method.features(x)`` gives ``(B, D)`` features).
    task : lepton.tasks.Task
    domains : list of Domain
        Harmonised ``[*sources, target, *eval_domains]``.
    roles : list of str
        ``source``, ``target`` or ``eval`` per domain.
    harmonisation : dict
        What pairing did (see :func:`lepton.data.pairing.harmonise`).
    device : torch.device
    steps_per_epoch, total_steps : int
        An epoch is one pass over the run's largest training domain (sources and target; see
        :class:`lepton.config.RunConfig`); with ``config.steps`` the run takes
        exactly that many steps (``config.epochs`` derived, the last epoch possibly partial).
    environment : dict
    notes : list of dict
        ``{"level": "warning" | "info", "message": str}``: what a person should know.
    labelled_target_idx : np.ndarray or None
        Target training rows whose labels training may use (k-shot or, for the oracle, all).
    history : list of dict
        One row per finished epoch.
    run_id : str or None
        Knowledge-base id once the recorder has begun the run.
    inference : lepton.training.inference.InferencePass or None
        The per-epoch forward pass every reader shares (set by :func:`lepton.training.fit`).
    """

    config: RunConfig
    method: Method
    task: Task
    domains: List[Domain]
    roles: List[str]
    harmonisation: Dict[str, Any]
    device: torch.device
    steps_per_epoch: int
    total_steps: int
    environment: Dict[str, str]
    notes: List[Dict[str, str]] = field(default_factory=list)
    labelled_target_idx: Optional[np.ndarray] = None
    history: List[Dict[str, Any]] = field(default_factory=list)
    run_id: Optional[str] = None
    inference: Any = None
    steps_done: int = 0

    @property
    def sources(self) -> List[Domain]:
        """The harmonised source domains, in the config's order."""
        return [d for d, r in zip(self.domains, self.roles) if r == "source"]

    @property
    def source(self) -> Domain:
        """The first source domain."""
        return self.sources[0]

    @property
    def target(self) -> Domain:
        """The harmonised target domain."""
        return self.domains[self.roles.index("target")]


def _note(notes: List[Dict[str, str]], level: str, message: str) -> None:
    notes.append({"level": level, "message": message[0].upper() + message[1:]})


def plan(config: RunConfig, data_dir=None, kb=None) -> RunState:
    """Validate ``config``, load and harmonise its domains and build a fresh seeded method.

    Parameters
    ----------
    config : RunConfig
    data_dir : path-like, optional
        Benchmark data folder.
    kb : lepton.kb.KnowledgeBase, optional
        Needed when ``config.init_from`` names a stored run: its encoder and transfer module
        (selected checkpoint) initialise the method.

    Returns
    -------
    RunState

    Raises
    ------
    lepton.registry.UnknownNameError
        Unknown domain, method, encoder or task (listing valid names).
    ValueError
        Invalid config or hyper-parameters (naming the method), a target among the sources, a
        method that needs target labels the target cannot give, an ``init_from`` without a
        knowledge base or whose encoder does not fit; :class:`lepton.data.DataError` for
        unusable data; :class:`lepton.kb.KBError` for an unknown ``init_from`` run.
    """
    config.validate()
    from .ranking import is_ranking, plan_ranking
    if is_ranking(config):
        return plan_ranking(config, data_dir)
    _refuse_interactions(config)
    notes: List[Dict[str, str]] = []
    cls = METHODS.get(config.method)
    task = TASKS.get(config.task)()
    hparams = cls.validate_hparams(config.hparams, config.defaults_version)
    if config.target in config.sources:
        if len(config.sources) > 1:
            raise ValueError(f"the target {config.target!r} is also a source domain; remove it from the sources")
        _note(notes, "warning", f"source and target are the same domain ({config.target}): nothing is transferred, "
              "so this only measures in-domain accuracy. Pick a different target to see a domain shift.")
    device = resolve_device(config.device)
    if cls.needs_start and not config.init_from:
        raise ValueError(f"{config.method} adapts a stored source model with unlabelled target data only: give the run "
                         f"to start from with --init-from RUN (e.g. a source-only run trained on {config.sources[0]})")
    init_state, init_from = _init_state(config, kb)
    names = [*config.sources, config.target, *config.eval_domains]
    roles = ["source"] * len(config.sources) + ["target"] + ["eval"] * len(config.eval_domains)
    domains, record = prepare(names, roles, data_dir, scaling=config.scaling,  # disk-cached for benchmark files
                              text_features=text_features(config.encoder))
    for msg in record.get("notes", []):
        _note(notes, "warning", msg)
    if record.get("scaling_note"):
        _note(notes, "info", record["scaling_note"])
    srcs = [d for d, r in zip(domains, roles) if r == "source"]
    tgt = domains[roles.index("target")]
    if cls.needs_start:
        _same_classes(config, kb, init_from, srcs[0])
    labelled = _labelled_target(cls, hparams, tgt, config, notes)
    n_main = _epoch_rows(cls, config, srcs, tgt, labelled)
    steps_per_epoch = batches_per_pass(n_main, config.batch_size)  # a lone last example joins the batch before
    for level, msg in cls.plan_notes(hparams, config.batch_size, [len(d.y_train) for d in srcs] + [len(tgt.y_train)]):
        _note(notes, level, msg)
    epochs = resolve_epochs(config, steps_per_epoch)
    total = steps_per_epoch * epochs if config.steps is None else config.steps
    _budget_note(notes, cls, total, steps_per_epoch, epochs, n_main, config)
    from ..data.user_domains import data_versions
    versions = data_versions(names)  # uploads: which content this run used (one registry read)
    if versions:
        record = {**record, "data_versions": versions}
    augment = resolve_augment(config.augment, srcs[0].modality, tuple(srcs[0].input_shape))
    record = {**record, "augment": {"method": augment, **(AFFINE if augment == "affine" else {}),
                                    "batches": "labelled (source, and labelled target)" if augment == "affine" else "none"}}
    config = RunConfig.from_dict({**config.to_dict(), "hparams": hparams, "init_from": init_from, "epochs": epochs,
                                  "augment": augment})
    method = build_method(config.method, srcs[0].input_shape, srcs[0].n_classes, hparams, device=device,
                          total_steps=total, encoder=config.encoder, modality=srcs[0].modality, seed=config.seed,
                          amp=device.type == "cuda", make_head=task.make_head)
    if init_state is not None:
        method.load_start(init_state)
    return RunState(config, method, task, domains, roles, record, device, steps_per_epoch, total,
                    environment(device), notes, labelled)


def _refuse_interactions(config: RunConfig) -> None:
    from ..data.catalog import domain_modality
    inter = [n for n in (*config.sources, config.target, *config.eval_domains) if domain_modality(n) == "interactions"]
    if inter:
        from ..methods import method_names
        ranking = method_names("ranking")
        raise DataError(f"{', '.join(inter)} {'hold' if len(inter) > 1 else 'holds'} user-item interactions, which train "
                        f"with a recommendation method, not {config.method}: give --method with one of {', '.join(ranking)}")


def resolve_epochs(config: RunConfig, steps_per_epoch: int) -> int:
    """The whole epochs a run trains for: ``config.epochs``; ``ceil(steps / steps_per_epoch)`` with
    ``config.steps``; for the automatic budget (both ``None``) :data:`lepton.config.AUTO_EPOCHS`, or
    more when those give fewer than :data:`lepton.config.AUTO_MIN_STEPS` labelled source batches
    (steps times source domains: a step on five sources takes a batch of each)."""
    if config.steps is not None:
        return math.ceil(config.steps / steps_per_epoch)
    if config.epochs is not None:
        return config.epochs
    return max(AUTO_EPOCHS, math.ceil(AUTO_MIN_STEPS / (max(1, steps_per_epoch) * len(config.sources))))


def _epoch_rows(cls, config: RunConfig, srcs: List[Domain], tgt: Domain, labelled) -> int:
    """The rows an epoch passes over: the largest training domain of the run, whatever the method
    (``defaults_version`` 2); configs stored before: the largest source, or the target (its labelled
    rows) for methods without labelled source data."""
    if config.defaults_version >= 2:
        return max([len(d.y_train) for d in srcs] + [len(tgt.y_train)])
    if TARGET_ALL in cls.needs:
        return len(labelled)
    return max(len(d.y_train) for d in srcs) if SOURCE in cls.needs else len(tgt.y_train)


#: Fewer optimisation steps than this in an adaptation run earn a warning: adversarial and
#: alignment methods did not even fit a few-hundred-row source in 20-40 steps (issue 12).
MIN_ADAPTATION_STEPS = 150


def _budget_note(notes, cls, total: int, per_epoch: int, epochs: int, n_main: int, config: RunConfig) -> None:
    what = (f"{total:,} optimisation steps ({epochs} epoch(s) of {per_epoch} batches of {config.batch_size} over "
            f"{n_main:,} training rows)")
    if TARGET in cls.needs and SOURCE in cls.needs and total < MIN_ADAPTATION_STEPS:
        _note(notes, "warning", f"a small training budget: {what}; adaptation methods need a few hundred steps "
              f"to fit the source and align, so this run may lose to source-only for that reason alone. Give "
              f"--steps {max(AUTO_MIN_STEPS, MIN_ADAPTATION_STEPS)} (the budget whatever the data's size) or more epochs")
    else:
        auto = (f" (automatic: {AUTO_EPOCHS} epochs, or more to reach {AUTO_MIN_STEPS:,} source batches; set "
                "--epochs or --steps to choose)") if config.epochs is None and config.steps is None else ""
        _note(notes, "info", f"training budget: {what}{auto}")


def text_features(encoder: str) -> str:
    """How a run's text domains become inputs: ``tokens`` for the trainable ``embedding-bag``
    encoder, else ``tfidf``."""
    return "tokens" if encoder == "embedding-bag" else "tfidf"


def _init_state(config: RunConfig, kb):
    if not config.init_from:
        return None, None
    if kb is None:
        raise ValueError("init_from names a stored run, but no knowledge base was given to read it from")
    rid = kb.resolve(config.init_from)
    return kb.load_state(rid, config.init_checkpoint), rid


def _same_classes(config: RunConfig, kb, rid: str, src: Domain) -> None:
    """A method that keeps the stored head (SHOT) needs the starting run's classes, in its order."""
    start = [str(c) for c in kb.get_run(rid).get("class_names", [])]
    have = [str(c) for c in src.class_names]
    if start and start != have:
        raise ValueError(f"{config.method} keeps the starting run's classifier, but run {rid} was trained on the classes "
                         f"{', '.join(start[:12])} and this pair has {', '.join(have[:12])}; start from a run on the "
                         "same classes")


def _labelled_target(cls, hparams, tgt: Domain, config: RunConfig, notes) -> Optional[np.ndarray]:
    kind = cls.target_labels()
    if kind == "none":
        return None
    if len(tgt.y_train) == 0 or not tgt.labelled:
        raise DataError(f"{config.method} trains on labelled target examples, but the target {config.target!r} has "
                        f"{'no labels' if not tgt.labelled else 'no labelled training examples'}; pick a method "
                        "that needs no target labels (e.g. dann)")
    if cls.oracle:
        _note(notes, "info", f"{config.method} trains on the target's labels: it is an oracle (an upper bound for "
              "comparison), not domain adaptation.")
    if kind == "all":
        return np.arange(len(tgt.y_train))
    k = int(hparams["k"])
    idx = k_shot_indices(tgt.y_train, k, config.seed, tgt.class_names)
    _note(notes, "info", f"{config.method} uses {k} labelled target examples per class; the other target labels "
          "stay hidden.")
    return idx


def check(config: RunConfig, data_dir=None, kb=None) -> List[Dict[str, str]]:
    """Problems with a run before anything trains: :func:`plan`'s notes, or its error.

    Returns
    -------
    list of dict
        ``{"level": "error" | "warning" | "info", "message": str}``; an ``error`` means the run
        cannot start (the message is :func:`lepton.training.jobs.explain_error`'s).
    """
    from ..registry import UnknownNameError
    from .jobs import explain_error
    try:
        return plan(config, data_dir, kb).notes
    except (ValueError, UnknownNameError) as e:
        return [{"level": "error", "message": explain_error(e)}]
