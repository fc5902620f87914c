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


def quick_map(kb, run_id, epoch=None, method="pca"):
    """A stand-in for projection.compute_map: PCA by SVD of the stored features (no UMAP in unit tests)."""
    f = kb.load_features(run_id, epoch)
    x = f["features"] - f["features"].mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    xy = u[:, :2] * s[:2]
    cls, dom = f["class_names"], f["domain_names"]
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "domain": [dom[i] for i in f["domain"]],
                         "label": [cls[i] for i in f["labels"]], "pred": [cls[i] for i in f["preds"]],
                         "correct": f["labels"] == f["preds"], "row": np.arange(len(xy)), "index": f["index"],
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


def fake_fit(step_s=0.01, steps_per_epoch=3, raise_exc=None):
    """A stand-in for lepton.training.fit driving the callbacks like the real loop (no torch)."""
    from types import SimpleNamespace

    from lepton.training.loop import RunResult

    def fit(config, callbacks=(), stop_event=None, data_dir=None, init_state=None):
        if raise_exc is not None:
            raise raise_exc
        run = SimpleNamespace(config=config, total_steps=steps_per_epoch * config.epochs,
                              steps_per_epoch=steps_per_epoch, history=[])
        for cb in callbacks:
            cb.on_run_start(run)
        status, step = "completed", 0
        for epoch in range(1, config.epochs + 1):
            for _ in range(steps_per_epoch):
                if stop_event is not None and stop_event.is_set():
                    status = "stopped"
                    break
                step += 1
                time.sleep(step_s)
                for cb in callbacks:
                    cb.on_step_end(run, step, epoch, {"cls": 1.0 / step, "domain": 0.69})
            if status == "stopped":
                break
            row = {"epoch": epoch, "source_acc": 0.6 + 0.05 * epoch, "target_acc": 0.3 + 0.05 * epoch,
                   "losses": {"cls": 1.0 / epoch, "domain": 0.69}}
            run.history.append(row)
            for cb in callbacks:
                cb.on_epoch_end(run, epoch, row)
        table = [{"domain": config.source, "role": "source", "split": "test", "checkpoint": "selected",
                  "accuracy": 0.7, "n": 540},
                 {"domain": config.target, "role": "target", "split": "test", "checkpoint": "selected",
                  "accuracy": 0.4, "n": 540}]
        result = RunResult(config, status, "", run.history, table=table)
        for cb in callbacks:
            cb.on_run_end(run, result)
        return result

    return fit
