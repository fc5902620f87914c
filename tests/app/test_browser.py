"""End to end in a real browser: `streamlit run app.py` + Playwright driving Debian's Chromium.

A student's path: pick digits -> digits-rotated, start a short DANN run, watch it finish, see the
accuracy chart, open the map, switch its colouring, select points; stop a second run; see both on
the Runs page. Screenshots go to a tmp folder; the train and map views are also copied to
assets/ for the README.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app_helpers import ROOT

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LONG = 300_000  # ms: a short run and the first UMAP fit on a small, busy CPU

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium); "
                              "the browser test never downloads a browser"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` headless on 127.0.0.1 with its own LEPTON_HOME; yields the base URL."""
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    env = {**os.environ, "LEPTON_HOME": str(tmp / "home"), "LEPTON_POLL_S": "0.5"}
    env.pop("LEPTON_NO_WARMUP", None)
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the app did not start:\n" + (tmp / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        yield {"url": url, "tmp": tmp}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def pw():
    """One Playwright driver for the module (the sync API allows one per thread)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(server, pw):
    profile = server["tmp"] / "chromium-profile"
    ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                args=LAUNCH_ARGS, viewport={"width": 1400, "height": 1700})
    yield ctx
    ctx.close()


def wait_idle(page, timeout=60_000):
    """Connected, script not running, no skeletons (Streamlit's own e2e harness waits the same way)."""
    from playwright.sync_api import expect
    page.wait_for_timeout(200)
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=timeout)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout)


def no_exception(page):
    n = page.get_by_test_id("stException").count()
    assert n == 0, page.get_by_test_id("stException").first.inner_text()


def shot(page, server, name: str, asset: str = None) -> Path:
    out = server["tmp"] / f"{name}.png"
    page.screenshot(path=str(out))
    if asset and os.environ.get("LEPTON_UPDATE_SCREENSHOTS") == "1":  # refresh the README's pictures
        shutil.copyfile(out, ROOT / "assets" / asset)
    return out


def pick(page, key: str, option: str):
    """Choose an option of the selectbox with widget key ``key``."""
    page.locator(f".st-key-{key} [role='combobox']").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_train_watch_and_explore(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(server["url"] + "/")
    expect(page.get_by_role("button", name="Start training")).to_be_visible(timeout=LONG)
    wait_idle(page)
    pick(page, "source", "digits")
    pick(page, "target", "digits-noisy")
    pick(page, "target", "digits-rotated")
    pick(page, "method", "dann")
    epochs = page.locator(".st-key-epochs input")
    epochs.fill("20")  # long enough (several seconds) for the 1 s poll to see epochs go by
    epochs.press("Enter")
    wait_idle(page)
    assert "epochs=20" in page.url  # the experiment lives in the query string
    no_exception(page)

    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("dann: digits → digits-rotated")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"running — \w+ · epoch ([2-9]|1\d)/20"))).to_be_visible(timeout=LONG)
    live_map = page.get_by_test_id("stPlotlyChart").filter(has_text="Feature map (PCA) at epoch").last
    expect(live_map).to_be_visible(timeout=LONG)  # the map of the latest snapshot, while it trains
    expect(page.get_by_text("completed after 20 of 20 epochs")).to_be_visible(timeout=LONG)
    wait_idle(page)
    no_exception(page)
    acc = page.get_by_test_id("stPlotlyChart").filter(has_text="Accuracy per epoch").last
    expect(acc).to_be_visible()
    expect(acc.locator(".scatterlayer .trace")).to_have_count(2)  # source and target curves
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text="Test accuracy per domain").last).to_be_visible()
    shot(page, server, "train-finished", "screenshot-train.png")

    page.get_by_role("link", name="Explore this run").click()
    expect(page.get_by_role("heading", name="Explore a run")).to_be_visible(timeout=60_000)
    wait_idle(page)
    no_exception(page)
    page.get_by_role("tab", name="Feature map").click()
    the_map = page.get_by_test_id("stPlotlyChart").filter(has_text="UMAP of the features").last
    expect(the_map).to_be_visible(timeout=LONG)
    expect(the_map.locator("canvas, .scatterlayer .trace").first).to_be_attached(timeout=60_000)
    expect(the_map.get_by_text("digits-rotated")).to_be_visible()  # legend by domain
    assert "being fitted" not in page.inner_text("body")  # the UMAP map replaced the PCA one
    no_exception(page)

    page.locator(".st-key-color_by").get_by_role("radio", name="class", exact=True).click()
    wait_idle(page)
    expect(the_map.locator(".legend .traces")).to_have_count(10, timeout=60_000)  # one entry per digit class
    expect(the_map.get_by_text("◆ target")).to_be_visible()  # marker shapes tell the domains apart
    no_exception(page)
    shot(page, server, "explore-map", "screenshot-explore.png")
    page.locator(".st-key-color_by").get_by_role("radio", name="domain", exact=True).click()
    wait_idle(page)
    expect(the_map.locator(".legend .traces")).to_have_count(2, timeout=60_000)

    # lasso a region of the map: the selected images and counts appear
    box = the_map.locator(".nsewdrag").first.bounding_box()
    cx, cy, w, h = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"], box["height"]
    page.mouse.move(cx - w * 0.45, cy - h * 0.45)
    page.mouse.down()
    for fx, fy in ((0.0, -0.45), (0.0, 0.45), (-0.45, 0.45), (-0.45, -0.44)):  # the left half
        page.mouse.move(cx + w * fx, cy + h * fy, steps=8)
    page.mouse.up()
    expect(page.get_by_text(re.compile(r"^\d+ selected$"))).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=60_000)
    no_exception(page)
    shot(page, server, "explore-selection")
    page.close()


def test_stop_a_run_and_see_the_history(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(server["url"] + "/?method=source-only&epochs=200")
    expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=LONG)
    wait_idle(page)
    page.get_by_role("button", name="Start training").click()
    # stop once the first epoch is done, so the stopped run has a checkpoint and accuracies
    expect(page.get_by_text(re.compile(r"running — \w+ · epoch ([2-9]|\d\d+)/200"))).to_be_visible(timeout=LONG)
    page.get_by_role("button", name="Stop").click(no_wait_after=True)  # a rerun may look like a navigation that never ends
    expect(page.get_by_text("stopped after")).to_be_visible(timeout=LONG)
    no_exception(page)

    page.get_by_role("link", name="Runs").click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible(timeout=60_000)
    wait_idle(page)
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text="Transfer matrix").last).to_be_visible(timeout=60_000)
    no_exception(page)
    shot(page, server, "runs")
    page.close()


def test_benchmark_pair_mnist_to_usps(server, browser):
    """With LEPTON_DATA_DIR holding the benchmark files, the same path works for mnist -> usps."""
    from playwright.sync_api import expect

    data = Path(os.environ.get("LEPTON_DATA_DIR", ""))
    if not ((data / "mnist").is_dir() and (data / "usps").is_dir()):
        pytest.skip("LEPTON_DATA_DIR has no mnist/ and usps/ files (e.g. LEPTON_DATA_DIR=../shared/data)")
    page = browser.new_page()
    page.goto(server["url"] + "/?source=mnist&target=usps&epochs=1")
    expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=LONG)
    wait_idle(page)
    assert page.locator(".st-key-source [role='combobox']").input_value() == "mnist"
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("completed after 1 of 1 epochs")).to_be_visible(timeout=2 * LONG)  # 79 steps
    no_exception(page)
    page.get_by_role("link", name="Explore this run").click()
    expect(page.get_by_role("heading", name="Explore a run")).to_be_visible(timeout=60_000)
    page.get_by_role("tab", name="Feature map").click()
    the_map = page.get_by_test_id("stPlotlyChart").filter(has_text="UMAP of the features").last
    expect(the_map).to_be_visible(timeout=2 * LONG)  # 4,000 points
    expect(the_map.get_by_text("usps")).to_be_visible()
    no_exception(page)
    shot(page, server, "mnist-usps-map")
    page.close()


def test_a_recommendation_run_from_train_to_a_users_top10(server, browser):
    """MovieLens comedy -> drama from the Train page: the bpr-mf baseline, then emcdr; Explore shows
    the user map and one user's top-10 beside the baseline's."""
    from playwright.sync_api import expect

    data = Path(os.environ.get("LEPTON_DATA_DIR", ""))
    if not (data / "movielens" / "ml-100k" / "u.data").is_file():
        pytest.skip("LEPTON_DATA_DIR has no movielens/ml-100k (e.g. LEPTON_DATA_DIR=../shared/data)")
    page = browser.new_page()
    page.goto(server["url"] + "/?source=movielens-comedy&target=movielens-drama&method=bpr-mf&epochs=1")
    expect(page.get_by_text("A recommendation pair")).to_be_visible(timeout=LONG)
    for method in ("bpr-mf", "emcdr"):
        if method != "bpr-mf":
            pick(page, "method", method)
        expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=LONG)
        wait_idle(page)
        page.get_by_role("button", name="Start training").click()
        panel = page.get_by_role("heading", name=f"{method}: movielens-comedy → movielens-drama")
        expect(panel).to_be_visible(timeout=LONG)  # this run's panel, not the one before
        expect(page.get_by_text("completed after 1 of 1 epochs")).to_be_visible(timeout=LONG)
        expect(page.get_by_text("NDCG@10, cold-start")).to_be_visible()
        expect(page.get_by_text("where each user's held-out target item ranked")).to_be_visible(timeout=60_000)
        no_exception(page)
    page.get_by_role("link", name="Explore this run").click()
    expect(page.get_by_role("heading", name="Explore a run")).to_be_visible(timeout=60_000)
    page.get_by_role("tab", name="Map").click()
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text="of the user embeddings").last).to_be_visible(
        timeout=LONG)
    page.get_by_role("tab", name="Recommendations").click()
    expect(page.get_by_text("Held-out target item")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("held-out item's rank")).to_have_count(2, timeout=60_000)  # emcdr beside bpr-mf
    no_exception(page)
    shot(page, server, "recommend", asset="screenshot-recommend.png")
    page.close()


def test_two_browsers_cannot_stop_each_others_runs(server, pw):
    """Two browser contexts (two people) on one server: B sees A's run listed to watch, read-only,
    with no Stop button; A stops its own run."""
    from playwright.sync_api import expect

    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
    try:
        a = browser.new_context(viewport={"width": 1400, "height": 1700}).new_page()
        b = browser.new_context(viewport={"width": 1400, "height": 1700}).new_page()
        a.goto(server["url"] + "/?method=source-only&epochs=200")
        expect(a.get_by_role("button", name="Start training")).to_be_enabled(timeout=LONG)
        wait_idle(a)
        a.get_by_role("button", name="Start training").click()
        expect(a.get_by_text(re.compile(r"running — \w+ · epoch \d+/200"))).to_be_visible(timeout=LONG)

        b.goto(server["url"] + "/")
        expect(b.get_by_role("button", name="Start training")).to_be_visible(timeout=LONG)
        wait_idle(b)
        others = b.get_by_text(re.compile(r"1 other run\(s\) on this server.*\(watch only\)"))
        expect(others).to_be_visible(timeout=60_000)
        expect(b.get_by_role("button", name="Stop", exact=True)).to_have_count(0)  # A's run is not B's
        others.click()
        b.get_by_role("button", name="Watch").click()
        expect(b.get_by_role("heading", name=re.compile("source-only: digits → digits-small"))).to_be_visible(
            timeout=60_000)
        expect(b.get_by_text("only that session (or the teacher) can stop it")).to_be_visible(timeout=60_000)
        expect(b.get_by_role("button", name="Stop", exact=True)).to_have_count(0)
        no_exception(b)
        shot(b, server, "watch-another-session")

        a.get_by_role("button", name="Stop").click(no_wait_after=True)
        expect(a.get_by_text("stopped after")).to_be_visible(timeout=LONG)
        no_exception(a)
    finally:
        browser.close()
