"""Shared fixtures: real data folder, an isolated knowledge-base home, seeded tiny domains."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests read the real data through LEPTON_DATA_DIR (CI sets it); default to ../shared/data.
os.environ.setdefault("LEPTON_DATA_DIR", str(SHARED_DATA))
# Each test has its own LEPTON_HOME, and the map process and `lepton map` keep numba's compiled
# UMAP code under it: one cache for the session's processes compiles UMAP once, not once per home
# (about 30 s each on this 2-core machine). A cache only: numba checks it against the source files.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(__import__("tempfile").gettempdir(),
                                                      f"lepton-tests-numba-cache-{os.getuid()}"))


def pytest_configure(config):
    # Tests use tiny models: one intra-op thread is faster than two fighting over a busy machine.
    import torch
    torch.set_num_threads(1)
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "gpu: needs a CUDA device")
    config.addinivalue_line("markers", "browser: drives Chromium against a running app")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """OpenMP's thread count is per calling thread: set it again for each test (worker threads set theirs)."""
    import torch
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own knowledge base so nothing touches the user's."""
    home = tmp_path_factory.mktemp("lepton_home")
    monkeypatch.setenv("LEPTON_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = Path(os.environ["LEPTON_DATA_DIR"])
    if not (d / "mnist").exists():
        pytest.skip(f"benchmark data folder {d} is missing; set LEPTON_DATA_DIR=../shared/data")
    return d


@pytest.fixture(scope="module")
def prep_cache(tmp_path_factory):
    """A preparation cache folder for one test module."""
    return tmp_path_factory.mktemp("prepared")


@pytest.fixture
def shared_prep_cache(prep_cache, monkeypatch):
    """Point ``LEPTON_CACHE_DIR`` at the module's cache, so data a module prepares (TF-IDF pairs,
    spectrograms) is built once per module, not per test; use with ``pytestmark``."""
    monkeypatch.setenv("LEPTON_CACHE_DIR", str(prep_cache))
