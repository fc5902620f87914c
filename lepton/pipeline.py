"""The five-step pipeline: prepare data from several domains -> self-supervised pretraining ->
multi-task learning -> (meta-learning) -> transfer and fine-tune on the new domain -> evaluate.

Every training stage is one :func:`lepton.training.train` run of a registered method (``ssl``,
``multitask``, ``maml``/``reptile``, then any transfer method) whose config names all the source
domains as its sources (so all stages harmonise the same domains the same way) and, as
``init_from``, the previous stage's run: its encoder E and transfer module T start the stage and
it is stored as the parent. Without recording (``record=False``) the stages chain through a
temporary knowledge base that is removed at the end. ``evaluate`` measures the final encoder on
the target with k labelled examples per class (:mod:`lepton.strategies.fewshot`).

``run_pipeline`` is what the CLI (``python -m lepton pipeline``) and the app call.
"""
from __future__ import annotations

import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from .config import RunConfig
from .training.callbacks import Callback

if TYPE_CHECKING:
    from .strategies.stages import StageSpec

Progress = Callable[[Dict[str, Any]], None]


@dataclass
class StageResult:
    """One finished (or stopped / failed) stage.

    Attributes
    ----------
    name, kind, label : str
        ``ssl`` / ``ssl`` / ``ssl:objective=rotation``.
    run_id : str or None
        Knowledge-base run of this stage (None for ``evaluate`` and when not recorded).
    parent : str or None
        Run whose encoder initialised it (``evaluate``: the run it evaluated).
    status : str
        ``completed``, ``stopped`` or ``failed``.
    metrics : dict
        Training stages: ``checkpoint`` (which state is passed on: ``last`` for pretraining
        stages, the label-free ``selected`` one for the transfer stage), ``epoch``,
        ``target_acc``, ``source_acc`` (fractions), ``probe`` (linear-probe accuracy on the
        target at the pipeline's k: ``mean``/``std``/``values``), ``losses`` (last epoch) and,
        for ``multitask``, ``task_weights`` per epoch. ``evaluate``: ``rows`` (see
        :func:`lepton.strategies.evaluate_few_shot`).
    wall_time_s : float
        Seconds.
    """

    name: str
    kind: str
    label: str
    run_id: Optional[str]
    parent: Optional[str]
    status: str
    metrics: Dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    epochs: Optional[int] = None
    error: str = ""


@dataclass
class PipelineResult:
    """Outcome of :func:`run_pipeline`: one :class:`StageResult` per stage run, in order."""

    domains: List[str]
    target: str
    seed: int
    k: int
    status: str
    stages: List[StageResult] = field(default_factory=list)
    wall_time_s: float = 0.0
    error: str = ""

    @property
    def evaluation(self) -> Optional[Dict[str, Any]]:
        """Metrics of the ``evaluate`` stage, if it ran."""
        return next((s.metrics for s in self.stages if s.kind == "evaluate"), None)

    def summary(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _stage_metrics(spec: "StageSpec", res, run, ck: str, k: int, seed: int, draws: int) -> Dict[str, Any]:
    from .strategies.fewshot import evaluate_few_shot
    c = res.checkpoints.get(ck, {})
    hist = res.history
    m: Dict[str, Any] = {"checkpoint": ck, "epoch": c.get("epoch"), "target_acc": c.get("target_acc"),
                         "source_acc": c.get("source_acc") if ck == "selected" else
                         (hist[-1]["source_acc"] if hist else None), "losses": hist[-1]["losses"] if hist else {}}
    if spec.kind == "multitask":
        m["task_weights"] = [{kk[len("weight:"):]: v for kk, v in r["losses"].items() if kk.startswith("weight:")}
                             for r in hist]
    ev = evaluate_few_shot(run.method, run.target, ks=(k,), draws=draws, seed=seed, finetune=False)
    m["probe"] = {kk: ev["rows"][1][kk] for kk in ("mean", "std", "values")}
    return m


class _Relay(Callback):
    """Training-loop callback turning hook calls into ``progress`` events (see :func:`run_pipeline`)."""

    def __init__(self, progress: Progress, base: Dict[str, Any], recorded: bool = True):
        self.progress, self.base, self.recorded = progress, base, recorded

    def on_run_start(self, run) -> None:
        rid = run.run_id if self.recorded else None
        self.progress({**self.base, "event": "stage_run", "run_id": rid, "total_steps": run.total_steps})

    def on_step_end(self, run, step, epoch, losses) -> None:
        self.progress({**self.base, "event": "step", "step": step, "total_steps": run.total_steps, "epoch": epoch,
                       "fraction": step / max(1, run.total_steps), "losses": losses})

    def on_epoch_end(self, run, epoch, metrics) -> None:
        self.progress({**self.base, "event": "epoch", "epoch": epoch, "epochs": run.config.epochs, "metrics": metrics})


@contextmanager
def _stage_store(kb, record: bool, init_from: Optional[str]) -> Iterator[Any]:
    """The knowledge base the stages chain through: ``kb`` (default the user's) when recording,
    else a temporary one (holding a copy of ``init_from``'s run) removed afterwards."""
    from .kb import KnowledgeBase
    if record:
        yield kb if kb is not None else KnowledgeBase()
        return
    with tempfile.TemporaryDirectory(prefix="lepton-pipeline-") as tmp:
        store = KnowledgeBase(tmp)
        if init_from:
            (kb if kb is not None else KnowledgeBase()).copy_run(init_from, store)
        yield store


def _save_doc(kb, run_id: Optional[str], name: str, doc: Dict[str, Any]) -> None:
    """Store ``doc`` in the run's folder through the knowledge base; a failure is a warning."""
    from .kb import KBError
    if not run_id:
        return
    try:
        kb.write_doc(run_id, name, doc)
    except KBError as e:
        warnings.warn(f"could not store {name} in run {run_id}: {e}")


def run_pipeline(domains: Sequence[str], target: str, stages: Union[str, Sequence[str]],
                 epochs_per_stage: int = 2, seed: int = 0, k: int = 5, progress: Optional[Progress] = None,
                 stop_event: Optional[threading.Event] = None, data_dir=None, *, batch_size: int = 64,
                 device: str = "auto", encoder: str = "auto", draws: int = 5, eval_ks: Optional[Sequence[int]] = None,
                 init_from: Optional[str] = None, kb=None, record: bool = True, feature_cap: int = 500,
                 eval_cap: int = 1000) -> PipelineResult:
    """Run a chain of stages from several source domains to a target domain.

    Parameters
    ----------
    domains : sequence of str
        Source domains (labelled; the first one is each run's ``source``). Never the target.
    target : str
        The new domain; its labels are used only by ``k``-shot stages and ``evaluate``.
    stages : sequence of str or str
        ``NAME[:KEY=VALUE]...`` in the order ssl -> multitask -> maml|reptile -> transfer
        method -> evaluate (see :mod:`lepton.strategies.stages`).
    epochs_per_stage : int
        Epochs of each training stage (``NAME:epochs=N`` overrides).
    seed : int
        Seeds every stage, the batches, the episodes and the k-shot draws.
    k : int
        Labelled target examples per class for a k-shot transfer stage (``finetune``), the
        per-stage linear probe and, unless ``eval_ks`` is given, ``evaluate``.
    progress : callable, optional
        Called with event dicts, each with ``event``, ``index`` (0-based stage), ``n_stages``,
        ``stage`` (label) and ``kind``: ``stage_start`` (``epochs``), ``stage_run`` (``run_id``,
        ``total_steps``), ``step`` (``step``, ``total_steps``, ``fraction``, ``losses``),
        ``epoch`` (``epoch``, ``epochs``, ``metrics``: the loop's history row), ``stage_end``
        (``result``: :class:`StageResult`); finally ``done`` (``result``: :class:`PipelineResult`).
        Called from the thread that runs the pipeline.
    stop_event : threading.Event, optional
        Set it to stop after the current step; the result is ``stopped``.
    data_dir : path-like, optional
    batch_size, device, encoder : int, str, str
        As in :class:`lepton.config.RunConfig`.
    draws : int
        Draws of the k labelled examples (linear probe and ``evaluate`` default).
    eval_ks : sequence of int, optional
        ``k`` values of ``evaluate`` (default ``[k]``; ``evaluate:ks=...`` overrides).
    init_from : str, optional
        Knowledge-base run whose encoder initialises the first stage (or is evaluated).
    kb : lepton.kb.KnowledgeBase, optional
        Where to record (default: the user's knowledge base).
    record : bool
        Record each training stage in the knowledge base.
    feature_cap : int
        Feature snapshot rows per domain stored with each run (0: none).
    eval_cap : int
        Per-epoch evaluation sample size (see :class:`RunConfig`).

    Returns
    -------
    PipelineResult

    Raises
    ------
    ValueError
        Before any training, naming the problem: an unknown (``KeyError`` subclass) or misordered
        stage, a bad setting, pretraining on a single domain, a k above a target class's
        examples, an ssl objective the data's modality cannot support, unusable domains.
    """
    from .data import load_domain
    from .data.pairing import harmonise
    from .strategies.stages import check_data, check_inputs, parse_stages

    t0 = time.perf_counter()
    specs = parse_stages(stages)
    for s in specs:  # the pipeline's k reaches a k-shot transfer stage unless the stage sets its own
        if s.kind == "transfer" and "k" in s.hparams and "k" not in s.given:
            s.hparams["k"] = int(k)
    ev_spec = next((s for s in specs if s.kind == "evaluate"), None)
    ks = list((ev_spec.hparams.get("ks") if ev_spec else None) or eval_ks or [k])
    domains = list(domains)
    check_inputs(domains, target, specs, k, ks, init_from, draws)
    roles = ["source"] * len(domains) + ["target"]
    doms, _ = harmonise([load_domain(n, data_dir) for n in [*domains, target]], roles)
    check_data(doms[:-1], doms[-1], specs, k, ks, seed)
    emit = progress or (lambda e: None)
    out = PipelineResult(domains, target, seed, k, "completed")
    common = dict(source=tuple(domains), target=target, batch_size=batch_size, seed=seed, device=device,
                  encoder=encoder, eval_cap=eval_cap)
    with _stage_store(kb, record, init_from) as store:
        parent = store.resolve(init_from) if init_from else None
        parent_ck, last = "selected", None
        for i, spec in enumerate(specs):
            base = {"index": i, "n_stages": len(specs), "stage": spec.label(), "kind": spec.kind}
            if stop_event is not None and stop_event.is_set():
                out.status = "stopped"
                break
            epochs = spec.epochs or int(epochs_per_stage)
            emit({**base, "event": "stage_start", "epochs": None if spec.kind == "evaluate" else epochs})
            ts = time.perf_counter()
            if spec.kind == "evaluate":
                method, tgt = (last.plan.method, last.plan.target) if last is not None else \
                    _rebuild(store, parent, common, data_dir)
                sr = _evaluate_stage(spec, method, tgt, parent, ks, draws, seed)
                if record:
                    _save_doc(store, parent, "evaluation.json", asdict(sr))
            else:
                cfg = RunConfig(method=spec.name, hparams=spec.hparams, epochs=epochs, init_from=parent,
                                init_checkpoint=parent_ck, **common)
                sr, last = _fit_stage(cfg, spec, store, base, emit, stop_event, data_dir, record, feature_cap,
                                      k, seed, draws)
                sr.epochs = epochs
                parent, parent_ck = last.run_id or parent, sr.metrics.get("checkpoint", "selected")
                sr.run_id = sr.run_id if record else None
                sr.parent = sr.parent if record else None
            sr.wall_time_s = time.perf_counter() - ts
            out.stages.append(sr)
            emit({**base, "event": "stage_end", "result": sr})
            if sr.status != "completed":
                out.status, out.error = sr.status, sr.error
                break
    out.wall_time_s = time.perf_counter() - t0
    emit({"event": "done", "result": out})
    return out


def _evaluate_stage(spec, method, target, parent, ks, draws, seed) -> StageResult:
    """Few-shot evaluation of ``method`` on the run's harmonised target."""
    from .strategies.fewshot import evaluate_few_shot
    h = spec.hparams
    n_draws = int(h["draws"]) if "draws" in spec.given else int(draws)
    metrics = evaluate_few_shot(method, target, ks=ks, draws=n_draws, seed=seed,
                                adapt_steps=int(h["adapt_steps"]), adapt_lr=float(h["adapt_lr"]),
                                adapt_optimizer=h["adapt_optimizer"])
    return StageResult(spec.name, spec.kind, spec.label(), None, parent, "completed", metrics)


def _fit_stage(cfg, spec, store, base, emit, stop_event, data_dir, record, feature_cap, k, seed, draws):
    from .training import train

    res = train(cfg, kb=store, callbacks=[_Relay(emit, base, record)], stop_event=stop_event, data_dir=data_dir,
                feature_cap=feature_cap if record else 0)
    ck = "selected" if spec.kind == "transfer" else "last"
    sr = StageResult(spec.name, spec.kind, spec.label(), res.run_id, res.config.init_from, res.status, error=res.error)
    if ck in res.states:
        res.plan.method.load_state_dict(res.states[ck])
        sr.metrics = _stage_metrics(spec, res, res.plan, ck, k, seed, draws)
        if record:
            _save_doc(store, res.run_id, "stage.json", asdict(sr))
    return sr, res


def _rebuild(store, run_id: str, common: Dict[str, Any], data_dir):
    """``(method, harmonised target)`` holding a stored network (``evaluate`` right after ``--init-from``)."""
    from .training import plan
    p = plan(RunConfig(method="source-only", epochs=1, **common), data_dir)
    net = store.load_method(run_id)
    try:
        p.method.net.load_state_dict(net.state_dict())
    except RuntimeError:
        raise ValueError(f"the stored run {run_id}'s network does not fit these domains (different input shape, "
                         "classes or encoder)") from None
    return p.method, p.target
