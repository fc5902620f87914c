"""AppTest of the Runs page: history, comparison of selected runs, transfer matrix, export and delete."""
from app_helpers import no_exception, open_page, texts


def test_runs_without_runs_says_what_to_do():
    at = open_page("runs")
    no_exception(at)
    assert "No stored runs yet" in texts(at)


def test_runs_table_and_transfer_matrix(kb_home):
    at = open_page("runs")
    no_exception(at)
    table = at.dataframe[0].value
    assert list(table["method"]) == ["dann", "source-only"]
    assert set(table["status"]) == {"completed"}
    assert len(at.get("plotly_chart")) == 1  # the transfer matrix
    assert str(table["created"].dtype).startswith("datetime64") and table["created"].dt.tz is not None  # a time, not text
    assert table["run_id"].str.len().min() == len("20261204-191502-73a56c")  # whole ids


def test_runs_page_polls_while_a_run_trains_and_shows_it_once_stored(kb_home, fake_jobs):
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training.jobs import JobManager
    at = open_page("runs")
    assert len(at.dataframe[0].value) == 2
    jm = JobManager(kb=KnowledgeBase(), workers="thread")  # a real run, stored when it ends
    fake_jobs["jm"] = jm
    jid = jm.start(RunConfig("digits", "digits-inverted", "source-only", steps=200))
    at.run()  # a run is training now: the page polls (a fragment every REFRESH_S)
    no_exception(at)
    jm.wait(jid, 60)
    at.run()
    no_exception(at)
    assert len(at.dataframe[0].value) == 3 and at.dataframe[0].value["target"].iloc[0] == "digits-inverted"


def select_rows(at, rows):
    at.session_state["runs_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def test_compare_selected_runs(kb_home):
    at = select_rows(open_page("runs"), [0, 1])
    no_exception(at)
    assert "2 run(s) selected" in texts(at)
    assert len(at.get("plotly_chart")) == 2  # overlay curves + transfer matrix
    diff = at.dataframe[1].value
    assert "method" in diff.index and "source" not in diff.index  # only what differs
    assert "hparams.trade_off" in diff.index  # dann's hyper-parameter, which source-only lacks
    assert "—" in list(diff.loc["hparams.trade_off"])  # shown as absent, not hidden


def test_export_and_delete(kb_home):
    from lepton.kb import KnowledgeBase
    at = select_rows(open_page("runs"), [1])
    at.button(key="export").click().run()
    no_exception(at)
    assert at.download_button and at.download_button[0].label.startswith("Download lepton-run-")
    assert at.button(key="delete").disabled
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete").click().run()
    no_exception(at)
    assert list(KnowledgeBase(kb_home).list_runs()["method"]) == ["dann"]


def test_seed_repeats_are_grouped_with_mean_std(kb_home):
    """A second seed of the stored source-only config makes a group; ticking it compares both runs."""
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training import fit
    from lepton.training.recorder import KBRecorder

    kb = KnowledgeBase(kb_home)
    fit(RunConfig("digits", "digits-rotated", "source-only", epochs=2, batch_size=128, eval_cap=300, seed=1),
        [KBRecorder(kb, feature_cap=60, snapshot_every=1)])
    at = open_page("runs")
    no_exception(at)
    assert "Repeats over seeds" in [s.value for s in at.subheader]
    groups = at.dataframe[1].value
    assert list(groups["method"]) == ["source-only"] and list(groups["seeds"]) == ["0, 1"]
    acc = kb.list_runs().query("method == 'source-only'")["target_acc"]
    assert groups["target_acc_text"].iloc[0] == f"{100 * acc.mean():.1f} ± {100 * acc.std(ddof=1):.1f} (2)"
    at.session_state["seed_groups"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    no_exception(at)
    assert "2 run(s) selected" in texts(at)


def test_no_repeat_table_without_repeats(kb_home):
    at = open_page("runs")
    assert "Repeats over seeds" not in [s.value for s in at.subheader]
