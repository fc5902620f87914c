"""Cross-domain recommendation on MovieLens 100K genre pairs (issue 15).

    LEPTON_DATA_DIR=../shared/data python bench/recommend.py [--seeds 0 1 2] [--jobs 2] [--out bench/recommend.md]

For each genre pair (comedy -> drama, action -> romance, thriller -> crime), cold-start k in 0, 1,
3 and seeds 0-2, trains ``popularity``, ``bpr-mf`` (target only), ``cmf`` and ``emcdr`` with their
defaults and the automatic budget (``python -m lepton train`` with ``--hparams
'{"cold_start_k": K}'``), and reports HR@10 and NDCG@10 (mean ± std over seeds) of the cold-start
users and of all evaluated users, at each run's label-free checkpoint, with the wall time of a run.

As a check of the ``bpr-mf`` baseline, the same split (the pair's target training positives, the
same 99 sampled candidates per user) is also fitted with the ``implicit`` library's BPR
(``implicit.cpu.bpr.BayesianPersonalizedRanking``, factors 32, its default learning rate and
regularisation, 100 iterations), when that library is installed (``pip install implicit``; it is
not a Lepton dependency). Each run is its own process with one torch thread. Numbers are measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import mean_std, run_in_process  # noqa: E402
PAIRS = [("movielens-comedy", "movielens-drama"), ("movielens-action", "movielens-romance"),
         ("movielens-drama", "movielens-thriller")]  # thriller -> crime leaves crime 74 items: too few for 99 negatives
METHODS = ["popularity", "bpr-mf", "cmf", "emcdr"]


def one(spec: dict) -> dict:
    from lepton.config import RunConfig
    from lepton.training import train
    t0 = time.perf_counter()
    if spec["method"] == "implicit-bpr":
        return implicit_bpr(spec)
    r = train(RunConfig(spec["source"], spec["target"], spec["method"], seed=spec["seed"],
                        hparams={"cold_start_k": spec["k"]}), record=False)
    g = r.checkpoints["selected"]["groups"]
    return {"groups": g, "wall": time.perf_counter() - t0, "steps": r.budget["steps"]}


def implicit_bpr(spec: dict) -> dict:
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    from lepton.data import load_domain
    from lepton.data.interactions import pair_interactions
    from lepton.evaluation.ranking import rank_of_first, ranking_summary
    t0 = time.perf_counter()
    d = pair_interactions([load_domain(spec["source"])], load_domain(spec["target"]), cold_start_k=spec["k"])
    m = sp.csr_matrix((np.ones(len(d.train_t), np.float32), (d.train_t[:, 0], d.train_t[:, 1])),
                      shape=(d.n_users, len(d.items_t)))
    model = BayesianPersonalizedRanking(factors=32, iterations=100, random_state=spec["seed"], num_threads=1)
    model.fit(m, show_progress=False)
    u, it = model.user_factors, model.item_factors
    scores = np.einsum("ud,ucd->uc", u[d.test_users], it[d.candidates])
    ranks = rank_of_first(scores)
    g = {"all": ranking_summary(ranks), "cold-start": ranking_summary(ranks[d.cold]),
         "warm": ranking_summary(ranks[~d.cold])}
    return {"groups": g, "wall": time.perf_counter() - t0, "steps": 100}


def run(spec: dict) -> dict:
    return run_in_process(__file__, spec)



def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ks", type=int, nargs="+", default=[0, 1, 3])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--pairs", nargs="+", default=None, help="SOURCE:TARGET pairs to measure (default: all three)")
    ap.add_argument("--keep", default=None, help="rows .json of an earlier run: its rows of the pairs not measured "
                    "now are kept")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    try:
        import implicit  # noqa: F401
        methods = METHODS + ["implicit-bpr"]
    except ImportError:
        methods = METHODS
    pairs = [tuple(p.split(":")) for p in args.pairs] if args.pairs else PAIRS
    specs = [{"source": s, "target": t, "k": k, "method": m, "seed": seed}
             for s, t in pairs for k in args.ks for seed in args.seeds for m in methods]
    t0 = time.time()
    with ThreadPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(run, specs))
    load = os.getloadavg()
    kept = []
    if args.keep:
        kept = [r for r in json.loads(Path(args.keep).read_text()) if (r["source"], r["target"]) not in pairs
                and (r["source"], r["target"]) in PAIRS and "error" not in r]
        rows += kept
    errors = [r for r in rows if "error" in r]
    lines = [f"Seeds {', '.join(map(str, args.seeds))}, default hyper-parameters and budget, {args.jobs} runs at a time, "
             f"one torch thread each, on {platform.machine()} with {os.cpu_count()} CPU cores; {time.time() - t0:.0f} s "
             f"in all, load average at the end {load[0]:.1f} (`python bench/recommend.py`). HR@10 / NDCG@10 (%) of "
             "each user's held-out latest target positive against 99 sampled unseen items, mean ± std over seeds, "
             "at the label-free checkpoint; *cold*: the cold-start users (20 % of the eligible shared users, keeping k "
             "target positives), *all*: every evaluated target user; *s/run*: mean wall time of one run. "
             "implicit-bpr: the `implicit` library's BPR on the same split and candidates (a check of bpr-mf)."
             + (f" Pairs {', '.join(sorted({r['source'].split('-')[1] + ' → ' + r['target'].split('-')[1] for r in kept}))} "
                "are kept from an earlier run of the same script (`--keep`)." if kept else ""), "",
             "| source → target | k | method | HR@10 cold | NDCG@10 cold | HR@10 all | NDCG@10 all | s/run |",
             "|---|---|---|---|---|---|---|---|"]
    for s, t in PAIRS:
        for k in args.ks:
            for m in methods:
                sel = [r for r in rows if (r["source"], r["target"], r["k"], r["method"]) == (s, t, k, m)
                       and "error" not in r]
                if not sel:
                    continue
                g = lambda grp, key: mean_std([r["groups"][grp][key] for r in sel])  # noqa: E731
                wall = statistics.mean(r["wall"] for r in sel)
                lines.append(f"| {s.split('-')[1]} → {t.split('-')[1]} | {k} | {m} | {g('cold-start', 'hr@10')} | "
                             f"{g('cold-start', 'ndcg@10')} | {g('all', 'hr@10')} | {g('all', 'ndcg@10')} | {wall:.1f} |")
    if errors:
        lines += ["", f"{len(errors)} runs failed: " + "; ".join(f"{e['method']} k={e['k']}: {e['error']}" for e in errors[:5])]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
