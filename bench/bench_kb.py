"""Benchmark the knowledge base and maps; prints a markdown table (numbers, not assertions).

    python bench/bench_kb.py                       # 2k, 5k, 20k points, 10-epoch store overhead
    python bench/bench_kb.py --sizes 2000 --epochs 4

Measures
--------
* first UMAP map of N points in a fresh process (``import umap`` and numba compilation included),
  then a warm one in the same process (``cache=False``), then opening the cached map;
* the same for PCA (for scale);
* store overhead per training epoch: digits -> digits-rotated (dann) with and without
  :class:`lepton.kb.KBRecorder` (best of two each), and the time spent inside the recorder's hooks
  (the steadier number on a busy machine, where the wall-clock difference is noise).

Feature snapshots of N points are synthetic (128-d Gaussian blobs, 10 classes, two domains with a
shift) written through the store's own API, so the map path is exactly the app's.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_run(kb, n: int) -> str:
    """A stored run whose only snapshot holds ``n`` synthetic points (half source, half target)."""
    import numpy as np
    from sklearn.datasets import make_blobs
    x, y = make_blobs(n, 128, centers=10, cluster_std=4.0, random_state=0)
    dom = (np.arange(n) % 2).astype(np.int64)
    x[dom == 1] += 3.0  # a domain shift
    rid = kb.begin_run({"method": "synthetic", "source": "blobs", "target": "blobs-shifted", "epochs": 0, "seed": 0},
                       {"domains": ["blobs", "blobs-shifted"]})
    kb.write_features(rid, 0, {"features": x.astype(np.float32), "labels": y.astype(np.int64),
                               "preds": y.astype(np.int64), "domain": dom, "index": np.arange(n) // 2,
                               "domain_names": np.array(["blobs", "blobs-shifted"]),
                               "class_names": np.array([str(i) for i in range(10)])})
    kb.mark_stopped(rid, "synthetic benchmark run")
    return rid


def child(home: str, rid: str, method: str) -> None:
    """In a fresh process: first map, warm map, cached open; prints JSON."""
    from lepton.evaluation.projection import compute_map
    from lepton.kb import KnowledgeBase
    kb = KnowledgeBase(home)
    t0 = time.perf_counter()
    compute_map(kb, rid, method=method, cache=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    compute_map(kb, rid, method=method, cache=True)  # computes again and writes the cache
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    compute_map(KnowledgeBase(home), rid, method=method)
    cached = time.perf_counter() - t0
    print(json.dumps({"first": first, "warm": warm, "cached": cached}))


def maps(sizes, methods) -> list:
    from lepton.kb import KnowledgeBase
    rows = []
    with tempfile.TemporaryDirectory() as home:
        kb = KnowledgeBase(home)
        for n in sizes:
            rid = make_run(kb, n)
            for method in methods:
                out = subprocess.run([sys.executable, __file__, "--child", home, rid, method], capture_output=True,
                                     text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
                if out.returncode:
                    raise SystemExit(out.stderr)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append({"n": n, "method": method, **r})
                print(f"  {method} {n}: {r}", file=sys.stderr, flush=True)
    return rows


def store_overhead(epochs: int) -> dict:
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training.recorder import KBRecorder
    from lepton.training import fit

    class Timed(KBRecorder):
        spent = 0.0

        def _t(self, name, *a):
            t0 = time.perf_counter()
            getattr(KBRecorder, name)(self, *a)
            Timed.spent += time.perf_counter() - t0

        def on_run_start(self, run):
            self._t("on_run_start", run)

        def on_step_end(self, run, step, epoch, losses):
            self._t("on_step_end", run, step, epoch, losses)

        def on_epoch_end(self, run, epoch, metrics):
            self._t("on_epoch_end", run, epoch, metrics)

        def on_run_end(self, run, result):
            self._t("on_run_end", run, result)

    cfg = RunConfig("digits", "digits-rotated", "dann", epochs=epochs, seed=0)
    fit(RunConfig("digits", "digits-rotated", "dann", epochs=1))  # load data, warm torch
    with tempfile.TemporaryDirectory() as home:
        kb = KnowledgeBase(home)
        times = {"without": [], "with": [], "hooks": []}
        for _ in range(2):
            t0 = time.perf_counter()
            fit(cfg)
            times["without"].append(time.perf_counter() - t0)
            Timed.spent = 0.0
            t0 = time.perf_counter()
            fit(cfg, [Timed(kb)])
            times["with"].append(time.perf_counter() - t0)
            times["hooks"].append(Timed.spent)
        size = sum(p.stat().st_size for p in Path(home).rglob("*") if p.is_file()) / 2
    return {"epochs": epochs, "without": min(times["without"]), "with": min(times["with"]),
            "hooks": min(times["hooks"]), "bytes_per_run": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 5000, 20000])
    ap.add_argument("--methods", nargs="*", default=["umap", "pca"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    import torch
    print(f"CPU threads: {torch.get_num_threads()}, cores: {os.cpu_count()}", file=sys.stderr)
    rows = maps(a.sizes, a.methods)
    ov = store_overhead(a.epochs)
    print("\n| map | points | first map, fresh process (s) | warm map (s) | cached open (s) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['n']:,} | {r['first']:.2f} | {r['warm']:.2f} | {r['cached']:.3f} |")
    per = (ov["with"] - ov["without"]) / ov["epochs"]
    print(f"\n| store overhead (digits -> digits-rotated, dann, {ov['epochs']} epochs) | value |")
    print("|---|---:|")
    print(f"| run without recorder (s) | {ov['without']:.2f} |")
    print(f"| run with recorder (s) | {ov['with']:.2f} |")
    print(f"| wall difference per epoch (s) | {per:.3f} |")
    print(f"| time inside recorder hooks per epoch (s) | {ov['hooks'] / ov['epochs']:.3f} |")
    print(f"| recorder hooks, share of the recorded run | {100 * ov['hooks'] / ov['with']:.1f}% |")
    print(f"| stored bytes per run (features every {max(1, ov['epochs'] // 5)} epochs + 3 checkpoints) | "
          f"{ov['bytes_per_run'] / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
