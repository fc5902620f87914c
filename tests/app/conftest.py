"""Fixtures for the app tests: an isolated lepton home per test, a small stored knowledge base,
fake training and fast maps for page tests (helpers live in app_helpers.py)."""
import shutil
import sys

import pandas as pd
import pytest

from app_helpers import ROOT, _clear_caches, quick_map
from toydata import fake_fit


@pytest.fixture(autouse=True)
def app_env(tmp_path, monkeypatch):
    """Each test: its own LEPTON_HOME, no UMAP warm-up thread, fresh Streamlit caches, cwd = repo root."""
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEPTON_NO_WARMUP", "1")
    monkeypatch.chdir(ROOT)
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture(scope="session")
def stored_home(tmp_path_factory):
    """A knowledge base with two short real runs on digits -> digits-rotated (source-only and dann)."""
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training.recorder import KBRecorder
    from lepton.training import fit

    home = tmp_path_factory.mktemp("stored") / "home"
    kb = KnowledgeBase(home)
    for method in ("source-only", "dann"):
        cfg = RunConfig("digits", "digits-rotated", method, epochs=2, batch_size=128, eval_cap=300)
        fit(cfg, [KBRecorder(kb, feature_cap=60, snapshot_every=1)])
    return home


@pytest.fixture
def kb_home(stored_home, tmp_path, monkeypatch):
    """A private copy of the stored knowledge base as LEPTON_HOME (tests may delete runs)."""
    home = tmp_path / "kbcopy"
    shutil.copytree(stored_home, home)
    monkeypatch.setenv("LEPTON_HOME", str(home))
    return home


@pytest.fixture
def fast_maps(monkeypatch):
    """Patch the projection calls the Explore page makes (UMAP is tested in the core, not here)."""
    import types

    fake = types.SimpleNamespace(
        compute_map=lambda kb, run_id, epoch=None, method="umap", domains=None: quick_map(kb, run_id, epoch, method, domains),
        aligned_maps=lambda kb, run_id, epochs=None, method="umap": pd.concat(
            [quick_map(kb, run_id, e, method) for e in (epochs or kb.feature_epochs(run_id))], ignore_index=True),
        warm_up=lambda: None)
    import lepton.evaluation as ev
    monkeypatch.setattr(ev, "projection", fake, raising=False)
    monkeypatch.setitem(sys.modules, "lepton.evaluation.projection", fake)

    class InProcessMaps:  # the map process, answered at once by the patched projection
        def submit(self, kind="map", **kw):
            from lepton.kb import KnowledgeBase
            f = fake.compute_map if kind == "map" else fake.aligned_maps
            return "done", f(KnowledgeBase(), **kw)

    import ui.state
    monkeypatch.setattr(ui.state, "map_worker", lambda: InProcessMaps())
    return fake


@pytest.fixture
def fake_jobs(monkeypatch):
    """Replace the app's job manager with one whose training is fake (fast, no knowledge base)."""
    import ui.state
    from lepton.training.jobs import JobManager

    holder = {"jm": JobManager(kb=False, fit_fn=fake_fit())}
    monkeypatch.setattr(ui.state, "jobs", lambda: holder["jm"])
    return holder
