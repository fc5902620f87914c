"""The README's benchmark table: every method on the digit pairs, seeds 0-2, label-free and oracle-best.

Each (pair, method, seed) is one ``python -m lepton train ... --json`` in its own process with one
torch thread, ``--jobs`` at a time, with today's defaults (the automatic budget, augmentation
``auto``). Results are appended to ``--results`` (JSON lines) as they finish, so an interrupted
benchmark resumes where it stopped and a table can be printed from what is there (``--table-only``).
``shot`` starts from the same seed's stored ``source-only`` run (both stored in a knowledge base of
the benchmark's own, ``--home``). Published figures are from ``../shared/data/README.md``.

Usage::

    LEPTON_DATA_DIR=../shared/data python bench/benchmark.py --pairs digits:digits-rotated --seeds 0 1 2
    LEPTON_DATA_DIR=../shared/data python bench/benchmark.py --pairs mnist:usps usps:mnist --seeds 0
    python bench/benchmark.py --table-only --out bench/benchmark.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lepton.stats import mean_std  # noqa: E402

METHODS = ["source-only", "dann", "deep-coral", "dan", "cdan", "mdd", "mcc", "afn", "self-training", "shot",
           "target-only"]
PAIRS = ["mnist:usps", "usps:mnist", "mnist:mnist-m", "digits:digits-rotated"]
#: Published target accuracy (%) from ../shared/data/README.md: skada-bench (small CNN, full MNIST
#: train, hyper-parameters chosen with target labels) and Ganin & Lempitsky 2015 for MNIST-M.
PUBLISHED = {
    ("mnist", "usps"): {"source-only": "94.2", "dann": "92.6", "deep-coral": "97.1", "mcc": "98.2",
                        "target-only": "98.1"},
    ("usps", "mnist"): {"source-only": "73.4", "dann": "86.8", "deep-coral": "89.9", "mcc": "90.4",
                        "target-only": "98.9"},
    ("mnist", "mnist-m"): {"source-only": "57.4–57.6", "dann": "76.7"},
}
_LOCK = threading.Lock()


def key(r):
    return (r["src"], r["tgt"], r["method"], r["seed"])


def load(path: Path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_one(src, tgt, method, seed, home, results: Path, epochs=None):
    cmd = [sys.executable, "-m", "lepton", "train", "--source", src, "--target", tgt, "--method", method,
           "--seed", str(seed), "--json", "--quiet"]
    if epochs:
        cmd += ["--epochs", str(epochs)]
    if method == "shot":
        start = next((r for r in load(results) if key(r) == (src, tgt, "source-only", seed) and r.get("run_id")), None)
        if start is None:
            return {"src": src, "tgt": tgt, "method": method, "seed": seed, "error": "no stored source-only run"}
        cmd += ["--init-from", start["run_id"]]
    elif method != "source-only":
        cmd.append("--no-store")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", LEPTON_HOME=str(home))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row = {"src": src, "tgt": tgt, "method": method, "seed": seed, "wall": round(wall, 1),
           "load1": round(os.getloadavg()[0], 2)}  # the machine's 1-minute load average as the run ended
    if p.returncode != 0:
        row["error"] = (p.stderr.strip().splitlines() or ["?"])[-1]
    else:
        res = json.loads(p.stdout)
        ck = res["checkpoints"]
        row.update(run_id=res.get("run_id"), train_wall=res["wall_time_s"], steps=res["budget"].get("steps"),
                   augment=res["config"].get("augment"), selected=ck["selected"]["target_acc"],
                   sel_epoch=ck["selected"]["epoch"], last=ck["last"]["target_acc"],
                   oracle=ck["oracle"]["target_acc"], oracle_epoch=ck["oracle"]["epoch"],
                   source=ck["selected"]["source_acc"], flags=res.get("flags", []))
    with _LOCK, results.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def table(rows, pairs, methods) -> str:
    lines = ["| source → target | method | label-free checkpoint (model) | oracle-best epoch (target labels) | "
             "last epoch | published | steps | wall time per run (s) | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for pair in pairs:
        src, tgt = pair.split(":")
        for m in methods:
            got = [r for r in rows if (r["src"], r["tgt"], r["method"]) == (src, tgt, m) and "selected" in r]
            bad = [r for r in rows if (r["src"], r["tgt"], r["method"]) == (src, tgt, m) and "error" in r]
            pub = PUBLISHED.get((src, tgt), {}).get(m, "")
            if not got:
                if bad:
                    lines.append(f"| {src} → {tgt} | {m} | failed: {bad[-1]['error'][:80]} | | | {pub} | | | |")
                continue
            got = sorted({r["seed"]: r for r in got}.values(), key=lambda r: r["seed"])  # newest per seed
            f = lambda k: mean_std([100 * r[k] for r in got])  # noqa: E731
            fmt = lambda ms: f"{ms['mean']:.1f} ± {ms['std']:.1f}" if len(got) > 1 else f"{ms['mean']:.1f}"  # noqa: E731
            wall = sum(r["wall"] for r in got) / len(got)
            flags = sorted({fl for r in got for fl in r.get("flags") or []})
            lines.append(f"| {src} → {tgt} | {m} | {fmt(f('selected'))}{' (' + ', '.join(flags) + ')' if flags else ''} | "
                         f"{fmt(f('oracle'))} | {fmt(f('last'))} | {pub} | {got[0].get('steps', '')} | {wall:.0f} | "
                         f"{' '.join(str(r['seed']) for r in got)} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", default=PAIRS, help="SOURCE:TARGET pairs")
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="default: the automatic budget")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--results", default=str(ROOT / "bench" / "benchmark.jsonl"))
    ap.add_argument("--home", default=str(Path(tempfile.gettempdir()) / "lepton-benchmark-home"))
    ap.add_argument("--out", default=None, help="write the markdown table here")
    ap.add_argument("--table-only", action="store_true", help="print the table from the results so far")
    args = ap.parse_args(argv)
    results = Path(args.results)
    if not args.table_only:
        done = {key(r) for r in load(results) if "selected" in r}
        todo = [(p.split(":")[0], p.split(":")[1], m, s) for p in args.pairs for s in args.seeds for m in args.methods
                if (p.split(":")[0], p.split(":")[1], m, s) not in done]
        first = [t for t in todo if t[2] != "shot"]
        t0 = time.time()
        with ThreadPoolExecutor(args.jobs) as ex:
            list(ex.map(lambda a: run_one(*a, Path(args.home), results, args.epochs), first))
            list(ex.map(lambda a: run_one(*a, Path(args.home), results, args.epochs), [t for t in todo if t[2] == "shot"]))
        print(f"{len(todo)} runs in {time.time() - t0:.0f} s", file=sys.stderr)
    rows = load(results)
    loads = [r["load1"] for r in rows if "load1" in r]
    load_text = (f"; 1-minute load average as runs ended {min(loads):.1f}–{max(loads):.1f} (mean {sum(loads) / len(loads):.1f})"
                 if loads else "")
    head = (f"Today's defaults (automatic budget, augmentation auto), batch 64; target test accuracy (%), mean ± std "
            f"over the seeds listed; {args.jobs} runs at a time, one torch thread each, on {platform.machine()} with "
            f"{os.cpu_count()} CPU cores{load_text} (`python bench/benchmark.py`). Published: ../shared/data/README.md "
            "(skada-bench chose hyper-parameters with target labels; compare with the oracle-best column).\n\n")
    text = head + table(rows, args.pairs, args.methods)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
