"""Where a run's time goes: CPU seconds per phase of one stored run, one torch thread.

    LEPTON_DATA_DIR=../shared/data python bench/run_breakdown.py [--source mnist --target usps --method dann --epochs 5]

Phases (each wrapped with a CPU-time counter, nested calls counted once, in the first that applies):
optimisation steps (``Method.update``), the per-epoch shared forward pass (evaluation, label-free
scores and the snapshot rows), writing snapshots and checkpoints, the final full-test evaluation,
data preparation (loading and harmonising, or reading the prepared cache), and the rest.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="mnist")
    ap.add_argument("--target", default="usps")
    ap.add_argument("--method", default="dann")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--warm-cache", action="store_true", help="prepare the pair once before timing")
    args = ap.parse_args()
    os.environ.setdefault("LEPTON_HOME", tempfile.mkdtemp(prefix="lepton-breakdown-"))
    t_start = time.process_time()
    import torch
    torch.set_num_threads(1)
    from lepton.config import RunConfig
    from lepton.data import prepared
    from lepton.kb import KnowledgeBase
    from lepton.methods.base import Method
    import importlib
    inference, loop, plan_mod, run_mod = (importlib.import_module(f"lepton.training.{m}")
                                          for m in ("inference", "loop", "plan", "run"))
    from lepton.training.recorder import KBRecorder

    spent: dict = {}
    active = []

    def timed(owner, name, label):
        orig = getattr(owner, name)

        def wrapper(*a, **k):
            if active:
                return orig(*a, **k)
            active.append(label)
            t = time.process_time()
            try:
                return orig(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - t
                active.pop()
        setattr(owner, name, wrapper)

    if args.warm_cache:
        prepared.prepare([args.source, args.target], ["source", "target"])
    t_import = time.process_time() - t_start
    from lepton.methods import METHODS
    for name in METHODS.names():
        c = METHODS.get(name)
        if "update" in c.__dict__:
            timed(c, "update", "optimisation steps")
    timed(Method, "update", "optimisation steps")
    timed(inference.InferencePass, "at", "per-epoch forward pass (evaluation, scores, snapshot rows)")
    timed(KBRecorder, "_snapshot", "snapshots (their extra rows' forward pass, writing)")
    timed(loop, "_finish", "final full-test evaluation")
    timed(plan_mod, "prepare", "data preparation")
    timed(KnowledgeBase, "finish_run", "checkpoints and summary: writing")
    t0 = time.process_time()
    w0 = time.perf_counter()
    res = run_mod.train(RunConfig(args.source, args.target, args.method, epochs=args.epochs, seed=0))
    total = time.process_time() - t0
    wall = time.perf_counter() - w0
    rest = total - sum(spent.values())
    print(f"{args.method} {args.source} -> {args.target}, {args.epochs} epochs, seed 0, one torch thread; "
          f"target acc {100 * res.checkpoints['selected']['target_acc']:.1f} %; imports before the run "
          f"{t_import:.1f} CPU s; the run {total:.1f} CPU s, {wall:.1f} s wall\n")
    print("| phase | CPU s | share |\n|---|---:|---:|")
    for k, v in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} | {100 * v / total:.0f} % |")
    print(f"| the rest (planning, building the method, callbacks) | {rest:.1f} | {100 * rest / total:.0f} % |")


if __name__ == "__main__":
    main()
