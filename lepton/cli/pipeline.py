"""``python -m lepton pipeline``: chain stages over several source domains (see :mod:`lepton.pipeline`)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:  # the pipeline (and torch) is imported only by the command that runs it
    from ..pipeline import PipelineResult, Progress

def _pct(v) -> str:
    try:
        return "-" if v is None or v != v else f"{100 * float(v):.1f}"
    except (TypeError, ValueError):
        return "-"


def print_progress(stream=sys.stderr) -> "Progress":
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


def format_result(res: "PipelineResult") -> str:
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
    from ..pipeline import run_pipeline
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
