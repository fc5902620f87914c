"""What each step of the pipeline buys: baseline vs. each strategy, same budget and seeds.

For each benchmark (several source domains -> one target) and each strategy, runs
:func:`lepton.pipeline.run_pipeline` with the strategy's stages followed by ``evaluate``, and
prints a markdown table: target test accuracy with no target labels, after fine-tuning on k
labelled target examples per class (k = 1, 5, 10) and of a linear probe on the frozen features,
each as mean ± std over the same seeded draws, and the wall time.

Budget: every strategy gets the same total number of training epochs (``--epochs``), split
evenly over its training stages; an epoch is one pass over the first source domain's training
split (``steps_per_epoch`` updates of ``--batch-size``), so all strategies take the same number
of update steps. A step of a multi-domain or meta-learning stage costs more compute; the wall
time columns show it: wall time, and the process's CPU time (with one torch thread, the
compute itself, less sensitive to other processes sharing the machine).

Usage::

    LEPTON_DATA_DIR=../shared/data python bench/strategies.py                # both benchmarks
    python bench/strategies.py --bench digits --quick                        # a smoke run
    python bench/strategies.py --out bench/strategies.md                     # also write the tables

Runs are recorded in a temporary knowledge base (``--kb DIR`` to keep them).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCHMARKS = {
    "digits": (["digits", "digits-noisy", "digits-inverted"], "digits-rotated"),
    "mnist-usps": (["mnist", "digits"], "usps"),
}
# (label, training stages); ``evaluate`` is appended to each.
STRATEGIES = [
    ("source-only (baseline)", ["source-only"]),
    ("ssl: autoencoder", ["ssl:objective=autoencoder"]),
    ("ssl: rotation", ["ssl:objective=rotation"]),
    ("ssl: simclr", ["ssl:objective=simclr"]),
    ("multitask: equal", ["multitask:weighting=equal"]),
    ("multitask: uncertainty", ["multitask:weighting=uncertainty"]),
    ("maml (first-order)", ["maml"]),
    ("reptile", ["reptile"]),
    ("ssl -> multitask", ["ssl:objective=rotation", "multitask:weighting=uncertainty"]),
    ("dann", ["dann"]),
    ("ssl -> multitask -> dann", ["ssl:objective=rotation", "multitask:weighting=uncertainty", "dann"]),
]
# mnist-usps epochs cost ~10x those of digits on a 2-core CPU: a subset by default (--all for every one).
SUBSET = {"source-only (baseline)", "ssl: autoencoder", "ssl: rotation", "multitask: uncertainty",
          "maml (first-order)", "reptile", "ssl -> multitask"}


def _cell(row) -> str:
    if row is None:
        return "-"
    return f"{100 * row['mean']:.1f} ± {100 * row['std']:.1f}" if row["draws"] > 1 else f"{100 * row['mean']:.1f}"


def run_benchmark(name, strategies, epochs, seed, ks, draws, batch_size, kb, log):
    """Run every strategy of one benchmark; returns table rows (dicts)."""
    from lepton.pipeline import run_pipeline

    domains, target = BENCHMARKS[name]
    rows = []
    for label, stages in strategies:
        per = max(1, epochs // len(stages))
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_pipeline(domains, target, [*stages, "evaluate"], per, seed=seed, k=max(ks), draws=draws,
                           eval_ks=ks, batch_size=batch_size, kb=kb, feature_cap=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ev = {(r["protocol"], r["k"]): r for r in (res.evaluation or {}).get("rows", [])}
        rows.append({"strategy": label, "stages": " -> ".join(f"{s} ({per} ep)" for s in stages),
                     "status": res.status, "zero": ev.get(("no target labels", 0)),
                     **{f"ft{k}": ev.get(("fine-tune", k)) for k in ks},
                     **{f"lp{k}": ev.get(("linear-probe", k)) for k in ks}, "wall": wall, "cpu": cpu})
        log(f"{name}: {label}: {res.status} in {wall:.0f} s (CPU {cpu:.0f} s); fine-tune k={ks[-1]}: {_cell(rows[-1][f'ft{ks[-1]}'])}")
    return rows


def markdown(name, rows, ks, epochs, seed, draws) -> str:
    domains, target = BENCHMARKS[name]
    head = ["strategy", "no target labels"] + [f"fine-tune k={k}" for k in ks] + \
           [f"linear probe k={k}" for k in ks] + ["wall time (s)", "CPU time (s)"]
    lines = [f"**{' + '.join(domains)} -> {target}** (budget {epochs} epochs, seed {seed}, accuracy % on the whole "
             f"target test split, mean ± std over {draws} draws of the k labelled examples per class)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["strategy"] + ("" if r["status"] == "completed" else f" ({r['status']})"), _cell(r["zero"])]
        cells += [_cell(r[f"ft{k}"]) for k in ks] + [_cell(r[f"lp{k}"]) for k in ks] + [f"{r['wall']:.0f}", f"{r['cpu']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", nargs="+", choices=sorted(BENCHMARKS), default=["digits", "mnist-usps"])
    p.add_argument("--quick", action="store_true", help="fewer strategies, 2 epochs, 3 draws, k = 1 and 5")
    p.add_argument("--all", action="store_true", help="every strategy on mnist-usps too")
    p.add_argument("--only", nargs="+", default=None, metavar="LABEL", help="run only these strategies (by label)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per strategy (default 6; mnist-usps 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    p.add_argument("--kb", default=None, help="knowledge-base folder to keep the runs (default: a temporary one)")
    p.add_argument("--out", default=None, help="also write the markdown tables to this file")
    a = p.parse_args(argv)
    import torch
    from lepton.kb import KnowledgeBase

    torch.set_num_threads(a.threads)
    ks, draws = ([1, 5], 3) if a.quick else (a.ks, a.draws)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    tmp = None if a.kb else tempfile.TemporaryDirectory(prefix="lepton-bench-")
    kb = KnowledgeBase(a.kb or tmp.name)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} " \
              f"({a.threads} thread{'s' if a.threads > 1 else ''})"
    parts = []
    for name in a.bench:
        epochs = a.epochs or (2 if a.quick or name == "mnist-usps" else 6)
        small = a.quick or (name == "mnist-usps" and not a.all)
        strategies = [s for s in STRATEGIES if (not small or s[0] in SUBSET) and (not a.only or s[0] in a.only)]
        t0 = time.perf_counter()
        rows = run_benchmark(name, strategies, epochs, a.seed, ks, draws, a.batch_size, kb, log)
        parts.append(markdown(name, rows, ks, epochs, a.seed, draws) + f"\n\n_total {time.perf_counter() - t0:.0f} s "
                     f"on {machine}_")
    text = "\n\n".join(parts)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
