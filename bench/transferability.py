"""Transferability benchmark (issue 16 item 2): do LogME, LEEP and H-score rank stored models the way
fine-tuning them on a new target then does?

    LEPTON_DATA_DIR=../shared/data python bench/transferability.py [--jobs 2] [--out bench/transferability.md]

1. Into a fresh temporary knowledge base (``LEPTON_HOME`` in a temporary folder, never the user's or
   the repository's), train source models whose input space is the target's: every run has target
   ``mnist-m`` (3x32x32 RGB, MNIST's 20/28 content fraction), so MNIST (1x28x28), USPS (1x16x16) and
   the 8x8 digits family all harmonise to 3x32x32 (gray repeated to RGB, resized to 32x32; mnist-m's
   content fraction is the smallest, so mnist-m itself is never rescaled and every run sees the same
   target images). The runs differ in source (mnist, usps, digits, digits-rotated, digits-colored,
   digits-noisy + digits-inverted), method (source-only, dann, deep-coral, self-training), epochs and
   seed, so their quality varies. A ``target`` other than mnist-m would not do: with target usps or
   mnist, an mnist-m source makes 3x32x32 inputs beside 1x16x16 (or 1x28x28) for the others.
2. Score them all with :func:`lepton.evaluation.transferability.rank_encoders` on mnist-m's labelled
   training split (a seeded sample of 2,000; plus the untrained floor).
3. Fine-tune each stored encoder on mnist-m with the same recipe: ``finetune``, ``--init-from RUN``
   (the run's selected checkpoint: encoder and transfer module; a fresh head), the run's own source
   domains as ``--source`` (as the app's ranking page does; with ``pretrain_fraction`` 0 they are
   not trained on), ``k`` labelled target examples per class (the same k-shot draw for all: fixed
   seed), ``--steps`` the same for all. The untrained floor is a fine-tune from a fresh network (no
   ``--init-from``, source mnist). Target test accuracy at the label-free checkpoint and at the last
   epoch (and the oracle-best, for reference) is recorded.
4. Kendall's tau-b (``scipy.stats.kendalltau``, with its p-value) between each score and the
   fine-tuned accuracy, over the stored runs, with and without the untrained floor; also, as a
   reference, the stored run's own target accuracy before fine-tuning (which needs target test
   labels, unlike the scores).

Each training run is its own ``python -m lepton train`` process with one torch thread, ``--jobs``
at a time. Numbers are measured, never estimated.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = "mnist-m"
SCORES = ("logme", "leep", "h_score")
SCORE_NAMES = {"logme": "LogME", "leep": "LEEP", "h_score": "H-score"}
#: (sources, method, epochs, seed, hparams): varied sources, methods, budgets and seeds.
SOURCE_RUNS = [
    (["mnist"], "source-only", 1, 0, None),
    (["mnist"], "source-only", 3, 1, None),
    (["mnist"], "dann", 2, 0, None),
    (["mnist"], "deep-coral", 2, 0, None),
    (["mnist"], "self-training", 2, 0, {"align": "coral"}),
    (["usps"], "source-only", 1, 0, None),
    (["usps"], "dann", 2, 1, None),
    (["usps"], "deep-coral", 1, 2, None),
    (["digits"], "source-only", 2, 0, None),
    (["digits-rotated"], "source-only", 1, 0, None),
    (["digits-colored"], "dann", 2, 0, None),
    (["digits-noisy", "digits-inverted"], "dann", 1, 2, None),
]


def _env(home: str) -> dict:
    return dict(os.environ, LEPTON_HOME=home, LEPTON_CACHE_DIR=str(Path(home) / "cache"), LEPTON_THREADS="1",
                OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _train(args: list, home: str) -> dict:
    cmd = [sys.executable, "-m", "lepton", "train", "--target", TARGET, "--json", "--quiet", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=_env(home), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1], "wall": wall}
    res = json.loads(p.stdout)
    ck = res["checkpoints"]
    return {"run_id": res.get("run_id"), "wall": wall, "train_wall": res["wall_time_s"], "steps": res["budget"]["steps"],
            "selected": ck["selected"]["target_acc"], "selected_epoch": ck["selected"]["epoch"],
            "last": ck["last"]["target_acc"], "last_epoch": ck["last"]["epoch"],
            "oracle": ck["oracle"]["target_acc"], "oracle_epoch": ck["oracle"]["epoch"],
            "source_acc": ck["selected"].get("source_acc"),
            "warnings": [line for line in p.stderr.splitlines() if "warning" in line]}


def train_source(spec: dict, home: str, smoke_steps=None) -> dict:
    args = ["--source", *spec["sources"], "--method", spec["method"], "--seed", str(spec["seed"])]
    args += ["--steps", str(smoke_steps)] if smoke_steps else ["--epochs", str(spec["epochs"])]
    if spec["hparams"]:
        args += ["--hparams", json.dumps(spec["hparams"])]
    return {**spec, **_train(args, home)}


def finetune(row: dict, home: str, k: int, steps: int, seed: int) -> dict:
    hp = json.dumps({"k": k, "mode": "all", "pretrain_fraction": 0.0})
    args = ["--source", *row["sources"], "--method", "finetune", "--hparams", hp, "--steps", str(steps),
            "--seed", str(seed), "--no-store"]
    if row["run_id"] != "untrained":
        args += ["--init-from", row["run_id"]]
    return _train(args, home)


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _machine() -> str:
    model = "?"
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()} {model}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"


def kendall(rows: list, score: str, acc: str) -> dict:
    from scipy.stats import kendalltau
    pts = [(r[score], r["ft"][acc]) for r in rows if r.get(score) is not None and "error" not in r["ft"]]
    if len(pts) < 3:
        return {"tau": None, "p": None, "n": len(pts)}
    res = kendalltau([a for a, _ in pts], [b for _, b in pts])
    return {"tau": float(res.statistic), "p": float(res.pvalue), "n": len(pts)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--k", type=int, default=10, help="labelled target examples per class when fine-tuning")
    ap.add_argument("--ft-steps", type=int, default=226, help="fine-tuning budget in steps (226: two epochs of 113 "
                    "batches of 64 over mnist-m's 7,200 training rows)")
    ap.add_argument("--ft-seed", type=int, default=0)
    ap.add_argument("--cap", type=int, default=2000, help="labelled target examples scored per run")
    ap.add_argument("--out", default=str(ROOT / "bench" / "transferability.md"))
    ap.add_argument("--smoke", type=int, default=None, help="a quick check: STEPS per source run and per fine-tune, "
                    "the first 3 source runs only (writes nothing unless --out is given)")
    ap.add_argument("--from-json", default=None, help="rewrite the .md from an earlier run's .json (no training)")
    args = ap.parse_args(argv)
    if args.from_json:
        d = json.loads(Path(args.from_json).read_text())
        text = report(d["rows"], d["tau"], d["meta"])
        print(text)
        Path(args.out).write_text(text)
        return
    specs = [{"sources": s, "method": m, "epochs": e, "seed": sd, "hparams": h} for s, m, e, sd, h in SOURCE_RUNS]
    if args.smoke:
        specs, args.ft_steps = specs[:3], args.smoke
    t_all = time.perf_counter()
    load_before, up_before = _load(), subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="lepton-transferability-") as home:
        # 1. the stored source models
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as ex:
            rows = list(ex.map(lambda s: train_source(s, home, args.smoke), specs))
        t_train = time.perf_counter() - t0
        load_train = _load()
        bad = [r for r in rows if "error" in r]
        rows = [r for r in rows if "error" not in r]
        # 2. the scores, in this process (one thread, like the runs)
        os.environ.update(_env(home))
        import torch
        torch.set_num_threads(1)
        sys.path.insert(0, str(ROOT))
        from lepton.evaluation.transferability import rank_encoders
        from lepton.kb import KnowledgeBase
        t0 = time.perf_counter()
        df = rank_encoders(KnowledgeBase(home), TARGET, cap=args.cap, seed=0, runs=[r["run_id"] for r in rows])
        t_rank = time.perf_counter() - t0
        skipped = df.attrs.get("skipped", [])
        scores = {r["run_id"]: r for r in df.to_dict("records")}
        for r in rows:
            r.update({s: scores.get(r["run_id"], {}).get(s) for s in (*SCORES, "n")})
        floor = scores.get("untrained")
        if floor:
            rows.append({"sources": ["mnist"], "method": "untrained", "epochs": 0, "seed": 0, "hparams": None,
                         "run_id": "untrained", **{s: floor[s] for s in (*SCORES, "n")}})
        # 3. fine-tune every stored encoder (and a fresh network) the same way
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as ex:
            fts = list(ex.map(lambda r: finetune(r, home, args.k, args.ft_steps, args.ft_seed), rows))
        t_ft = time.perf_counter() - t0
        for r, ft in zip(rows, fts):
            r["ft"] = ft
    load_after, up_after = _load(), subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    wall_all = time.perf_counter() - t_all
    # 4. Kendall's tau
    stored = [r for r in rows if r["run_id"] != "untrained"]
    taus = []
    for acc in ("selected", "last"):
        for s in SCORES:
            taus.append({"score": s, "against": acc, "with_untrained": True, **kendall(rows, s, acc)})
            taus.append({"score": s, "against": acc, "with_untrained": False, **kendall(stored, s, acc)})
        for r in stored:
            r["zero_shot"] = r["selected"]
        taus.append({"score": "zero_shot", "against": acc, "with_untrained": False, **kendall(stored, "zero_shot", acc)})
    constant = [s for s in SCORES if len({round(r[s], 9) for r in rows if r.get(s) is not None}) <= 1]
    nan = [s for s in SCORES if any(r.get(s) is not None and r[s] != r[s] for r in rows)]
    meta = {"target": TARGET, "machine": _machine(), "python": platform.python_version(),
            "load_before": load_before, "load_after_training": load_train, "load_after": load_after,
            "uptime_before": up_before, "uptime_after": up_after, "jobs": args.jobs, "k": args.k,
            "ft_steps": args.ft_steps, "ft_seed": args.ft_seed, "cap": args.cap, "smoke": args.smoke,
            "wall_s": {"all": wall_all, "source_training": t_train, "rank_encoders": t_rank, "finetuning": t_ft},
            "failed_source_runs": bad, "skipped_by_rank": skipped, "constant_scores": constant, "nan_scores": nan}
    text = report(rows, taus, meta)
    print(text)
    if args.out and not (args.smoke and args.out == ap.get_default("out")):
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "tau": taus}, indent=1,
                                                                  default=str))


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def report(rows: list, taus: list, meta: dict) -> str:
    w = meta["wall_s"]
    lines = [
        f"Target **{meta['target']}** (3x32x32; every source harmonised to it). {len(rows) - 1} stored runs trained "
        f"into a fresh temporary knowledge base, scored by `rank_encoders` on {rows[0].get('n') or '?'} labelled "
        f"mnist-m training images (seed 0), then each fine-tuned the same way: `finetune`, `--init-from` the run, "
        f"k = {meta['k']} labelled target examples per class (one draw, seed {meta['ft_seed']}), mode all, "
        f"`pretrain_fraction` 0, `finetune_lr` 3e-4, {meta['ft_steps']} steps of batch 64, the run's own sources as "
        "`--source`. *untrained*: the score of `rank_encoders`' fresh network and a fine-tune from a fresh network "
        "(not the same initial weights: the floor is seeded by `rank_encoders`, the fine-tune by its run seed). "
        f"Target test accuracy (%) on mnist-m's 1,801 test images.", "",
        f"Measured on {meta['machine']}; {meta['jobs']} training processes at a time, one torch thread each. "
        f"Wall time {w['all']:.0f} s in all: source training {w['source_training']:.0f} s, scoring "
        f"{w['rank_encoders']:.1f} s, fine-tuning {w['finetuning']:.0f} s. Load average (1 / 5 / 15 min) before "
        f"{meta['load_before']}, after the source training {meta['load_after_training']}, at the end "
        f"{meta['load_after']} (other people's jobs share this machine).", "",
        "| run | source | method | epochs | seed | its own target acc (before fine-tuning) | LogME | LEEP | H-score | "
        "fine-tuned acc, label-free checkpoint (epoch) | fine-tuned acc, last epoch | fine-tuned oracle-best | "
        "train s | fine-tune s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -(r["ft"].get("selected") or 0)):
        ft = r["ft"]
        name = r["method"] + (f" `{json.dumps(r['hparams'])}`" if r.get("hparams") else "")
        sc = " | ".join("–" if r.get(s) is None else f"{r[s]:.3f}" for s in SCORES)
        if "error" in ft:
            acc = f"failed: {ft['error']} | | "
        else:
            acc = f"{_pct(ft['selected'])} ({ft['selected_epoch']}) | {_pct(ft['last'])} | {_pct(ft['oracle'])} "
        lines.append(f"| {r['run_id']} | {' + '.join(r['sources'])} | {name} | {r['epochs']} | {r['seed']} | "
                     f"{_pct(r.get('selected'))} | {sc} | {acc}| "
                     f"{r['train_wall']:.0f} | {ft.get('train_wall', 0):.0f} |" if r["run_id"] != "untrained" else
                     f"| untrained | – | fresh network | 0 | – | – | {sc} | {acc}| – | {ft.get('train_wall', 0):.0f} |")
    lines += ["", "Kendall's τ-b (`scipy.stats.kendalltau`) between each score and the fine-tuned target accuracy; "
              "p: its two-sided p-value (no correction for the several tests); n: the runs.", "",
              "| score | against | with untrained: τ (p, n) | stored runs only: τ (p, n) |", "|---|---|---|---|"]
    for acc, label in (("selected", "label-free checkpoint"), ("last", "last epoch")):
        for s in (*SCORES, "zero_shot"):
            cell = {}
            for t in taus:
                if t["score"] == s and t["against"] == acc:
                    cell[t["with_untrained"]] = ("–" if t["tau"] is None else
                                                 f"{t['tau']:+.2f} (p = {_p(t['p'])}, n = {t['n']})")
            name = SCORE_NAMES.get(s, "reference: the run's own target acc (needs target test labels)")
            lines.append(f"| {name} | {label} | {cell.get(True, '–')} | {cell.get(False, '–')} |")
    notes = []
    ok = [r["ft"] for r in rows if "error" not in r["ft"]]
    same = sum(f["selected_epoch"] == f["last_epoch"] for f in ok)
    if same == len(ok):
        notes.append(f"the label-free checkpoint was the last epoch in all {len(ok)} fine-tunes, so the two halves of "
                     "the τ table coincide")
    else:
        notes.append(f"the label-free checkpoint was the last epoch in {same} of {len(ok)} fine-tunes")
    if meta["failed_source_runs"]:
        notes.append("failed source runs: " + "; ".join(f"{' + '.join(r['sources'])} {r['method']}: {r['error']}"
                                                     for r in meta["failed_source_runs"]))
    if meta["skipped_by_rank"]:
        notes.append("skipped by rank_encoders: " + "; ".join(f"{s['run_id']}: {s['reason']}" for s in meta["skipped_by_rank"]))
    if meta["constant_scores"]:
        notes.append("constant scores over the runs: " + ", ".join(meta["constant_scores"]))
    if meta["nan_scores"]:
        notes.append("NaN scores: " + ", ".join(meta["nan_scores"]))
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", "Reproduce: `LEPTON_DATA_DIR=../shared/data python bench/transferability.py` (rows and settings in "
              "`bench/transferability.json`)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
