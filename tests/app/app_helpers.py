"""Helpers for the app tests (imported by conftest.py and by the test modules)."""
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the app's `ui` package

TIMEOUT = 120  # seconds per AppTest run: torch imports and first data loads are slow on small CPUs


def _clear_caches():
    import streamlit as st
    st.cache_data.clear()
    st.cache_resource.clear()


def quick_map(kb, run_id, epoch=None, method="pca", domains=None):
    """A stand-in for projection.compute_map: PCA by SVD of the stored features (no UMAP in unit tests)."""
    f = kb.load_features(run_id, epoch)
    if domains is not None:  # domain ids only
        keep = np.isin(f["domain"], domains)
        f = {**f, **{k: f[k][keep] for k in ("features", "domain", "labels", "preds", "index")}}
    x = f["features"] - f["features"].mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    xy = u[:, :2] * s[:2]
    cls, dom = f["class_names"], f["domain_names"]
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "domain": [dom[i] for i in f["domain"]], "domain_id": f["domain"],
                         "label": [cls[i] for i in f["labels"]], "pred": [cls[i] for i in f["preds"]],
                         "correct": f["labels"] == f["preds"], "row": np.arange(len(xy)), "index": f["index"],
                         "role": [f["domain_roles"][i] for i in f["domain"]],
                         "epoch": f["epoch"]})


def open_page(page: str, query: dict = None):
    """AppTest of the whole app (navigation and sidebar included) switched to ``pages/<page>.py``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.switch_page(f"pages/{page}.py")
    return at.run()


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def texts(at) -> str:
    """All markdown, captions, alerts and headers of the page as one string (for assertions)."""
    parts = []
    for root in (at, at.sidebar):
        for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title", "header"):
            parts += [str(e.value) for e in getattr(root, kind)]
    return "\n".join(parts)


def wait_for(cond, timeout=60.0, every=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(every)
    return False


MAP_TAB = ":material/scatter_plot: Feature map"  # pages/explore.py: the map is drawn only while this tab is open


def open_map(at):
    """Open the Explore page's Feature map tab (as a click on it does) and rerun."""
    at.session_state["explore_tab"] = MAP_TAB
    return at.run()
