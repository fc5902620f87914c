"""What a CLI run on a small feature table spends outside training: the whole process's wall time
(interpreter start, imports, reading the tables, planning, evaluation, storing) minus the wall time of
its optimisation steps (``Method.update``).

    python bench/cli_small_table.py [--epochs 10 --method dann --rounds 3]

The tables are two CSV files written to a temporary folder: scikit-learn's digits (64 pixel features,
1,797 rows) as the source and its ``digits-noisy`` shift as the target. Each round is one fresh
``python -m lepton train`` process with an empty knowledge base; rounds alternate nothing (one
command), so report the median. Run on an idle machine: the goal (issue 10) is under 3 s outside training.
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

# Runs inside the child: times Method.update with perf_counter, then hands over to the CLI.
CHILD = r"""
import atexit, sys, time
sys.path.insert(0, {root!r})
spent = [0.0]
import lepton.methods.base as base
import lepton.methods as methods
def wrap(cls):
    orig = cls.update
    def update(self, *a, **k):
        t = time.perf_counter()
        try:
            return orig(self, *a, **k)
        finally:
            spent[0] += time.perf_counter() - t
    cls.update = update
for name in methods.METHODS.names():
    c = methods.METHODS.get(name)
    if "update" in c.__dict__:
        wrap(c)
wrap(base.Method)
atexit.register(lambda: print("STEPS_S", spent[0], file=sys.stderr))
from lepton.cli import main
rc = main(sys.argv[1:])
sys.exit(rc)
"""


def write_tables(folder: Path) -> tuple:
    import numpy as np
    sys.path.insert(0, str(ROOT))
    from lepton.data import load_domain
    paths = []
    for name in ("digits", "digits-noisy"):
        d = load_domain(name)
        x = np.concatenate([d.x_train, d.x_test]).reshape(-1, 64)
        y = np.concatenate([d.y_train, d.y_test])
        p = folder / f"{name}.csv"
        header = ",".join([f"f{i}" for i in range(64)] + ["label"])
        np.savetxt(p, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.5g")
        paths.append(p)
    return tuple(paths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--method", default="dann")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lepton-small-table-"))
    src, tgt = write_tables(tmp)
    rows = []
    for r in range(args.rounds):
        env = dict(os.environ, LEPTON_HOME=str(tmp / f"home{r}"), LEPTON_THREADS="1")
        cmd = [sys.executable, "-c", CHILD.format(root=str(ROOT)), "train", "--source", str(src), "--target",
               str(tgt), "--method", args.method, "--epochs", str(args.epochs), "--quiet", "--json"]
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(p.stderr[-2000:])
        steps = float([ln for ln in p.stderr.splitlines() if ln.startswith("STEPS_S")][-1].split()[1])
        acc = json.loads(p.stdout)["checkpoints"]["selected"]["target_acc"]
        rows.append((wall, steps, wall - steps, acc))
        print(f"round {r}: process {wall:.2f} s, optimisation steps {steps:.2f} s, outside training "
              f"{wall - steps:.2f} s, target acc {100 * acc:.1f} %", flush=True)
    med = statistics.median(x[2] for x in rows)
    print(f"\n{args.method}, digits.csv -> digits-noisy.csv (1,797 x 64 each), {args.epochs} epochs, one torch "
          f"thread, {args.rounds} fresh processes: outside training median {med:.2f} s "
          f"(process median {statistics.median(x[0] for x in rows):.2f} s)")


if __name__ == "__main__":
    main()
