"""Lepton against a peer library, skada 0.6.0, on the same data, network, budget and seeds.

    LEPTON_DATA_DIR=../shared/data python bench/peer_skada.py [--epochs 20] [--rounds 1] [--load] \
        [--pairs mnist:usps usps:mnist] [--methods source-only dann deep-coral] [--out bench/peer_skada.md]

skada is a benchmark dependency only: the script installs it into its own virtualenv
(``bench/.venv-skada``, with this Python's site packages visible so both use the same torch build).

Per pair, method and round, A then B, each a fresh process with one torch thread:

* A, Lepton: ``python -m lepton train --source S --target T --method M --epochs E --batch-size 64
  --seed 0 --json`` (stored in a temporary knowledge base, as a user's run is): the process's wall
  time; target test accuracy of the label-free (selected) checkpoint and of the last epoch.
* B, skada: ``bench/_skada_runner.py`` on the arrays Lepton trained on (written once per pair, so
  skada's time has no data preparation in it), with Lepton's network (TransferNet, the same encoder)
  and its default learning rate, weight decay and loss weight; target test accuracy of the last
  epoch (skada chooses no checkpoint). skada's DANN as shipped ends its one-logit discriminator in a
  softmax, which is always 1, so it does not adapt: the runner passes the same discriminator with a
  sigmoid.

Ratios are Lepton / skada of the medians. ``--load`` runs a CPU-bound process beside everything.
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
sys.path.insert(0, str(ROOT))
VENV = ROOT / "bench" / ".venv-skada"
SKADA = ["skada==0.6.0", "skorch"]  # skada.deep needs skorch, which skada does not require


def skada_python() -> str:
    """The virtualenv's python, created with skada installed on first use."""
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    if subprocess.run([str(py), "-c", "import skada.deep"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", *SKADA], check=True)
    return str(py)


def write_pair(source: str, target: str, path: Path) -> dict:
    """The harmonised arrays of a pair, as Lepton's plan makes them, and its default hyper-parameters."""
    import numpy as np

    from lepton.config import RunConfig
    from lepton.training import plan
    run = plan(RunConfig(source, target, "source-only"))
    s, t = run.source, run.target
    np.savez(path, xs=s.x_train, ys=s.y_train, xt=t.x_train, xt_test=t.x_test, yt_test=t.y_test,
             modality=np.array(s.modality))
    return {"n_source": len(s.y_train), "n_target": len(t.y_train), "n_target_test": len(t.y_test),
            "input_shape": list(s.input_shape)}


def hparams(method: str) -> dict:
    from lepton.methods import METHODS
    h = METHODS.get(method).validate_hparams({})
    return {"lr": h["lr"], "weight_decay": h["weight_decay"], "reg": h.get("trade_off", 1.0)}


def lepton_run(source, target, method, epochs, env) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "lepton", "train", "--source", source, "--target", target,
                        "--method", method, "--epochs", str(epochs), "--batch-size", "64", "--seed", "0",
                        "--json", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    out = json.loads(p.stdout)
    ck = out["checkpoints"]
    return {"wall_s": wall, "train_s": out["wall_time_s"], "acc": ck["selected"]["target_acc"],
            "acc_last": ck["last"]["target_acc"]}


def skada_run(py, data, method, epochs, env) -> dict:
    h = hparams(method)
    t0 = time.perf_counter()
    p = subprocess.run([py, str(ROOT / "bench" / "_skada_runner.py"), "--data", str(data), "--method", method,
                        "--epochs", str(epochs), "--seed", "0", "--lr", str(h["lr"]),
                        "--weight-decay", str(h["weight_decay"]), "--reg", str(h["reg"])],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "train_s": out["train_s"], "acc": out["target_acc"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pairs", nargs="+", default=["mnist:usps", "usps:mnist"])
    ap.add_argument("--methods", nargs="+", default=["source-only", "dann", "deep-coral"])
    ap.add_argument("--load", action="store_true", help="a CPU-bound process beside everything")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    py = skada_python()
    tmp = Path(tempfile.mkdtemp(prefix="lepton-peer-"))
    env = {**os.environ, "LEPTON_HOME": str(tmp / "home"), "LEPTON_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if args.load else None
    rows = []
    try:
        for pair in args.pairs:
            source, target = pair.split(":")
            data = tmp / f"{source}-{target}.npz"
            info = write_pair(source, target, data)
            for method in args.methods:
                a, b = [], []
                for _ in range(args.rounds):
                    a.append(lepton_run(source, target, method, args.epochs, env))
                    print(json.dumps({"pair": pair, "method": method, "lepton": a[-1]}), flush=True)
                    b.append(skada_run(py, data, method, args.epochs, env))
                    print(json.dumps({"pair": pair, "method": method, "skada": b[-1]}), flush=True)
                med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
                rows.append({"pair": f"{source} → {target}", "method": method, **info,
                             "lepton_s": med(a, "wall_s"), "lepton_train_s": med(a, "train_s"),
                             "skada_s": med(b, "wall_s"), "skada_train_s": med(b, "train_s"),
                             "lepton_acc": med(a, "acc"), "lepton_acc_last": med(a, "acc_last"),
                             "skada_acc": med(b, "acc")})
    finally:
        if hog is not None:
            hog.kill()
    load = "with a CPU-bound process beside it" if args.load else "no other load started"
    text = [f"Lepton vs skada 0.6.0, {args.epochs} epochs, batch 64, seed 0, one torch thread each, "
            f"{args.rounds} round(s) alternated, {os.cpu_count()} cores, {load}. Wall time of the whole process "
            "(s); target test accuracy (%): Lepton's label-free checkpoint (its last epoch), skada's last epoch.", "",
            "| pair | method | Lepton s | skada s | ratio | Lepton acc (last) | skada acc |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        text.append(f"| {r['pair']} | {r['method']} | {r['lepton_s']:.1f} | {r['skada_s']:.1f} | "
                    f"{r['lepton_s'] / r['skada_s']:.2f} | {100 * r['lepton_acc']:.1f} ({100 * r['lepton_acc_last']:.1f}) | "
                    f"{100 * r['skada_acc']:.1f} |")
    print("\n".join(text))
    if args.out:
        Path(args.out).write_text("\n".join(text) + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
