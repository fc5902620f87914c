"""Pipeline stages: names, order, per-stage settings, and every check that can run before training.

A stage is written ``NAME[:KEY=VALUE]...`` (the syntax of shifted domain names), e.g.
``ssl:objective=rotation``, ``multitask:weighting=uncertainty:epochs=3``, ``finetune:k=5``,
``evaluate:draws=5:ks=1,5,10``. ``epochs`` sets that stage's epochs; the other keys are the
method's hyper-parameters (``python -m lepton methods``) or, for ``evaluate``, those of
:data:`EVALUATE_HPARAMS` and ``ks``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..methods import METHODS, HParam, method_names
from ..registry import UnknownNameError

#: Stage kinds in the only order a pipeline may use them.
STAGE_ORDER = ("ssl", "multitask", "meta", "transfer", "evaluate")
EVALUATE_HPARAMS: Dict[str, HParam] = {
    "draws": HParam(5, 1, 100, "seeded draws of the k labelled target examples per class"),
    "adapt_steps": HParam(100, 1, 10000, "full-batch steps of k-shot fine-tuning"),
    "adapt_lr": HParam(1e-3, 1e-6, 10.0, "learning rate of k-shot fine-tuning", log=True),
    "adapt_optimizer": HParam("adam", help="optimizer of k-shot fine-tuning (sgd: as in MAML's inner loop)",
                              choices=("adam", "sgd")),
}


@dataclass
class StageSpec:
    """One parsed stage.

    Attributes
    ----------
    name : str
        ``evaluate`` or a registered method name.
    kind : str
        One of :data:`STAGE_ORDER`.
    hparams : dict
        Validated method hyper-parameters, or evaluation settings (with ``ks``: list of int or None).
    epochs : int, optional
        This stage's epochs (default: the pipeline's).
    given : dict
        The settings as written (before defaults were filled in).
    """

    name: str
    kind: str
    hparams: Dict[str, Any] = field(default_factory=dict)
    epochs: Optional[int] = None
    given: Dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """``name`` plus the settings given explicitly, e.g. ``ssl:objective=rotation``."""
        return self.name + "".join(f":{k}={v}" for k, v in self.given.items())


def stage_kind(name: str) -> str:
    """Kind of a stage name.

    Raises
    ------
    lepton.registry.UnknownNameError
        Listing the valid stages by kind.
    """
    if name == "evaluate":
        return "evaluate"
    if name not in METHODS:
        raise UnknownNameError(f"unknown stage {name!r}; valid stages: {describe_stages()}")
    return getattr(METHODS.get(name), "stage_kind", "") or "transfer"


def valid_stages() -> Dict[str, List[str]]:
    """Stage names by kind, in pipeline order."""
    out: Dict[str, List[str]] = {k: [] for k in STAGE_ORDER}
    for n in method_names():  # recommenders rank; a pipeline's stages classify
        out[getattr(METHODS.get(n), "stage_kind", "") or "transfer"].append(n)
    out["evaluate"] = ["evaluate"]
    return out


def describe_stages() -> str:
    """One line: ``ssl: ssl; multitask: multitask; meta: maml, reptile; transfer: ...; evaluate: evaluate``."""
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in valid_stages().items()) + \
        " (in this order, each kind at most once)"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_stage(text: str) -> StageSpec:
    """Parse ``NAME[:KEY=VALUE]...`` and validate its settings.

    Raises
    ------
    ValueError
        Malformed text, unknown setting or a value out of range (naming it).
    lepton.registry.UnknownNameError
        Unknown stage name.
    """
    parts = str(text).strip().split(":")
    name, kind = parts[0], stage_kind(parts[0])
    given: Dict[str, Any] = {}
    for p in parts[1:]:
        if "=" not in p:
            raise ValueError(f"stage {text!r}: expected KEY=VALUE after ':', got {p!r}")
        key, val = p.split("=", 1)
        given[key.strip()] = _value(val.strip())
    hp = dict(given)
    epochs = hp.pop("epochs", None)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 10000:
            raise ValueError(f"stage {name}: epochs must be a whole number in [1, 10000], got {epochs!r}")
    if kind == "evaluate":
        ks = hp.pop("ks", None)
        unknown = sorted(set(hp) - set(EVALUATE_HPARAMS))
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)} for stage evaluate; valid: "
                             f"{', '.join(EVALUATE_HPARAMS)}, ks")
        hp = {k: h.validate(k, hp.get(k, h.default)) for k, h in EVALUATE_HPARAMS.items()}
        hp["ks"] = _parse_ks(ks) if ks is not None else None
    else:
        hp = METHODS.get(name).validate_hparams(hp)
    return StageSpec(name, kind, hp, epochs, given)


def _parse_ks(v: Any) -> List[int]:
    items = v if isinstance(v, list) else str(v).split(",")
    try:
        ks = [int(str(i).strip()) for i in items]
    except ValueError:
        raise ValueError(f"evaluate: ks must be whole numbers separated by commas, e.g. ks=1,5,10; got {v!r}") from None
    if not ks or min(ks) < 1:
        raise ValueError(f"evaluate: every k in ks must be >= 1; got {v!r}")
    return ks


def parse_stages(stages: Sequence[str]) -> List[StageSpec]:
    """Parse stages and check their order: ssl < multitask < maml|reptile < transfer method < evaluate.

    Raises
    ------
    ValueError
        No stage, or a stage out of order or repeated (naming both stages and the order).
    lepton.registry.UnknownNameError
        An unknown stage (listing the valid ones).
    """
    if isinstance(stages, str):
        stages = stages.split()
    specs = [parse_stage(s) for s in stages]
    if not specs:
        raise ValueError(f"a pipeline needs at least one stage; valid stages: {describe_stages()}")
    for prev, cur in zip(specs, specs[1:]):
        a, b = STAGE_ORDER.index(prev.kind), STAGE_ORDER.index(cur.kind)
        if b < a:
            raise ValueError(f"stage {cur.name!r} ({cur.kind}) cannot come after {prev.name!r} ({prev.kind}); "
                             f"the order is ssl -> multitask -> maml|reptile -> transfer method -> evaluate")
        if a == b:
            raise ValueError(f"stages {prev.name!r} and {cur.name!r} are both {cur.kind} stages; a pipeline has "
                             f"at most one of each kind (ssl -> multitask -> maml|reptile -> transfer -> evaluate)")
    return specs


def check_inputs(domains: Sequence[str], target: str, specs: Sequence[StageSpec], k: int,
                 eval_ks: Sequence[int], init_from: Optional[str] = None, draws: Optional[int] = None) -> None:
    """Checks that need no data: domain lists, stage needs, k.

    Raises
    ------
    ValueError
        Naming the problem: no source domain, a repeated domain, the target among the sources,
        a stage that needs more source domains (``ssl`` and ``multitask`` need 2: pretraining on
        a single domain), nothing to evaluate, or ``k < 1``.
    """
    domains = list(domains)
    if not domains:
        raise ValueError("give at least one source domain (--domains)")
    dup = sorted({d for d in domains if domains.count(d) > 1})
    if dup:
        raise ValueError(f"source domain(s) listed twice: {', '.join(dup)}")
    if target in domains:
        raise ValueError(f"the target {target!r} is also listed as a source domain; the pipeline transfers to a new "
                         "domain, so remove it from --domains")
    for s in specs:
        need = getattr(METHODS.get(s.name), "min_sources", 1) if s.kind != "evaluate" else 0
        if len(domains) < need:
            raise ValueError(f"stage {s.name!r} learns across domains but only one source domain was given "
                             f"({domains[0]!r}); pretraining on a single domain is not supported: give at least "
                             f"{need} source domains, e.g. --domains {domains[0]} digits-noisy")
    if specs[0].kind == "evaluate" and not init_from:
        raise ValueError("the pipeline has nothing to evaluate: put a training stage before 'evaluate' or give "
                         "--init-from RUN_ID")
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
        raise ValueError(f"draws must be a whole number >= 1 (draws of the k labelled examples); got {draws!r}")
    for kk in [k, *eval_ks]:
        if isinstance(kk, bool) or not isinstance(kk, int) or kk < 1:
            raise ValueError(f"k must be a whole number >= 1 (labelled target examples per class); got {kk!r}")


def check_data(sources: Sequence, tgt, specs: Sequence[StageSpec], k: int, eval_ks: Sequence[int], seed: int) -> None:
    """Checks on the harmonised source domains and target.

    Raises
    ------
    ValueError
        An ssl objective the modality cannot support, a ``k`` above a target class's training
        examples (naming the class and count), or episodes a source domain cannot fill.
    """
    from ..methods.meta import EpisodeSampler
    from ..methods.pretraining import check_objective_modality
    from ..data.sampling import k_shot_indices

    harmonised = [*sources, tgt]
    for s in specs:
        if s.kind == "ssl":
            try:
                check_objective_modality(s.hparams["objective"], tgt.input_shape)
            except ValueError as e:
                raise ValueError(f"stage {s.name}: {e} (domains: {', '.join(d.name for d in harmonised)})") from None
        if s.kind == "meta":
            h = s.hparams
            ys = [(d.name, None, torch.from_numpy(d.y_train)) for d in sources]
            try:
                EpisodeSampler(ys, tgt.n_classes, int(h["n_way"]), int(h["k_shot"]), int(h["query"]),
                               torch.Generator())
            except ValueError as e:
                raise ValueError(f"stage {s.name}: {e}") from None
    for kk in sorted({k, *eval_ks}):
        k_shot_indices(tgt.y_train, int(kk), seed, tgt.class_names)
