"""The app's main job at full speed: the same short run from the CLI and from the app (driven in
headless Chromium), alternated, and the first map after the server's warm-up.

    LEPTON_DATA_DIR=../shared/data python bench/app_vs_cli.py --rounds 3 [--load] [--out bench/app_vs_cli.md]

Per round, A then B:

* A, CLI: ``python -m lepton train --source digits --target digits-small --method dann --epochs 3``;
  the process's wall time and the run's own training wall time (``wall_time_s``).
* B, app: click Start on the Train page; seconds to the first progress (a step count on the bar),
  to "completed", and the run's training wall time as stored in the knowledge base.

Then, on the same server: Explore -> Feature map of the last run: seconds to the first map (PCA, at
once) and to the UMAP map. ``--load`` runs a CPU-bound process (``while 1: pass``) beside everything.
Ratios (app / CLI) are of the medians.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN = ["--source", "digits", "--target", "digits-small", "--method", "dann", "--epochs", "3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_run(env) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "lepton", "train", *RUN, "--quiet", "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    out = json.loads(p.stdout)
    return {"process_s": wall, "train_s": out["wall_time_s"]}


def app_run(page, url, home) -> dict:
    from playwright.sync_api import expect
    from lepton.kb import KnowledgeBase
    page.goto(url + "/?" + "source=digits&target=digits-small&method=dann&epochs=3")
    expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=300_000)
    page.wait_for_timeout(500)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"step [1-9]\d*/\d+")).first.wait_for(timeout=300_000)
    first = time.perf_counter() - t0
    page.get_by_text("completed after 3 of 3 epochs").wait_for(timeout=600_000)
    done = time.perf_counter() - t0
    run = KnowledgeBase(home).list_runs().iloc[0]
    return {"first_progress_s": first, "completed_s": done, "train_s": float(run["wall_time_s"]),
            "run_id": run["run_id"]}


def first_map(page, url, run_id) -> dict:
    page.get_by_role("link", name="Explore this run").click()
    page.get_by_role("heading", name="Explore a run").wait_for(timeout=120_000)
    t0 = time.perf_counter()
    page.get_by_role("tab", name="Feature map").click()
    charts = page.get_by_test_id("stPlotlyChart")
    charts.filter(has_text="of the features at epoch").last.wait_for(timeout=300_000)
    first = time.perf_counter() - t0
    charts.filter(has_text="UMAP of the features").last.wait_for(timeout=600_000)
    return {"first_map_s": first, "umap_map_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--load", action="store_true", help="a CPU-bound process beside everything")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    home = Path(tempfile.mkdtemp(prefix="lepton-bench-"))
    env = {**os.environ, "LEPTON_HOME": str(home)}
    env.pop("LEPTON_NO_WARMUP", None)
    hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if args.load else None
    port = free_port()
    t_server = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    rows, result = [], {}
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            prof = tempfile.mkdtemp(prefix="lepton-bench-chromium-")
            ctx = p.chromium.launch_persistent_context(prof, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                       viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.goto(url)
            page.get_by_text("UMAP maps: ready").wait_for(timeout=900_000)  # the server's warm-up
            result["warm_up_s"] = time.perf_counter() - t_server
            for i in range(args.rounds):
                a = cli_run(env)
                b = app_run(page, url, home)
                rows.append({"round": i + 1, **{f"cli_{k}": v for k, v in a.items()},
                             **{f"app_{k}": v for k, v in b.items() if k != "run_id"}})
                print(rows[-1], flush=True)
            result.update(first_map(page, url, b["run_id"]))
            ctx.close()
    finally:
        server.terminate()
        server.wait(30)
        if hog is not None:
            hog.kill()
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    result.update({k: med(k) for k in rows[0] if k != "round"})
    result["ratio_completed_vs_cli_process"] = result["app_completed_s"] / result["cli_process_s"]
    result["ratio_train_app_vs_cli"] = result["app_train_s"] / result["cli_train_s"]
    load = "with a CPU-bound process beside it" if args.load else "no other load started"
    text = [f"app vs CLI, digits -> digits-small, dann, 3 epochs, {args.rounds} rounds alternated, "
            f"{os.cpu_count()} cores, {load}; medians (s)", "", "| measure | value |", "|---|---|"]
    text += [f"| {k} | {v:.2f} |" for k, v in result.items()]
    print("\n".join(text))
    if args.out:
        Path(args.out).write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
