"""Text benchmark (issue 13): the 12 ordered pairs of the four review domains.

    LEPTON_DATA_DIR=../shared/data python bench/text_transfer.py [--epochs 10 --seeds 0 1 2] \
        [--methods source-only dann deep-coral] [--out bench/text_transfer.md]

Each run is one ``python -m lepton train --source S --target T --method M --epochs E --seed N
--json --quiet --no-store`` process with one torch thread (TF-IDF of unigrams and bigrams, 5,000
terms, fitted on the source and target training texts without labels; an MLP; target test split of
400 reviews). Reported per pair and method: mean ± std over seeds of the target accuracy at the
label-free checkpoint (the run's model) and at the oracle-best epoch (chosen with target labels,
for comparison only), and the mean wall time of a run (the whole process). The average row compares
with DANN's published 76.3 % on 5,000-d features (Ganin et al., JMLR 2016).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ["books", "dvd", "electronics", "kitchen"]
SHORT = {"books": "B", "dvd": "D", "electronics": "E", "kitchen": "K"}
PUBLISHED_DANN = {"B→D": 78.4, "B→E": 73.3, "B→K": 77.9, "D→B": 72.3, "D→E": 75.4, "D→K": 78.3, "E→B": 71.3,
                  "E→D": 73.8, "E→K": 85.4, "K→B": 70.9, "K→D": 74.0, "K→E": 84.3}


def run_one(src: str, tgt: str, method: str, epochs: int, seed: int, env: dict) -> dict:
    cmd = [sys.executable, "-m", "lepton", "train", "--source", src, "--target", tgt, "--method", method,
           "--epochs", str(epochs), "--seed", str(seed), "--json", "--quiet", "--no-store"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{src}->{tgt} {method} seed {seed}: {p.stderr.strip().splitlines()[-1:]}")
    ck = json.loads(p.stdout)["checkpoints"]
    return {"selected": 100 * ck["selected"]["target_acc"], "oracle": 100 * ck["oracle"]["target_acc"], "wall": wall}


def _ms(v):
    return f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["source-only", "dann", "deep-coral"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    env = dict(os.environ, LEPTON_THREADS="1", OMP_NUM_THREADS="1",
               LEPTON_CACHE_DIR=tempfile.mkdtemp(prefix="lepton-text-cache-"))  # TF-IDF pairs: ~80 MB each
    pairs = [(s, t) for s in DOMAINS for t in DOMAINS if s != t]
    res: dict = {}
    for s, t in pairs:
        for m in args.methods:
            for seed in args.seeds:
                r = run_one(s, t, m, args.epochs, seed, env)
                res.setdefault((s, t, m), []).append(r)
                print(json.dumps({"pair": f"{s}->{t}", "method": m, "seed": seed, **r}), flush=True)
    lines = [f"Text transfer, 12 pairs, {args.epochs} epochs, seeds {', '.join(map(str, args.seeds))}, one torch "
             "thread per run, 2-core machine; target test accuracy (%) mean ± std over seeds: label-free "
             "checkpoint / oracle-best epoch; s: mean wall time of a whole run process.", "",
             "| task | " + " | ".join(f"{m} (label-free / oracle) | {m} s" for m in args.methods)
             + " | published DANN |", "|---|" + "---|---|" * len(args.methods) + "---:|"]
    avg = {m: [] for m in args.methods}
    for s, t in pairs:
        task = f"{SHORT[s]}→{SHORT[t]}"
        cells = []
        for m in args.methods:
            rs = res[(s, t, m)]
            sel, orc = [r["selected"] for r in rs], [r["oracle"] for r in rs]
            avg[m].append(statistics.mean(sel))
            cells.append(f"{_ms(sel)} / {_ms(orc)} | {statistics.mean(r['wall'] for r in rs):.1f}")
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {PUBLISHED_DANN[task]} |")
    lines.append("| **average** | " + " | ".join(f"**{statistics.mean(avg[m]):.1f}** | " for m in args.methods)
                 + f" | **{statistics.mean(PUBLISHED_DANN.values()):.1f}** |")
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(
            [{"pair": f"{s}->{t}", "method": m, "runs": v} for (s, t, m), v in res.items()], indent=1))


if __name__ == "__main__":
    main()
