"""Benchmark the app: time to an interactive page, server time of a cached rerun, Start -> first progress.

Usage::

    python bench/bench_app.py                 # everything (needs /usr/bin/chromium for the browser part)
    python bench/bench_app.py --no-browser    # server-side numbers only
    python bench/bench_app.py --json out.json

What is measured (goals from issue #4):

1. **open -> interactive** (browser): a fresh ``streamlit run app.py`` process; seconds from
   starting it to ``/_stcore/health``, and from ``page.goto("/")`` to an enabled "Start training"
   button (first visit, cold caches) and again on a second visit (warm caches).
2. **cached rerun** (server, goal < 300 ms): median wall time of ``AppTest.run()`` of each page
   after a first run has filled the caches. AppTest executes the page script exactly as the server
   does, without the browser round trip.
3. **Start -> first progress** (goal < 2 s): seconds from ``JobManager.start`` to the first
   progress update the UI can show (the worker entering training: status ``running`` with the step
   count) and to the first finished optimisation step; cold (first run in the process) and warm
   (domains already loaded, as in a running app). The browser part also times the click on Start
   to a visible progress bar.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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


def start_to_progress(home: Path) -> dict:
    """Seconds from JobManager.start to the first progress update and to the first step."""
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training.jobs import JobManager

    jm = JobManager(kb=KnowledgeBase(home))
    out = {}
    for label in ("cold", "warm", "warm2"):
        cfg = RunConfig("digits", "digits-rotated", "dann", epochs=30, seed=len(out))
        t0 = time.perf_counter()
        jid = jm.start(cfg)
        job = jm.get(jid)
        running = first_step = None
        while first_step is None and time.perf_counter() - t0 < 120:
            s = job.snapshot()
            if running is None and s["status"] == "running":
                running = time.perf_counter() - t0
            if s["step"] > 0:
                first_step = time.perf_counter() - t0
            time.sleep(0.005)
        jm.stop(jid)
        jm.wait(jid, 120)
        out[label] = {"to_running_s": round(running or float("nan"), 3), "to_first_step_s": round(first_step, 3)}
    return out


def cached_reruns(home: Path, repeats: int = 7) -> dict:
    """Median AppTest.run() seconds of each page once its caches are warm."""
    os.environ["LEPTON_HOME"] = str(home)
    os.environ["LEPTON_NO_WARMUP"] = "1"
    os.chdir(ROOT)
    from streamlit.testing.v1 import AppTest

    out = {}
    for page in ("train", "domains", "explore", "runs"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.switch_page(f"pages/{page}.py")
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t0)
        assert not at.exception, [e.value for e in at.exception]
        out[page] = {"first_run_s": round(first, 3), "cached_rerun_ms_median": round(1000 * statistics.median(times), 1),
                     "cached_rerun_ms_max": round(1000 * max(times), 1)}
    return out


def seed_runs(home: Path) -> None:
    """Two short stored runs so the Explore and Runs pages have something to show."""
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training.recorder import KBRecorder
    from lepton.training import fit

    kb = KnowledgeBase(home)
    if len(kb.list_runs()):
        return
    for method in ("source-only", "dann"):
        fit(RunConfig("digits", "digits-rotated", method, epochs=2), [KBRecorder(kb)])


def browser(home: Path) -> dict:
    """Fresh server: start -> healthy, goto -> interactive (cold and warm), Start click -> progress bar."""
    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LEPTON_HOME": str(home)}
    env.pop("LEPTON_NO_WARMUP", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.05)
        out["process_to_healthy_s"] = round(time.perf_counter() - t0, 2)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            for visit in ("cold", "warm"):
                page = b.new_page()
                t1 = time.perf_counter()
                page.goto(url + "/")
                expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=300_000)
                out[f"goto_to_interactive_{visit}_s"] = round(time.perf_counter() - t1, 2)
                if visit == "warm":
                    page.locator(".st-key-epochs input").fill("30")
                    page.locator(".st-key-epochs input").press("Enter")
                    page.wait_for_timeout(1500)
                    t2 = time.perf_counter()
                    page.get_by_role("button", name="Start training").click()
                    expect(page.get_by_text("step ", exact=False).first).to_be_visible(timeout=120_000)
                    out["click_start_to_progress_bar_s"] = round(time.perf_counter() - t2, 2)
                    page.get_by_role("button", name="Stop").click()
                    expect(page.get_by_text("stopped after")).to_be_visible(timeout=120_000)
                page.close()
            b.close()
        out["process_to_interactive_s"] = round(out["process_to_healthy_s"] + out["goto_to_interactive_cold_s"], 2)
    finally:
        proc.terminate()
        proc.wait(20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lepton-bench-"))
    results = {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2)}
    try:
        results["start_to_progress"] = start_to_progress(tmp / "jobs")
        seed_runs(tmp / "home")
        results["cached_rerun"] = cached_reruns(tmp / "home")
        if not args.no_browser and os.path.exists(CHROMIUM):
            results["browser"] = browser(tmp / "home")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
