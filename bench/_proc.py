"""Helpers the accuracy benchmarks share: one run per process with one torch thread, mean ± std."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_in_process(script: str, spec: dict) -> dict:
    """Run ``script --one SPEC`` in a fresh process with one thread; its last stdout line (JSON)
    merged into ``spec``, or ``spec`` with ``error`` (the last stderr line) when it failed."""
    env = dict(os.environ, LEPTON_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    p = subprocess.run([sys.executable, script, "--one", json.dumps(spec)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        return {**spec, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return {**spec, **json.loads(p.stdout.strip().splitlines()[-1])}


def mean_std(v) -> str:
    """``"73.9 ± 2.4"`` of fractions, in %; one value alone without ``±``."""
    v = [100 * a for a in v]
    return f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"
