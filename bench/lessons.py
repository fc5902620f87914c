"""Candidates for the app's ready lessons: built-in digit shifts x methods, target accuracy of the
label-free checkpoint and the training wall time (seconds), one torch thread, seed 0.

    LEPTON_DATA_DIR=../shared/data python bench/lessons.py --epochs 10 --out bench/lessons.md

Measured numbers only; the load on the machine during the run is stated in the output header.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton.config import RunConfig
from lepton.training import fit

TARGETS = ["digits:rotate=15", "digits:rotate=30", "digits-rotated", "digits-inverted", "digits-noisy",
           "digits-blurred", "digits-colored", "digits-small", "digits:translate=2"]
METHODS = [("source-only", {}), ("dann", {}), ("dan", {}), ("deep-coral", {}),
           ("self-training", {"align": "coral"})]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", nargs="*", default=TARGETS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    lines = [f"digits -> target, {args.epochs} epochs, batch 64, seed {args.seed}, 1 torch thread; "
             f"load average at start {load:.2f} on {os.cpu_count()} cores", "",
             "| target | " + " | ".join(m for m, _ in METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for tgt in args.targets:
        cells = []
        for m, hp in METHODS:
            t0 = time.perf_counter()
            r = fit(RunConfig("digits", tgt, m, hparams=hp, epochs=args.epochs, seed=args.seed))
            cells.append(f"{100 * r.checkpoints['selected']['target_acc']:.1f} ({time.perf_counter() - t0:.0f} s)")
            print(tgt, m, cells[-1], flush=True)
        lines.append(f"| {tgt} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
