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
