"""The transfer matrix (issue 11, item 6): one method at one checkpoint, mean ± std over seeds with the count;
oracle methods and the oracle checkpoint only when asked, and labelled. Runs are stored through the
knowledge base's own recording calls (``begin_run`` / ``finish_run``) with chosen accuracies: no training."""
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from lepton.config import RunConfig
from lepton.kb import KnowledgeBase
from lepton.kb.matrix import method_label, method_options, transfer_matrix
from lepton.training.loop import RunResult

APP_TESTS = Path(__file__).resolve().parent / "app"
PAIR = ("digits", "digits-rotated")


def store(kb, method, seed, acc, last=None, oracle=None, pair=PAIR, status="completed"):
    """One finished run with target accuracy ``acc`` (label-free), ``last`` and ``oracle`` checkpoints."""
    cfg = RunConfig(pair[0], pair[1], method, epochs=1, seed=seed)
    rid = kb.begin_run(cfg.to_dict(), {})
    ck = {"selected": {"epoch": 1, "source_acc": 0.9, "target_acc": acc},
          "last": {"epoch": 1, "source_acc": 0.9, "target_acc": acc if last is None else last}}
    if oracle is not None:
        ck["oracle"] = {"epoch": 1, "source_acc": 0.9, "target_acc": oracle}
    kb.finish_run(rid, RunResult(cfg, status, "", [], checkpoints=ck), keep=())
    return rid


@pytest.fixture
def kb(tmp_path):
    """Two DANN seeds (31 % and 35 %, oracle checkpoints 60 % / 70 %), a target-only run at 82.6 %,
    a source-only run, a stopped DANN run and a DANN run on another pair."""
    kb = KnowledgeBase(tmp_path / "home")
    store(kb, "dann", 0, 0.20, oracle=0.50)  # seed 0 again below: the newer one counts
    store(kb, "dann", 0, 0.31, last=0.29, oracle=0.60)
    store(kb, "dann", 1, 0.35, last=0.33, oracle=0.70)
    store(kb, "dann", 2, 0.99, status="stopped")
    store(kb, "dann", 0, 0.50, pair=("digits-rotated", "digits"))
    store(kb, "target-only", 0, 0.826, oracle=0.83)
    store(kb, "source-only", 0, 0.25)
    return kb


def test_target_only_is_not_offered_by_default_nor_mixed_into_dann(kb):
    runs = kb.list_runs()
    assert method_options(runs) == ["dann", "source-only"]  # most completed runs first; no oracle method
    assert method_options(runs, include_oracle=True)[-1] == "target-only"
    assert method_label("target-only") == "target-only (oracle: uses target labels)"
    tm = transfer_matrix(runs, "dann")
    assert tm.mean.max().max() < 0.5 + 1e-9  # 82.6 % (target-only) and 99 % (stopped) never appear
    assert not any("82.6" in t for t in tm.text.to_numpy().ravel())
    assert not tm.oracle_method and "oracle" not in tm.caption()
    oracle = transfer_matrix(runs, "target-only")
    assert oracle.oracle_method and "(oracle: uses target labels)" in oracle.caption()
    assert oracle.text.loc[PAIR] == "82.6 ± – (1)"


def test_mean_std_and_count_over_seeds_newest_per_seed(kb):
    tm = transfer_matrix(kb.list_runs(), "dann")
    assert tm.n.loc[PAIR] == 2 and tm.duplicates == 1
    assert math.isclose(tm.mean.loc[PAIR], 0.33)
    assert math.isclose(tm.std.loc[PAIR], pd.Series([0.31, 0.35]).std(ddof=1))
    assert tm.text.loc[PAIR] == "33.0 ± 2.8 (2)"
    assert tm.text.loc[("digits-rotated", "digits")] == "50.0 ± – (1)"  # one seed: no std
    assert tm.text.loc[("digits", "digits")] == "" and tm.n.loc[("digits", "digits")] == 0
    assert tm.caption().startswith("dann, label-free checkpoint,") and "mean ± std over seeds, n = runs" in tm.caption()
    last = transfer_matrix(kb.list_runs(), "dann", "last")
    assert last.text.loc[PAIR] == "31.0 ± 2.8 (2)"


def test_oracle_checkpoint_only_when_asked(kb):
    runs = kb.list_runs()
    for ck in ("selected", "last"):
        assert not any(t.startswith(("60", "65", "70")) for t in transfer_matrix(runs, "dann", ck).text.to_numpy().ravel())
    oracle = transfer_matrix(runs, "dann", "oracle")
    assert oracle.text.loc[PAIR] == "65.0 ± 7.1 (2)"
    assert "oracle checkpoint (picked with target labels)" in oracle.caption()
    assert oracle.text.loc[("digits-rotated", "digits")] == ""  # that run has no oracle value: not counted
    with pytest.raises(ValueError, match="unknown checkpoint"):
        transfer_matrix(runs, "dann", "best")


def test_diverged_runs_are_left_out_and_counted(kb):
    runs = kb.list_runs()
    runs["diverged"] = False
    runs.loc[(runs["method"] == "dann") & runs["target_acc"].sub(0.35).abs().lt(1e-9), "diverged"] = True
    extra = runs.iloc[[0]].assign(method="dann", status="diverged", run_id="x", seed=5, target_acc=0.01,
                                  diverged=False)
    tm = transfer_matrix(pd.concat([runs, extra], ignore_index=True), "dann")
    assert tm.diverged == 2 and tm.n.loc[PAIR] == 1 and tm.text.loc[PAIR] == "31.0 ± – (1)"
    assert "2 diverged run(s) left out" in tm.caption()


def test_empty_and_unknown(tmp_path):
    runs = KnowledgeBase(tmp_path / "empty").list_runs()
    assert method_options(runs) == []
    assert transfer_matrix(runs, "dann").empty
    with pytest.raises(ValueError, match="lacks the column"):
        transfer_matrix(pd.DataFrame({"method": ["dann"]}), "dann")


# ----- the Runs page -------------------------------------------------------------------------------------
@pytest.fixture
def runs_page(kb, monkeypatch):
    if str(APP_TESTS) not in sys.path:
        sys.path.insert(0, str(APP_TESTS))
    from app_helpers import ROOT, _clear_caches
    monkeypatch.setenv("LEPTON_HOME", str(kb.home))
    monkeypatch.setenv("LEPTON_NO_WARMUP", "1")
    monkeypatch.chdir(ROOT)
    _clear_caches()
    yield
    _clear_caches()


def _heatmap(at):
    import json
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)["data"][0]


def test_runs_page_shows_one_method_and_labels_the_oracle(runs_page):
    from app_helpers import no_exception, open_page, texts
    at = open_page("runs")
    no_exception(at)
    pick = at.selectbox(key="tm_method")
    assert pick.value == "dann" and pick.options == ["dann", "source-only"]
    cells = [t for row in _heatmap(at)["text"] for t in row]
    assert "33.0 ± 2.8 (2)" in cells and not any("82.6" in t for t in cells)
    assert "dann, label-free checkpoint, target accuracy in %: mean ± std over seeds, n = runs" in texts(at)

    at.radio(key="tm_checkpoint").set_value("oracle").run()
    no_exception(at)
    assert "65.0 ± 7.1 (2)" in [t for row in _heatmap(at)["text"] for t in row]
    assert "oracle checkpoint (picked with target labels)" in texts(at)

    at.checkbox(key="tm_oracle_methods").check().run()
    pick = at.selectbox(key="tm_method")
    assert "target-only (oracle: uses target labels)" in pick.options
    pick.set_value("target-only").run()
    at.radio(key="tm_checkpoint").set_value("selected").run()
    no_exception(at)
    assert "82.6 ± – (1)" in [t for row in _heatmap(at)["text"] for t in row]
    assert "target-only (oracle: uses target labels), label-free checkpoint" in texts(at)

    at.checkbox(key="tm_oracle_methods").uncheck().run()  # the oracle method leaves: back to the default
    no_exception(at)
    assert at.selectbox(key="tm_method").value == "dann"


def test_runs_page_without_completed_runs_says_so(tmp_path, monkeypatch):
    kb = KnowledgeBase(tmp_path / "home")
    store(kb, "dann", 0, 0.3, status="stopped")
    store(kb, "target-only", 0, 0.9)
    if str(APP_TESTS) not in sys.path:
        sys.path.insert(0, str(APP_TESTS))
    from app_helpers import ROOT, _clear_caches, no_exception, open_page, texts
    monkeypatch.setenv("LEPTON_HOME", str(kb.home))
    monkeypatch.setenv("LEPTON_NO_WARMUP", "1")
    monkeypatch.chdir(ROOT)
    _clear_caches()
    at = open_page("runs")
    no_exception(at)
    assert not at.get("plotly_chart")
    assert "No completed runs for a transfer matrix yet" in texts(at)
    _clear_caches()
