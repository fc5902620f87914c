"""CLI subcommands over the knowledge base: ``kb list|show|delete|export|shift|recommend|gc`` and ``map``;
:func:`add_commands` adds them to ``python -m lepton``."""
from __future__ import annotations

import json
import math
import sys


def _kb(args):
    from ..kb import KnowledgeBase
    return KnowledgeBase(getattr(args, "home", None))


def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}%"


def cmd_list(args) -> int:
    """``kb list``: stored runs with their accuracies (``--json``: records)."""
    kb = _kb(args)
    df = kb.list_runs()
    if args.json:
        print(df.to_json(orient="records"))
        return 0
    print(f"knowledge base: {kb.home}")
    if df.empty:
        print("no runs yet; train one with `python -m lepton train --source digits --target digits-rotated`")
        return 0
    print(f"{'run id':24s} {'status':9s} {'method':14s} {'source -> target':34s} {'ep':>5s} "
          f"{'src acc':>8s} {'tgt acc':>9s} {'(last)':>9s} {'(oracle)':>9s} parent")
    for r in df.itertuples():
        ep = f"{r.epochs_done}/{r.epochs}" if r.status in ("running", "stopped") else f"{r.epochs}"
        status = "diverged" if r.diverged else r.status
        nolab = "no-target-labels" in str(r.flags).split(",")
        tgt = ["no labels"] * 3 if nolab else [_pct(r.target_acc), _pct(r.target_acc_last), _pct(r.target_acc_oracle)]
        if r.task == "ranking":  # the ranking task's main metric sits in the same columns
            tgt = [f"{v} N" if v != "-" else v for v in tgt]
        print(f"{r.run_id:24s} {status:9s} {str(r.method):14s} {f'{r.source} -> {r.target}':34.34s} {ep:>5s} "
              f"{_pct(r.source_acc):>8s} {tgt[0]:>9s} {tgt[1]:>9s} {tgt[2]:>9s} {r.parent or ''}")
    print("tgt acc: the label-free (selected) checkpoint; oracle uses target labels and is shown for comparison")
    if (df["task"] == "ranking").any():
        print("N: a recommendation run's NDCG@10 of all evaluated target users, not an accuracy "
              "(`kb show RUN` gives HR@10 and the cold-start users)")
    if df["diverged"].any():
        print("diverged: the run completed but its losses ran away or its accuracy is at chance; its numbers are "
              "not results (`kb show RUN` says why)")
    return 0


def cmd_show(args) -> int:
    """``kb show RUN``: config, status, checkpoints and environment of a run."""
    kb = _kb(args)
    run = kb.get_run(args.run)
    if args.json:
        print(json.dumps({**run, "run_dir": str(run["run_dir"])}, default=str))
        return 0
    s = run["summary"]
    flags = s.get("flags") or []
    print(f"run {run['run_id']}   status: {run['status']}{' (' + ', '.join(flags) + ')' if flags else ''}   "
          f"created: {run['created']}")
    if run["error"]:
        print(f"error: {run['error']}")
    for msg in s.get("diagnosis", []):
        print(f"warning: {msg}")
    print(f"folder: {run['run_dir']}   size on disk: {_mb(kb.run_size(run['run_id']))}")
    if run["parent"]:
        print(f"initialised from run: {run['parent']}")
    print("config: " + json.dumps(run["config"], sort_keys=True))
    print(f"domains: {', '.join(run['domains'])}   feature snapshots at epochs: "
          f"{', '.join(map(str, run['feature_epochs'])) or 'none'}")
    for name, ck in s.get("checkpoints", {}).items():
        if "groups" in ck:  # a ranking run
            g = ck["groups"]
            print(f"checkpoint {name:9s} epoch {ck.get('epoch')}: " + "   ".join(
                f"{k} users ({g[k]['n']}) HR@10 {_pct(g[k]['hr@10'])} NDCG@10 {_pct(g[k]['ndcg@10'])}" for k in g))
            continue
        unlabelled = any(r.get("labelled") is False for r in s.get("table", []) if r.get("role") == "target")
        print(f"checkpoint {name:9s} epoch {ck.get('epoch')}: source {_pct(ck.get('source_acc'))}  "
              f"target {'no labels' if unlabelled else _pct(ck.get('target_acc'))}")
    if not s.get("checkpoints"):
        print(f"no checkpoints ({len(s.get('history', []))} epochs recorded)")
    env = s.get("environment", {})
    if env:
        print("environment: " + ", ".join(f"{k} {v}" for k, v in sorted(env.items())))
    return 0


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def cmd_gc(args) -> int:
    """``kb gc [--keep N] [--dry-run]``: free what old finished runs do not need, keeping their records."""
    kb = _kb(args)
    done = kb.gc(keep=args.keep, dry_run=args.dry_run)
    freed = sum(r["freed_bytes"] for r in done)
    verb = "would free" if args.dry_run else "freed"
    for r in done:
        print(f"{r['run_id']}: {verb} {_mb(r['freed_bytes'])} ({len(r['files'])} files: "
              f"{', '.join(r['files'][:4])}{' …' if len(r['files']) > 4 else ''})")
    print(f"{verb} {_mb(freed)} in {len(done)} runs; the {args.keep} newest finished runs and every record, "
          "config, history and selected checkpoint were kept")
    return 0


def cmd_delete(args) -> int:
    """``kb delete RUN``: delete a run (refused while it runs)."""
    kb = _kb(args)
    rid = kb.resolve(args.run)
    kb.delete_run(rid)
    print(f"deleted run {rid}")
    return 0


def cmd_export(args) -> int:
    """``kb export RUN [--out F.zip]``: zip a run folder."""
    kb = _kb(args)
    out = kb.export_run(args.run, args.out)
    print(f"exported run {kb.resolve(args.run)} to {out}")
    return 0


def cmd_shift(args) -> int:
    """``kb shift RUN``: proxy A-distance, linear MMD and per-class distances before/after."""
    from ..evaluation.shift import shift_statistics
    kb = _kb(args)
    st = shift_statistics(kb, args.run, args.epoch)
    if args.json:
        print(json.dumps({**st, "per_class": st["per_class"].to_dict("records")}, default=str))
        return 0
    print(f"run {st['run_id']}: {st['source']} -> {st['target']}")
    for when in ("before", "after"):
        b = st[when]
        print(f"{when:6s} (epoch {b['epoch']:3d}): proxy A-distance {b['proxy_a_distance']:.3f}   "
              f"linear MMD {b['mmd']:.4g} (relative {b['mmd_relative']:.4f})")
    print(st["per_class"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_recommend(args) -> int:
    """``kb recommend RUN [--user ID] [--compare RUN2]``: a user's source history and the target
    top-10 of the run (and of a run to compare, default the newest bpr-mf baseline on the same split)."""
    from ..evaluation import recommendations as rec
    kb = _kb(args)
    arrays = rec.load(kb, args.run)
    ids = rec.users(arrays)
    user = args.user if args.user is not None else ids[0]
    compare = args.compare
    if compare is None:
        others = rec.comparable_runs(kb, args.run)
        compare = others[0] if others else None
    view = rec.user_view(kb, args.run, user, compare)
    if args.json:
        print(json.dumps(view))
        return 0
    print(f"user {view['user']} ({'cold-start' if view['cold'] else 'warm'}; {len(ids)} evaluated users, "
          f"{int(arrays['cold'].sum())} cold-start)   held-out target item: {view['held_out']}")
    print(f"source history ({len(view['history'])} liked): " + "; ".join(view["history"][:15])
          + (" ..." if len(view["history"]) > 15 else ""))
    for r in view["runs"]:
        print(f"\n{r['method']} ({r['run_id']}): held-out item ranked {r['rank']} of the protocol's "
              f"{view['candidates']} candidates ({'a hit' if r['hit'] else 'a miss'} for HR@10), {r['catalogue_rank']} "
              f"of all {view['catalogue']} target items; top 10 of all items:")
        for t in r["top"]:
            print(f"  {t['position']:2d}. {t['title']}{'   <- held-out' if t['held_out'] else ''}")
    if len(view["runs"]) == 1:
        print("\n(no other run on the same split to compare; train bpr-mf on this pair with the same settings)")
    return 0


def cmd_map(args) -> int:
    """``map RUN``: 2-D map coordinates as CSV (``--out`` file or standard output).

    UMAP and t-SNE are fitted in a child process, so a native crash of the projection library is
    one error line and exit status 2; degenerate features (collapsed, NaN, overflowing, heavily
    duplicated) are refused before any fit. A cached map is read without a child process.
    """
    import os
    from . import CLIError
    kb = _kb(args)
    # numba caches what it can on disk: later map commands skip most of umap-learn's import-time compile
    os.environ.setdefault("NUMBA_CACHE_DIR", str(kb.home / "numba-cache"))
    from ..evaluation.projection import MapCrashError, compute_map
    try:
        params = json.loads(args.params) if args.params else None
    except json.JSONDecodeError as e:
        raise CLIError(f"--params is not valid JSON ({e.msg}); example: --params '{{\"n_neighbors\": 30}}'") from None
    try:
        df = compute_map(kb, args.run, epoch=args.epoch, method=args.method, params=params,
                         domains=args.domains or None, isolate=True)
    except MapCrashError as e:
        raise CLIError(str(e)) from None
    for note in df.attrs.get("notes", []):
        print(f"lepton: note: {note}", file=sys.stderr)
    if args.out:
        from pathlib import Path
        out = Path(args.out)
        if out.is_dir() or not out.parent.is_dir():
            raise ValueError(f"--out {args.out}: " + ("is a folder; give a file name such as map.csv" if out.is_dir()
                             else f"the folder {out.parent} does not exist; create it or pick another"))
        df.to_csv(out, index=False)
        print(f"wrote {len(df)} points ({args.method}, epoch {int(df['epoch'].iloc[0])}) to {args.out}")
    else:
        try:
            df.to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. `| head`: the reader left, nothing is wrong
            import os
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def add_commands(subparsers) -> None:
    """Add ``kb`` (list, show, delete, export, shift) and ``map`` to the CLI's subparsers."""
    kb = subparsers.add_parser("kb", help="the knowledge base of stored runs ($LEPTON_HOME)")
    kb.add_argument("--home", default=None, help="knowledge base folder (default $LEPTON_HOME or a user data folder)")
    ks = kb.add_subparsers(dest="kb_command", required=True)
    p = ks.add_parser("list", help="stored runs with their accuracies")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    for name, fn, help_ in (("show", cmd_show, "config, status and checkpoints of a run"),
                            ("delete", cmd_delete, "delete a run"),
                            ("export", cmd_export, "zip a run folder"),
                            ("shift", cmd_shift, "domain shift before and after adaptation")):
        p = ks.add_parser(name, help=help_)
        p.add_argument("run", help="run id, a unique prefix of one, or 'latest'")
        p.set_defaults(func=fn)
        if name in ("show", "shift"):
            p.add_argument("--json", action="store_true")
        if name == "export":
            p.add_argument("--out", default=None, help="zip file (default RUN_ID.zip)")
        if name == "shift":
            p.add_argument("--epoch", type=int, default=None, help="'after' epoch (default: last snapshot)")
    r = ks.add_parser("recommend", help="a user's source history and a recommendation run's target top-10")
    r.add_argument("run", help="a recommendation run: id, unique prefix or 'latest'")
    r.add_argument("--user", default=None, help="an evaluated target user's id (default: the first cold-start user)")
    r.add_argument("--compare", default=None, help="another run on the same split (default: the newest bpr-mf one)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_recommend)
    g = ks.add_parser("gc", help="free the space old runs do not need (keeps their records and models)")
    g.add_argument("--keep", type=int, default=20, help="newest finished runs left whole (default 20)")
    g.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    g.set_defaults(func=cmd_gc)
    m = subparsers.add_parser("map", help="2-D map coordinates of a run's features (CSV)")
    m.add_argument("run", help="run id, a unique prefix of one, or 'latest'")
    m.add_argument("--epoch", type=int, default=None, help="feature snapshot (default: the last)")
    m.add_argument("--method", default="umap", choices=["umap", "pca", "tsne"])
    m.add_argument("--params", default=None, help="JSON object, e.g. '{\"n_neighbors\": 30}'")
    m.add_argument("--domains", nargs="*", help="domain names to include (default all)")
    m.add_argument("--out", default=None, help="CSV file (default: standard output)")
    m.add_argument("--home", default=None, help="knowledge base folder")
    m.set_defaults(func=cmd_map)
