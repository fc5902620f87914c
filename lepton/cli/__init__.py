"""Command line: ``python -m lepton domains|methods|train|kb|map|pipeline ...`` over the same core the
app uses. All argparse code of Lepton lives in this package."""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import List, Optional

from ..registry import UnknownNameError


class CLIError(Exception):
    """An error shown to the user as one line, exit status 2."""


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def cmd_domains(args) -> int:
    from ..data import list_domains, resolve_data_dir
    from ..data.prepared import domain_summary
    ddir = resolve_data_dir(args.data_dir)
    rows = list_domains(ddir)
    if args.json:
        print(json.dumps({"data_dir": str(ddir), "domains": rows}))
        return 0
    print(f"data folder: {ddir}")
    print(f"{'name':18s} {'modality':9s} {'train':>7s} {'test':>7s} {'shape':12s} description")
    for r in rows:
        if r["available"]:
            info = domain_summary(r["name"], ddir)
            tr, te = info["train"], info["test"]
            shape = {"text": "text", "interactions": "user-item"}.get(r["modality"]) or "x".join(map(str, info["shape"]))
        else:
            tr = te = "-"
            shape = "missing files"
        print(f"{r['name']:18s} {r['modality']:9s} {tr!s:>7s} {te!s:>7s} {shape:12s} {r['description']}")
    from ..data.shifts import operators
    print("\nshifted domains by name: BASE:OP[=VALUE]..., e.g. digits:rotate=30, mnist:invert:noise=0.2, "
          "fsdd-george:noise=10:telephone")
    for modality in ("image", "audio"):
        print(f"  {modality} ops: {', '.join(operators(modality))}")
    return 0


#: ``--encoder``'s help, written out so that building the parser does not import torch
#: (lepton.models); a test checks it against the encoder registry.
ENCODER_HELP = ("auto (image: lenet, features: mlp, tokens: embedding-bag, audio: audio-cnn) or one of lenet, "
                "audio-cnn, embedding-bag, mlp, mlp-784-256-128-64 (embedding-bag: text as token ids)")


def cmd_methods(args) -> int:
    from ..methods_listing import method_listing
    out = method_listing()
    if args.json:
        for m in out:
            for h in m["hparams"].values():
                h.pop("describe", None)
        print(json.dumps(out))
        return 0
    for m in out:
        print(f"{m['name']}: {m['summary']}")
        for k, h in m["hparams"].items():
            print(f"    {k:18s} {h['describe']}")
    return 0


def cmd_words(args) -> int:
    """``words --source A --target B``: what shifted between two text domains, in words."""
    from ..evaluation.words import shifted_terms, source_cues
    st = shifted_terms(args.source, args.target, top=args.top)
    cues = source_cues(args.source, args.target, top=args.top)
    if args.json:
        print(json.dumps({"source": st["source"].to_dict("records"), "target": st["target"].to_dict("records"),
                          "source_cues": cues.to_dict("records")}))
        return 0
    for side, name in (("source", args.source), ("target", args.target)):
        print(f"terms most characteristic of {name} (log-odds z, informative Dirichlet prior; counts in "
              f"{args.source} / {args.target}):")
        for r in st[side].itertuples():
            print(f"  {r.term:24s} z {r.z:6.1f}   {r.count_source:6d} / {r.count_target:<6d}")
    print(f"\nterms a classifier trained on {args.source}'s labels leans on, and how often texts contain them "
          f"(source / target):")
    for r in cues.itertuples():
        rare = "   <- rare in the target" if r.target_vs_source < 0.5 else ""
        print(f"  {r.term:24s} -> {r._2:10s} {100 * r.df_source:5.1f}% / {100 * r.df_target:5.1f}%{rare}")
    return 0


def cmd_lessons(args) -> int:
    from ..lessons import LESSONS, lessons
    if args.json:
        print(json.dumps(lessons()))
        return 0
    for x in LESSONS:
        print(f"{x.key}: {x.title}\n    python -m lepton train --source {x.source} --target {x.target} --method "
              f"{x.method} --epochs {x.epochs}\n    app: /?" + "&".join(f"{k}={v}" for k, v in x.query().items())
              + f"\n    {x.watch}\n")
    return 0


def _parse_hparams(text: Optional[str]) -> dict:
    if not text:
        return {}
    try:
        hp = json.loads(text)
    except json.JSONDecodeError as e:
        raise CLIError(f"--hparams is not valid JSON ({e.msg}); example: --hparams '{{\"lr\": 0.001}}'")
    if not isinstance(hp, dict):
        raise CLIError("--hparams must be a JSON object, e.g. '{\"trade_off\": 1.0}'")
    return hp


def cmd_train(args) -> int:
    from ..config import RunConfig
    from ..training import Callback, PrintProgress, train

    class Notes(Callback):  # the plan's warnings and notes, one line each, before the first step
        def on_run_start(self, run) -> None:
            for note in run.notes:
                if note["level"] in ("warning", "info") and not (args.quiet and note["level"] == "info"):
                    print(f"lepton: {'warning' if note['level'] == 'warning' else 'note'}: {note['message']}",
                          file=sys.stderr, flush=True)

    seeds = [args.seed]
    if args.seeds is not None:
        from ..kb.repeats import check_seeds
        seeds = check_seeds(args.seeds)
    hparams = _parse_hparams(args.hparams)
    kb = None
    if not args.no_store or args.init_from:
        from ..kb import KnowledgeBase
        kb = KnowledgeBase()
    callbacks = [Notes()] + ([] if args.quiet else [PrintProgress(sys.stderr)])
    results = []
    for i, seed in enumerate(seeds):
        cfg = RunConfig(source=tuple(args.source), target=args.target, method=args.method, hparams=hparams,
                        epochs=args.epochs, batch_size=args.batch_size, seed=seed, device=args.device,
                        select=args.select, eval_domains=tuple(args.eval or ()), encoder=args.encoder,
                        init_from=args.init_from, scaling=args.scaling, steps=args.steps, protocol=args.protocol,
                        augment=args.augment)
        if len(seeds) > 1 and not args.quiet:
            print(f"lepton: seed {seed} ({i + 1} of {len(seeds)})", file=sys.stderr, flush=True)
        result = train(cfg, kb=kb, callbacks=callbacks if i == 0 else callbacks[1:], data_dir=args.data_dir,
                       record=not args.no_store, checkpoints=tuple(args.checkpoints))
        results.append(result)
        stored = {"run_id": result.run_id, "kb": str(kb.home)} if result.run_id else {}
        if args.seeds is None:
            if args.json:
                from ..kb.files import json_ready
                print(json.dumps(json_ready({**result.summary(), **stored}), default=str))  # NaN is not JSON: null
            else:
                _print_result(result)
                if stored:
                    print(f"run id: {stored['run_id']}   knowledge base: {stored['kb']}")
        elif not args.json:
            _print_seed_line(result)
        for msg in result.diagnosis:
            print(f"lepton: warning: {msg}" + (f" (seed {seed})" if len(seeds) > 1 else ""), file=sys.stderr)
    if args.seeds is not None:
        from ..kb.repeats import seed_summary
        summary = seed_summary([r.summary() for r in results])
        if args.json:
            from ..kb.files import json_ready
            runs = [{**r.summary(), "run_id": r.run_id} for r in results]
            print(json.dumps(json_ready({"seeds": seeds, "runs": runs, "mean_std": summary}), default=str))
        else:
            _print_seed_summary(summary, results[0])
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"lepton: error: run failed{f' (seed {r.config.seed})' if len(seeds) > 1 else ''}: {r.error}",
              file=sys.stderr)
    return 1 if failed else 0


def _print_seed_line(result) -> None:
    """One line per seed of a ``--seeds`` repeat: its run id and its model's target figure."""
    ck = result.checkpoints.get("selected", {})
    metric = "NDCG@10" if result.config.task == "ranking" else "target accuracy"
    flag = f" ({', '.join(result.flags)})" if result.flags else ""
    print(f"seed {result.config.seed:<6d} {result.status}{flag}   {metric} (label-free checkpoint) "
          f"{_fmt(ck.get('target_acc'))}   {result.wall_time_s:.1f} s   run id: {result.run_id or '-'}")


def _print_seed_summary(summary, first) -> None:
    """The mean ± std table of a ``--seeds`` repeat (every figure a single run prints)."""
    seeds = summary["seeds"]
    print(f"\nmean ± std over {len(seeds) - len(summary['failed'])} seed(s) ({', '.join(map(str, seeds))}; "
          f"sample std, ddof 1)   wall time {summary['wall_time_s']['mean']:.1f} ± {summary['wall_time_s']['std']:.1f} s"
          f" per run")
    if summary["failed"]:
        print(f"seeds {', '.join(map(str, summary['failed']))} did not complete and are left out")
    labels = {"selected": "label-free [model]", "last": "last epoch", "oracle": "oracle-best (target labels)"}
    print(f"{'domain':24s} {'role':7s} {'split':6s} {'checkpoint':28s} {'metric':9s} {'mean ± std':>15s} {'n':>3s}")
    for r in summary["table"]:
        print(f"{r['domain']:24s} {str(r.get('role', r.get('users', ''))):7s} {str(r.get('split', '')):6s} "
              f"{labels.get(r['checkpoint'], r['checkpoint']):28s} {r['metric']:9s} "
              f"{100 * r['mean']:7.1f} ± {100 * r['std']:4.1f}% {r['n']:>3d}")


def _print_result(result) -> None:
    flag = f" ({', '.join(result.flags)})" if result.flags else ""
    print(f"\nstatus: {result.status}{flag}   wall time: {result.wall_time_s:.1f} s   device: {result.environment.get('device')}")
    if not result.table:
        print("no epoch finished; nothing to report")
        return
    b = result.budget
    if result.config.task == "ranking":
        _print_ranking(result)
        return
    if b:
        print(f"budget: {b.get('steps_done', b.get('steps')):,} of {b.get('steps'):,} optimisation steps, "
              f"{b.get('steps_per_epoch')} per epoch   protocol: {result.config.protocol}   "
              f"scaling: {result.harmonisation.get('scaling', {}).get('method', 'images: pixels in [0, 1]')}   "
              f"augment: {result.config.augment}")
    print(f"{'domain':24s} {'role':7s} {'split':6s} {'checkpoint':30s} {'accuracy':>9s} {'n':>7s}")
    sel = result.config.select
    labels = {"selected": f"label-free ({sel}) [model]", "last": "last epoch", "oracle": "oracle-best (target labels)"}
    for r in result.table:
        if r["checkpoint"] == "oracle" and not r.get("labelled", True):
            continue  # no labels, no oracle
        ep = result.checkpoints[r["checkpoint"]]["epoch"]
        print(f"{r['domain']:24s} {r['role']:7s} {r['split']:6s} {labels[r['checkpoint']] + f' @{ep}':30s} "
              f"{_fmt(r['accuracy']) if r.get('labelled', True) else 'no labels':>9s} {r.get('n', ''):>7}")
    from ..training.health import selection_gap
    gap = selection_gap(result.checkpoints)
    if gap is not None:
        print(gap)


def _print_ranking(result) -> None:
    b, h = result.budget, result.harmonisation
    from ..methods import METHODS
    trains = getattr(METHODS.get(result.config.method), "trains", True)
    spent = (f"{b.get('steps_done', 0):,} of {b.get('steps', 0):,} optimisation steps" if trains else
             f"no training ({result.config.method} counts the target's training positives)")
    print(f"budget: {spent}   protocol: {h['protocol']}   "
          f"cold start: {h['cold_start_users']} users keep {h['cold_start_k']} target interaction(s)")
    print(f"{'domain':24s} {'checkpoint':34s} {'users':11s} {'HR@10':>6s} {'NDCG@10':>8s} {'n':>6s}")
    labels = {"selected": "label-free (validation NDCG) [model]", "last": "last epoch",
              "oracle": "oracle-best (test items)"}
    plan = result.plan
    if getattr(plan, "method", None) is not None and (plan.method.select_last or not len(plan.data.val)):
        labels["selected"] = "last epoch [model]"
    for r in result.table:
        if r["checkpoint"] == "last" and labels["selected"].startswith("last"):
            continue
        ep = result.checkpoints[r["checkpoint"]]["epoch"]
        print(f"{r['domain']:24s} {labels[r['checkpoint']][:28] + f' @{ep}':34s} {r['users']:11s} "
              f"{_fmt(r['hr@10']):>6s} {_fmt(r['ndcg@10']):>8s} {r['n']:>6}")


class _Parser(argparse.ArgumentParser):
    """argparse with Lepton's error style: one line naming the problem and where the help is,
    exit status 2 (argparse's default prints the whole usage block first)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"lepton: error: {message}; see `{self.prog} --help`\n")


def cmd_rank(args) -> int:
    """``rank --target T``: LogME, LEEP and H-score of every stored encoder on T's labelled data."""
    from ..evaluation.transferability import rank_encoders
    from ..kb import KnowledgeBase
    kb = KnowledgeBase(args.home)
    df = rank_encoders(kb, args.target, data_dir=args.data_dir, cap=args.cap)
    if args.json:
        print(json.dumps({"ranking": json.loads(df.to_json(orient="records")), "skipped": df.attrs.get("skipped", [])}))
        return 0
    print(f"transferability to {args.target} ({int(df['n'].iloc[0]):,} labelled target examples; higher is better; "
          "best LogME first)")
    print(f"{'run id':24s} {'method':14s} {'source':28s} {'LogME':>8s} {'LEEP':>8s} {'H-score':>8s}")
    for r in df.itertuples():
        print(f"{r.run_id:24s} {r.method:14s} {r.source:28.28s} {r.logme:8.3f} {r.leep:8.3f} {r.h_score:8.3f}")
    for sk in df.attrs.get("skipped", []):
        print(f"left out {sk['run_id']} ({sk['method']}, {sk['source']}): {sk['reason']}")
    print("LogME (You et al. 2021) and H-score (Bao et al. 2019) judge the features, LEEP (Nguyen et al. 2020) the "
          "source head's predictions; 'untrained' is a fresh network, the floor. Fine-tune from one with "
          "`train --init-from RUN`.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..config import AUTO_EPOCHS, AUTO_MIN_STEPS, EPOCHS
    from .kb import add_commands
    from .pipeline import add_command as add_pipeline_command

    p = _Parser(prog="python -m lepton", description="Lepton: transfer learning and domain shift lab")
    p.add_argument("--data-dir", default=None, help="benchmark data folder (default $LEPTON_DATA_DIR or a user cache)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("domains", help="list domains, their sizes and whether their files are present")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_domains)
    m = sub.add_parser("methods", help="list methods and their hyper-parameters")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_methods)
    w = sub.add_parser("words", help="what shifted between two text domains, in words")
    w.add_argument("--source", required=True)
    w.add_argument("--target", required=True)
    w.add_argument("--top", type=int, default=15)
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=cmd_words)
    le = sub.add_parser("lessons", help="ready lessons for a class: what to run and what to watch")
    le.add_argument("--json", action="store_true")
    le.set_defaults(func=cmd_lessons)
    r = sub.add_parser("rank", help="which stored model will transfer best to a labelled target (LogME, LEEP, H-score)")
    r.add_argument("--target", required=True, help="a labelled image, audio or feature-table domain")
    r.add_argument("--cap", type=int, default=2000, help="at most this many target examples (a seeded sample)")
    r.add_argument("--home", default=None, help="knowledge base folder (default $LEPTON_HOME)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_rank)
    t = sub.add_parser("train", help="train a method from a source to a target domain")
    t.add_argument("--source", required=True, nargs="+", metavar="DOMAIN",
                   help="source domain(s); several are trained on together, each stored with the role source")
    t.add_argument("--target", required=True)
    t.add_argument("--method", default="source-only")
    t.add_argument("--epochs", type=int, default=None, help=f"passes over the run's largest training domain, "
                   f"source or target, for every method ({EPOCHS[0]}..{EPOCHS[1]}; default: {AUTO_EPOCHS}, or more "
                   f"when those give fewer than {AUTO_MIN_STEPS:,} optimisation steps, counting a step on several "
                   "sources once per source)")
    t.add_argument("--steps", type=int, default=None, help="the training budget in optimisation steps, whatever "
                   "the data's size (overrides --epochs; the last epoch may be partial)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--scaling", default="auto", choices=["auto", "standard", "domain-standard", "l2", "l1", "none"],
                   help="input scaling of feature tables, fitted without labels on the source and target training "
                   "rows (auto: standard for tables, none for images)")
    t.add_argument("--augment", default="auto", choices=["auto", "affine", "none"],
                   help="augmentation of labelled image batches: a random rotation (up to 10 degrees), scaling "
                   "(0.9-1.1) and shift (up to 10 %% of the side) of each image (auto: affine for images of 16 pixels a side or "
                   "more, none for the 8x8 built-in digits and other domains); unlabelled target batches are never warped")
    t.add_argument("--protocol", default="inductive", choices=["inductive", "transductive"],
                   help="evaluate the target on its test split (inductive) or on all its rows (transductive, the "
                   "field's published protocol); training never sees target labels")
    seed = t.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                      help="run the config once per seed (each stored as its own run) and report mean ± std of "
                      "every figure, e.g. --seeds 0 1 2")
    t.add_argument("--hparams", default=None, help="JSON object of hyper-parameters")
    t.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    t.add_argument("--select", default="im", help="label-free checkpoint score: im, snd, source-acc or dev (deep embedded "
                   "validation, You et al. 2019)")
    t.add_argument("--eval", nargs="*", help="extra domains to evaluate")
    t.add_argument("--encoder", default="auto", help=ENCODER_HELP)
    t.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    t.add_argument("--quiet", action="store_true", help="no progress lines")
    t.add_argument("--init-from", default=None, metavar="RUN_ID",
                   help="initialise the encoder from a stored run's selected checkpoint")
    t.add_argument("--no-store", action="store_true", help="do not record the run in the knowledge base")
    t.add_argument("--checkpoints", nargs="+", default=["selected", "last"], choices=["selected", "last", "oracle"],
                   help="checkpoints to store (default: selected last; oracle only when asked)")
    t.set_defaults(func=cmd_train)
    add_commands(sub)
    add_pipeline_command(sub)
    return p


def _format_warning(msg, category, filename, lineno, line=None) -> str:
    """Lepton's own warnings as ``lepton: warning: ...``; a library's named as such."""
    from pathlib import Path
    here = Path(__file__).resolve().parents[1]
    try:
        ours = Path(filename).resolve().is_relative_to(here)
    except (OSError, ValueError):
        ours = False
    if ours:
        return f"lepton: warning: {msg}\n"
    parts = Path(filename).parts
    lib = next((parts[i + 1] for i in range(len(parts) - 1) if parts[i] in ("site-packages", "dist-packages")),
               Path(filename).stem)
    return f"lepton: note from {lib} ({category.__name__}): {msg}\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 run failed, 2 bad input)."""
    from ..data import DataError
    from ..kb import KBError

    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    warnings.filterwarnings("ignore", category=ImportWarning)  # e.g. umap-learn's "Tensorflow not installed"
    warnings.formatwarning = _format_warning
    try:
        if args.command in ("train", "pipeline"):
            from ..training.runtime import use_training_threads
            use_training_threads()
        return args.func(args)
    except (CLIError, UnknownNameError, DataError, KBError, ValueError, FileNotFoundError, PermissionError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"lepton: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lepton: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
