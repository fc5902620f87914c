"""Transfer benchmark: target test accuracy of each method on mnist <-> usps (or any pairs).

Runs ``python -m lepton train ... --json --no-store`` for every (pair, method), ``--jobs`` at a
time (each with one torch thread), and prints a markdown table: the label-free-chosen
checkpoint (the run's model), the last epoch and the oracle-best epoch (target labels, shown
for comparison only), with wall time. Numbers are measured, never estimated.

The README's table was measured when an epoch was a pass over the source; today an epoch passes over
the larger domain, so usps -> mnist at ``--epochs 15`` now runs 15 x 938 steps, not 15 x 114.

Usage::

    LEPTON_DATA_DIR=../shared/data python bench/transfer.py --epochs 15 --jobs 2 --out bench/transfer.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = [("source-only", None), ("dann", None), ("deep-coral", None),
           ("self-training", '{"align": "coral"}'), ("target-only", None)]
PAIRS = [("mnist", "usps"), ("usps", "mnist")]


def run_one(src, tgt, method, hparams, epochs, seed):
    cmd = [sys.executable, "-m", "lepton", "train", "--source", src, "--target", tgt, "--method", method,
           "--epochs", str(epochs), "--seed", str(seed), "--json", "--quiet", "--no-store"]
    if hparams:
        cmd += ["--hparams", hparams]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"src": src, "tgt": tgt, "method": method, "error": p.stderr.strip().splitlines()[-1:]}
    res = json.loads(p.stdout)
    ck = res["checkpoints"]
    return {"src": src, "tgt": tgt, "method": method, "hparams": hparams or "", "wall": wall,
            "train_wall": res["wall_time_s"], "selected": ck["selected"]["target_acc"],
            "sel_epoch": ck["selected"]["epoch"], "last": ck["last"]["target_acc"],
            "oracle": ck["oracle"]["target_acc"], "oracle_epoch": ck["oracle"]["epoch"],
            "source": ck["selected"]["source_acc"]}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", nargs="*", help="methods to run (default all)")
    args = ap.parse_args(argv)
    todo = [(s, t, m, h) for s, t in PAIRS for m, h in METHODS if not args.only or m in args.only]
    with ThreadPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(lambda a: run_one(*a, args.epochs, args.seed), todo))
    lines = [f"Seed {args.seed}, {args.epochs} epochs, batch 64, LeNet encoder; {args.jobs} runs at a time, one "
             f"torch thread each, on {platform.machine()} with {os.cpu_count()} CPU cores "
             f"(`python bench/transfer.py --epochs {args.epochs} --jobs {args.jobs}`). Target test accuracy (%).", "",
             "| source → target | method | label-free checkpoint (model) | last epoch | oracle-best (target labels) | source test | wall time (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["method"] + (f" `{r['hparams']}`" if r.get("hparams") else "")
        if "error" in r:
            lines.append(f"| {r['src']} → {r['tgt']} | {name} | failed: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['src']} → {r['tgt']} | {name} | {100 * r['selected']:.1f} (epoch {r['sel_epoch']}) | "
                     f"{100 * r['last']:.1f} | {100 * r['oracle']:.1f} (epoch {r['oracle_epoch']}) | "
                     f"{100 * r['source']:.1f} | {r['wall']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
