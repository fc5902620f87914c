"""Peak memory of the shift statistics on two large feature tables (issue 11): each table is held
once as float32, no float64 copy.

    python bench/shift_memory.py [--rows 40000 --cols 1000] [--tree PATH ...]

Writes two ``.npz`` tables of float32 features (``rows x cols`` each, 10 integer classes, the
second shifted) to a temporary folder and, in a fresh process per tree (``--tree`` defaults to this
checkout; give an older checkout to compare), runs :func:`lepton.evaluation.shift.domain_shift` on them.
Reports the child's peak resident memory (``ru_maxrss``) and its ratio to one table's size.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = ("import sys; sys.path.insert(0, {tree!r}); from lepton.evaluation.shift import domain_shift; "
         "r = domain_shift({a!r}, {b!r}); print(round(r['proxy_a_distance'], 3))")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--tree", nargs="+", default=[str(ROOT)])
    args = ap.parse_args()
    import numpy as np
    tmp = Path(tempfile.mkdtemp(prefix="lepton-shiftmem-"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        x = rng.standard_normal((args.rows, args.cols), dtype=np.float32) + i
        y = rng.integers(0, 10, args.rows)
        p = tmp / f"t{i}.npz"
        np.savez(p, X=x, y=y)
        paths.append(str(p))
        del x
    mb = args.rows * args.cols * 4 / 2**20
    print(f"two tables of {args.rows} x {args.cols} float32 = {mb:.0f} MiB each")
    for tree in args.tree:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = subprocess.run([sys.executable, "-c", CHILD.format(tree=tree, a=paths[0], b=paths[1])],
                             capture_output=True, text=True)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB (Linux)
        if out.returncode:
            raise SystemExit(out.stderr[-1500:])
        note = "" if peak > before / 1024 else " (not above an earlier child's peak: run one tree per call)"
        print(f"{tree}: peak RSS {peak:.0f} MiB = {peak / mb:.2f}x one table{note}; PAD {out.stdout.strip()}")


if __name__ == "__main__":
    main()
