"""Before/after benchmark of issue 12's defaults on feature tables a user would bring.

    LEPTON_DATA_DIR=../shared/data python bench/defaults.py [--seeds 0 1 2] [--jobs 2] \
        [--out bench/defaults.md]

Writes, into a temporary folder, the tables a researcher would export and import as their own data:

* ``mnist16.mat`` and ``usps16.csv``: 2,000 MNIST and 1,800 USPS digits (seeded draws, the
  classic MNIST-USPS protocol of Long et al., ICCV 2013) as 256-d vectors of 16x16 pixels with
  intensities 0-255 (MNIST resized from 28x28 with PIL's bilinear filter);
* ``books.npz`` and ``kitchen.npz``: TF-IDF vectors of the two review domains (scikit-learn's
  ``TfidfVectorizer`` with unigrams and bigrams, the 5,000 most frequent terms, fitted on both
  domains' texts, as a user would), labels 0/1.

On each pair (both directions of each, plus the built-in image pair ``digits -> digits-rotated``)
it trains source-only and each unsupervised adaptation method (dann, deep-coral, dan,
self-training) for seeds 0-2, twice:

* **before**: the defaults before issue 12 (``defaults_version=1``: an epoch is one pass over the
  source, Deep CORAL's paper loss at weight 10; ``scaling="none"``), 10 epochs;
* **after**: today's defaults (``defaults_version`` 3: standardised tables, an epoch over the
  larger domain, the automatic budget of 10 epochs or at least 1,000 steps, self-training's EMA
  teacher), and the MNIST/USPS pixel tables read as 16x16 images (``PATH#shape=16x16``), as the
  warning Lepton prints for them suggests, so they train the LeNet encoder.

Reported: the target test accuracy at the label-free checkpoint (the run's model; mean ± std over
seeds), the optimisation steps, and a 1-nearest-neighbour classifier (scikit-learn) fitted on the
source training rows with the same scaling as the run, evaluated on the same target test split.
Each run is its own process with one torch thread, ``--jobs`` at a time. Numbers are measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import mean_std, run_in_process  # noqa: E402
METHODS = ["source-only", "dann", "deep-coral", "dan", "self-training"]
EPOCHS = 10


def write_tables(folder: Path) -> dict:
    """Write the user-style tables; return ``{name: domain path}``."""
    import numpy as np
    import pandas as pd
    import scipy.io
    import torch
    from sklearn.feature_extraction.text import TfidfVectorizer

    from lepton.data import load_domain

    rng = np.random.default_rng(0)

    def pool(d):
        return np.concatenate([d.x_train, d.x_test]), np.concatenate([d.y_train, d.y_test])

    x, y = pool(load_domain("mnist"))
    pick = rng.choice(len(y), 2000, replace=False)
    small = torch.nn.functional.interpolate(torch.from_numpy(x[pick]), size=(16, 16), mode="bilinear",
                                            antialias=True).numpy()
    scipy.io.savemat(folder / "mnist16.mat", {"X": np.round(255 * small.reshape(2000, 256)), "y": y[pick]})
    x, y = pool(load_domain("usps"))
    pick = rng.choice(len(y), 1800, replace=False)
    df = pd.DataFrame(np.round(255 * x[pick].reshape(1800, 256)), columns=[f"px{i}" for i in range(256)])
    df["label"] = y[pick]
    df.to_csv(folder / "usps16.csv", index=False)
    texts = {n: pool(load_domain(n)) for n in ("books", "kitchen")}
    vec = TfidfVectorizer(ngram_range=(1, 2), max_features=5000).fit(np.concatenate([t for t, _ in texts.values()]))
    for n, (t, lab) in texts.items():
        np.savez(folder / f"{n}.npz", X=vec.transform(t).toarray().astype(np.float32), y=lab)
    return {"mnist16": str(folder / "mnist16.mat"), "usps16": str(folder / "usps16.csv"),
            "books-tfidf": str(folder / "books.npz"), "kitchen-tfidf": str(folder / "kitchen.npz"),
            "digits": "digits", "digits-rotated": "digits-rotated"}


def one(spec: dict) -> dict:
    """Run one config in this process (``--one``); return the numbers the table needs."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    from lepton.config import RunConfig
    from lepton.training import fit
    from lepton.training.plan import plan

    kw = dict(spec["config"])
    cfg = RunConfig(**kw)
    t0 = time.perf_counter()
    res = fit(cfg)
    wall = time.perf_counter() - t0
    if res.status != "completed":
        return {"error": res.error}
    out = {"target": res.checkpoints["selected"]["target_acc"], "oracle": res.checkpoints["oracle"]["target_acc"],
           "steps": res.budget["steps"], "wall": wall, "flags": res.flags}
    if spec.get("knn"):
        st = plan(RunConfig(**{**kw, "method": "source-only"}))  # the same harmonised (scaled) domains
        s, t = st.source, st.target
        knn = KNeighborsClassifier(1).fit(s.x_train.reshape(len(s.x_train), -1), s.y_train)
        out["knn"] = float(np.mean(knn.predict(t.x_test.reshape(len(t.x_test), -1)) == t.y_test))
    return out


def run(spec: dict) -> dict:
    return run_in_process(__file__, spec)



def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", default=None, help="rows.json of an earlier run: its rows of the methods not in "
                    "--methods fill those columns (the table says which columns were re-measured)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    folder = Path(tempfile.mkdtemp(prefix="lepton-defaults-"))
    paths = write_tables(folder)
    pairs = [("mnist16", "usps16"), ("usps16", "mnist16"), ("books-tfidf", "kitchen-tfidf"),
             ("kitchen-tfidf", "books-tfidf"), ("digits", "digits-rotated")]
    arms = {"before": {"defaults_version": 1, "scaling": "none", "epochs": EPOCHS}, "after": {}}
    images = {"mnist16", "usps16"}  # pixel tables: the after arm reads them as the warning suggests
    specs = []
    for s, t in pairs:
        for m in args.methods:
            for seed in args.seeds:
                for arm, extra in arms.items():  # A and B alternate, so load hits both alike
                    shape = "#shape=16x16" if arm == "after" and s in images else ""
                    cfg = {"source": paths[s] + shape, "target": paths[t] + shape, "method": m, "seed": seed, **extra}
                    specs.append({"pair": f"{s} → {t}", "arm": arm, "method": m, "seed": seed, "config": cfg,
                                  "knn": m == "source-only" and seed == args.seeds[0]})
    t0 = time.time()
    with ThreadPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(run, specs))
    load = os.getloadavg()
    kept = []
    if args.keep:
        kept = [r for r in json.loads(Path(args.keep).read_text()) if r["method"] not in args.methods]
        rows += kept
        args.methods = [m for m in METHODS if m in {r["method"] for r in rows}]
    (folder / "rows.json").write_text(json.dumps(rows, indent=1))
    errors = [r for r in rows if "error" in r]
    lines = [f"Seeds {', '.join(map(str, args.seeds))}, batch 64, default hyper-parameters (before: {EPOCHS} epochs; "
             "after: the automatic budget; mnist16/usps16 after: read as 16x16 images); "
             f"{args.jobs} runs at a time, one torch thread each, on {platform.machine()} with {os.cpu_count()} "
             f"CPU cores; {time.time() - t0:.0f} s in all, load average at the end {load[0]:.1f} "
             f"(`python bench/defaults.py`). Target test accuracy (%) at the label-free checkpoint, mean ± std "
             "over seeds; *steps* is the run's optimisation steps; 1-NN: a 1-nearest-neighbour classifier on the "
             "source training rows with the same scaling as the run."
             + (f" Columns {', '.join(sorted({r['method'] for r in kept}))} are kept from an earlier run of the "
                f"same script ({args.keep}); the rest were measured in this one." if kept else ""), "",
             "| source → target | defaults | 1-NN | " + " | ".join(args.methods) + " | steps |",
             "|---|---|---|" + "---|" * len(args.methods) + "---|"]
    for s, t in pairs:
        pair = f"{s} → {t}"
        for arm in arms:
            sel = [r for r in rows if r["pair"] == pair and r["arm"] == arm and "error" not in r]
            knn = [r["knn"] for r in sel if isinstance(r.get("knn"), float)]  # the spec's flag is a bool
            cells = []
            for m in args.methods:
                acc = [r["target"] for r in sel if r["method"] == m]
                flagged = sorted({f for r in sel if r["method"] == m for f in r["flags"]})
                cells.append((mean_std(acc) if acc else "failed") + (f" ({', '.join(flagged)})" if flagged else ""))
            steps = sorted({r["steps"] for r in sel})
            lines.append(f"| {pair} | {arm} | {100 * knn[0]:.1f} | " if knn else f"| {pair} | {arm} | – | ")
            lines[-1] += " | ".join(cells) + f" | {'/'.join(map(str, steps))} |"
    for arm in arms:
        means = []
        for m in args.methods:
            per_pair = [statistics.mean(r["target"] for r in rows if r["pair"] == f"{s} → {t}" and r["arm"] == arm
                                        and r["method"] == m and "error" not in r) for s, t in pairs]
            means.append(f"{100 * statistics.mean(per_pair):.1f}")
        lines.append(f"| **average** | {arm} | | " + " | ".join(means) + " | |")
    if errors:
        lines += ["", f"{len(errors)} run(s) failed: " + "; ".join(f"{r['pair']} {r['method']} {r['arm']}: {r['error']}"
                                                          for r in errors[:5])]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
