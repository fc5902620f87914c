"""The five-step pipeline: prepare data from several domains -> self-supervised pretraining ->
multi-task learning -> (meta-learning) -> transfer and fine-tune on the new domain -> evaluate.

Every training stage is one :func:`lepton.training.fit` run of a registered method (``ssl``,
``multitask``, ``maml``/``reptile``, then any transfer method), recorded in the knowledge base
with its parent (the previous stage's run) and initialised from the previous stage's encoder
E and transfer module T. The first source domain is each run's ``source``; the other source
domains are its ``eval_domains`` (so all stages harmonise the same domains the same way) and
are attached to the multi-domain stages as extra training data. ``evaluate`` measures the final
encoder on the target with k labelled examples per class (:mod:`lepton.strategies.fewshot`).

``run_pipeline`` is what the CLI (``python -m lepton pipeline``) and the app call.
"""
from __future__ import annotations

import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

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

    def __init__(self, progress: Progress, base: Dict[str, Any], recorder=None):
        self.progress, self.base, self.recorder = progress, base, recorder

    def on_run_start(self, run) -> None:
        rid = self.recorder.run_id if self.recorder is not None else None
        self.progress({**self.base, "event": "stage_run", "run_id": rid, "total_steps": run.total_steps})

    def on_step_end(self, run, step, epoch, losses) -> None:
        self.progress({**self.base, "event": "step", "step": step, "total_steps": run.total_steps, "epoch": epoch,
                       "fraction": step / max(1, run.total_steps), "losses": losses})

    def on_epoch_end(self, run, epoch, metrics) -> None:
        self.progress({**self.base, "event": "epoch", "epoch": epoch, "epochs": run.config.epochs, "metrics": metrics})


def _open_kb(kb, record: bool):
    if not record:
        return None
    if kb is not None:
        return kb
    from .kb import KnowledgeBase
    return KnowledgeBase()


def _save_json(kb, run_id: Optional[str], name: str, doc: Dict[str, Any]) -> None:
    """Store ``doc`` as ``<run folder>/<name>`` (atomic); a failure is a warning, not an error."""
    if kb is None or not run_id:
        return
    from .kb.files import KBError, write_json
    try:
        write_json(kb.run_dir(run_id) / name, doc)
    except (KBError, OSError) as e:
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
    check_inputs(domains, target, specs, k, ks, init_from)
    names = [domains[0], target, *domains[1:]]
    check_data(harmonise([load_domain(n, data_dir) for n in names])[0], specs, k, ks, seed)
    kb = _open_kb(kb, record or bool(init_from))
    emit = progress or (lambda e: None)
    out = PipelineResult(domains, target, seed, k, "completed")
    state = kb.load_state(init_from) if init_from else None
    parent, last_run = init_from, None
    for i, spec in enumerate(specs):
        base = {"index": i, "n_stages": len(specs), "stage": spec.label(), "kind": spec.kind}
        if stop_event is not None and stop_event.is_set():
            out.status = "stopped"
            break
        epochs = spec.epochs or int(epochs_per_stage)
        emit({**base, "event": "stage_start", "epochs": None if spec.kind == "evaluate" else epochs})
        ts = time.perf_counter()
        if spec.kind == "evaluate":
            if last_run is None:
                last_run = _rebuild(domains, target, state, seed, batch_size, device, encoder, data_dir)
            sr = _evaluate_stage(spec, last_run, parent, ks, draws, seed)
            sr.wall_time_s = time.perf_counter() - ts
            _save_json(kb if record else None, parent, "evaluation.json", asdict(sr))
        else:
            cfg = RunConfig(source=domains[0], target=target, method=spec.name, hparams=spec.hparams, epochs=epochs,
                            batch_size=batch_size, seed=seed, device=device, eval_domains=tuple(domains[1:]),
                            encoder=encoder, init_from=parent if record else None, eval_cap=eval_cap)
            sr, last_run, state = _fit_stage(cfg, spec, state, parent, base, emit, stop_event, data_dir, kb if record
                                             else None, feature_cap, k, seed, draws, batch_size)
            sr.wall_time_s = time.perf_counter() - ts
            sr.epochs = epochs
            parent = sr.run_id or parent
        out.stages.append(sr)
        emit({**base, "event": "stage_end", "result": sr})
        if sr.status != "completed":
            out.status, out.error = sr.status, sr.error
            break
    out.wall_time_s = time.perf_counter() - t0
    emit({"event": "done", "result": out})
    return out


def _evaluate_stage(spec, run, parent, ks, draws, seed) -> StageResult:
    """Few-shot evaluation of ``run.method`` on the run's harmonised target."""
    from .strategies.fewshot import evaluate_few_shot
    h = spec.hparams
    n_draws = int(h["draws"]) if "draws" in spec.given else int(draws)
    metrics = evaluate_few_shot(run.method, run.target, ks=ks, draws=n_draws, seed=seed,
                                adapt_steps=int(h["adapt_steps"]), adapt_lr=float(h["adapt_lr"]),
                                adapt_optimizer=h["adapt_optimizer"])
    return StageResult(spec.name, spec.kind, spec.label(), None, parent, "completed", metrics)


def _fit_stage(cfg, spec, state, parent, base, emit, stop_event, data_dir, kb, feature_cap, k, seed, draws, bs):
    from .methods.pretraining import MultiDomainMethod
    from .training import fit, prepare

    run = prepare(cfg, data_dir, init_state=state)
    if isinstance(run.method, MultiDomainMethod):
        run.method.attach_domains([run.domains[0], *run.domains[2:]], bs, seed)
    callbacks: list = []
    recorder = None
    if kb is not None:
        from .kb import KBRecorder
        recorder = KBRecorder(kb, parent=parent, feature_cap=feature_cap)
        callbacks.append(recorder)
    callbacks.append(_Relay(emit, base, recorder))
    res = fit(cfg, callbacks, stop_event, data_dir, run=run)
    rid = recorder.run_id if recorder is not None else None
    ck = "selected" if spec.kind == "transfer" else "last"
    sr = StageResult(spec.name, spec.kind, spec.label(), rid, parent, res.status, error=res.error)
    if ck in res.states:
        run.method.load_state_dict(res.states[ck])
        state = res.states[ck]
        sr.metrics = _stage_metrics(spec, res, run, ck, k, seed, draws)
        _save_json(kb, rid, "stage.json", asdict(sr))
    return sr, run, state


def _rebuild(domains, target, state, seed, batch_size, device, encoder, data_dir):
    """A prepared run holding a stored network (for ``evaluate`` right after ``--init-from``)."""
    from .training import prepare
    cfg = RunConfig(source=domains[0], target=target, method="source-only", epochs=1, batch_size=batch_size,
                    seed=seed, device=device, eval_domains=tuple(domains[1:]), encoder=encoder)
    run = prepare(cfg, data_dir)
    own = run.method.net.state_dict()
    net = {kk[4:]: v for kk, v in state.items() if kk.startswith("net.") and kk[4:] in own
           and own[kk[4:]].shape == v.shape}
    if not any(kk.startswith("encoder.") for kk in net):
        raise ValueError("the stored run's encoder does not fit these domains (different input shape or encoder)")
    run.method.net.load_state_dict({**own, **net})
    return run


# ----------------------------------------------------------------------------------------- CLI
def _pct(v) -> str:
    try:
        return "-" if v is None or v != v else f"{100 * float(v):.1f}"
    except (TypeError, ValueError):
        return "-"


def print_progress(stream=sys.stderr) -> Progress:
    """A ``progress`` callable printing one line per stage start, epoch and stage end."""
    def show(e: Dict[str, Any]) -> None:
        ev = e.get("event")
        head = f"[{e.get('index', 0) + 1}/{e.get('n_stages', 0)}] {e.get('stage', '')}"
        if ev == "stage_start":
            print(f"lepton: {head}" + (f", {e['epochs']} epochs" if e.get("epochs") else ""), file=stream, flush=True)
        elif ev == "epoch":
            m = e["metrics"]
            losses = " ".join(f"{kk}={v:.3f}" for kk, v in m.get("losses", {}).items())
            print(f"  epoch {e['epoch']}/{e['epochs']}  source acc {m['source_acc']:.3f}  target acc "
                  f"{m['target_acc']:.3f}  {losses}", file=stream, flush=True)
        elif ev == "stage_end":
            r = e["result"]
            print(f"  -> {r.status} in {r.wall_time_s:.1f} s" + (f", run {r.run_id}" if r.run_id else ""),
                  file=stream, flush=True)
    return show


def format_result(res: PipelineResult) -> str:
    """Plain-text tables of the stages and of the evaluation."""
    lines = [f"pipeline {' + '.join(res.domains)} -> {res.target}: {res.status} in {res.wall_time_s:.1f} s "
             f"(seed {res.seed})", "",
             f"{'stage':34s} {'run':24s} {'parent':24s} {'target %':>8s} {f'probe k={res.k} %':>14s} {'time s':>7s}"]
    for s in res.stages:
        if s.kind == "evaluate":
            continue
        p = s.metrics.get("probe", {})
        probe = f"{_pct(p.get('mean'))} ± {_pct(p.get('std'))}" if p else "-"
        lines.append(f"{s.label[:34]:34s} {s.run_id or '-':24s} {s.parent or '-':24s} "
                     f"{_pct(s.metrics.get('target_acc')):>8s} {probe:>14s} {s.wall_time_s:7.1f}")
    ev = res.evaluation
    if ev:
        lines += ["", f"evaluation on the target test split ({ev['n_test']} examples), accuracy % mean ± std "
                      f"over {len(ev['seeds'])} draws:", f"{'protocol':18s} {'k':>3s} {'accuracy':>14s}"]
        for r in ev["rows"]:
            lines.append(f"{r['protocol']:18s} {r['k']:3d} {_pct(r['mean']) + ' ± ' + _pct(r['std']):>14s}")
    if res.error:
        lines.append(f"error: {res.error}")
    return "\n".join(lines)


def cmd_pipeline(args) -> int:
    """``python -m lepton pipeline``: run, print the tables (or JSON); 1 if a stage failed."""
    import json
    res = run_pipeline(args.domains, args.target, args.stages, args.epochs, args.seed, args.k,
                       progress=None if args.quiet else print_progress(sys.stderr), data_dir=args.data_dir,
                       batch_size=args.batch_size, device=args.device, draws=args.draws, eval_ks=args.eval_k,
                       init_from=args.init_from, record=not args.no_kb)
    print(json.dumps(res.summary(), default=str) if args.json else format_result(res))
    if res.status == "failed":
        print(f"lepton: error: pipeline failed: {res.error}", file=sys.stderr)
        return 1
    return 0


def add_command(subparsers) -> None:
    """Register the ``pipeline`` subcommand on the CLI's subparsers."""
    p = subparsers.add_parser("pipeline", help="chain stages: ssl -> multitask -> maml|reptile -> transfer -> evaluate",
                              description="Stages, in this order and each kind at most once: ssl, multitask, maml or "
                              "reptile, one transfer method (python -m lepton methods), evaluate. Write NAME:KEY=VALUE "
                              "to set a hyper-parameter or the stage's epochs, e.g. ssl:objective=rotation:epochs=3; "
                              "evaluate takes draws, ks (e.g. ks=1,5,10), adapt_steps, adapt_lr, adapt_optimizer.")
    p.add_argument("--domains", nargs="+", required=True, help="source domains (the first is each run's source)")
    p.add_argument("--target", required=True, help="the new domain")
    p.add_argument("--stages", nargs="+", required=True,
                   help="e.g. ssl:objective=rotation multitask:weighting=uncertainty finetune evaluate")
    p.add_argument("--epochs", type=int, default=2, help="epochs per training stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=5, help="labelled target examples per class (finetune, probe, evaluate)")
    p.add_argument("--eval-k", type=int, nargs="+", default=None, help="k values of evaluate (default: --k)")
    p.add_argument("--draws", type=int, default=5, help="draws of the k examples (mean ± std)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--init-from", default=None, help="knowledge-base run whose encoder starts the first stage")
    p.add_argument("--no-kb", action="store_true", help="do not record the stages in the knowledge base")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_pipeline)
