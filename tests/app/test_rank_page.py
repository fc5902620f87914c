"""The "Transfer from?" page (which stored model will transfer best to a labelled target) and the map
process's ``rank`` requests behind it."""
import json
import math

import pytest

from app_helpers import no_exception, open_page, texts

TARGET = "digits-inverted"  # labelled, image, not the stored runs' own target


class InProcessRank:
    """The map process, answering ``rank`` requests in this process (once per question, as it caches);
    ``hold`` answers pending until set to False."""

    ready = None

    def __init__(self):
        self.asked, self.answers, self.hold = [], {}, False

    def submit(self, kind="map", **kw):
        from lepton.evaluation.transferability import rank_encoders
        from lepton.kb import KnowledgeBase
        assert kind == "rank", kind
        self.asked.append(kw)
        if self.hold:
            return "pending", None
        key = json.dumps(kw, sort_keys=True)
        if key not in self.answers:
            try:
                self.answers[key] = ("done", rank_encoders(KnowledgeBase(), **kw))
            except ValueError as e:  # DataError too, as the map process answers
                self.answers[key] = ("error", str(e))
        return self.answers[key]


@pytest.fixture
def ranks(monkeypatch):
    import ui.state
    worker = InProcessRank()
    monkeypatch.setattr(ui.state, "map_worker", lambda: worker)
    return worker


def _stored_ids():
    from lepton.kb import KnowledgeBase
    return list(KnowledgeBase().list_runs()["run_id"])


def test_without_runs_the_page_says_what_to_train(ranks):
    at = open_page("rank")
    no_exception(at)
    assert "No stored models yet" in texts(at) and "digits → digits-rotated" in texts(at)
    assert not ranks.asked  # nothing to score, nothing asked


def test_the_page_ranks_both_stored_runs_and_the_untrained_floor(kb_home, ranks):
    at = open_page("rank")
    no_exception(at)
    at.selectbox(key="rank_target").set_value(TARGET).run()
    no_exception(at)
    ids = _stored_ids()
    assert ranks.asked[-1] == {"target": TARGET, "runs": ids}  # the run list is part of the question
    table = at.dataframe[0].value
    assert set(table["run id"]) == set(ids) | {"untrained"} and len(table) == 3
    for col in ("LogME", "LEEP", "H-score"):
        assert all(math.isfinite(v) for v in table[col])
    assert list(table["LogME"]) == sorted(table["LogME"], reverse=True)  # best LogME first
    assert set(table["method"]) == {"source-only", "dann", "none"} and (table["n"] > 0).all()
    fig = str(at.get("plotly_chart")[0].proto)
    assert "untrained network (the floor)" in fig and "untrained floor" in fig and "LogME" in fig
    assert all(i[-6:] in fig for i in ids)
    buttons = [b.key for b in at.button if b.key and b.key.startswith("finetune_")]
    assert sorted(buttons) == sorted(f"finetune_{i}" for i in ids)  # one per stored run, none for the floor

    at.segmented_control(key="rank_score").set_value("leep").run()
    no_exception(at)
    table = at.dataframe[0].value
    assert list(table["LEEP"]) == sorted(table["LEEP"], reverse=True)
    assert f"LEEP of each stored model on {TARGET}" in str(at.get("plotly_chart")[0].proto)


def test_a_waiting_answer_shows_progress_then_the_ranking(kb_home, ranks):
    ranks.hold = True
    at = open_page("rank", {"rank_target": TARGET})
    no_exception(at)
    assert "Scoring 2 stored model(s)" in texts(at) and not at.dataframe
    ranks.hold = False
    at.run()
    no_exception(at)
    assert len(at.dataframe[0].value) == 3


def test_a_text_target_is_an_error_not_a_traceback(kb_home, ranks, data_dir):
    at = open_page("rank", {"rank_target": "books"})
    no_exception(at)
    assert at.error and "text domain" in at.error[0].value
    assert not at.dataframe


def test_no_run_of_the_targets_modality_is_an_error_that_points_to_train(kb_home, ranks):
    at = open_page("rank", {"rank_target": "fsdd-george"})  # audio; the stored runs are images
    no_exception(at)
    assert at.error and "no completed audio run" in at.error[0].value


def test_runs_whose_encoder_cannot_take_the_targets_inputs_are_left_out_with_the_reason(kb_home, ranks):
    """digits-colored is RGB: the stored gray digits runs' encoders take one channel, so they are left
    out (a fine-tuning run from them would be refused); a run trained on digits-colored is ranked."""
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training import train
    gray = _stored_ids()
    colour = train(RunConfig("digits-colored", "digits-rotated", "source-only", epochs=1, eval_cap=100),
                   kb=KnowledgeBase()).run_id
    at = open_page("rank", {"rank_target": "digits-colored"})
    no_exception(at)
    assert set(at.dataframe[0].value["run id"]) == {colour, "untrained"}
    left_out = [c.value for c in at.caption if "Left out" in c.value]
    assert len(left_out) == 2 and all("1 channel inputs" in c and "3 channels" in c for c in left_out)
    assert all(sum(g[-6:] in c for c in left_out) == 1 for g in gray)


def test_the_finetune_button_fills_the_train_page(kb_home, ranks, fake_jobs):
    at = open_page("rank", {"rank_target": TARGET})
    no_exception(at)
    rid = next(i for i in _stored_ids() if at.dataframe[0].value.set_index("run id").loc[i, "method"] == "dann")
    at.button(key=f"finetune_{rid}").click().run()
    no_exception(at)
    for _ in range(2):  # it lands on Train, and the values stay on the next rerun
        assert at.title[0].value == "Train a model across a domain shift"
        assert at.selectbox(key="source").value == "digits" and at.selectbox(key="target").value == TARGET
        assert at.selectbox(key="method").value == "finetune"
        assert at.selectbox(key="init_from").value == rid
        assert at.number_input(key="hp_finetune_pretrain_fraction").value == 0.0
        assert not at.error
        at.switch_page("pages/train.py").run()  # AppTest reruns the page it was pointed at, not the one switched to
        no_exception(at)


def test_the_map_process_answers_a_rank_request(kb_home):
    from lepton.evaluation.mapworker import MapWorker
    ids = _stored_ids()
    w = MapWorker(kb_home, warm_up=False)
    try:
        status, df = w.wait("rank", timeout=120, target=TARGET, runs=ids, cap=300)
        assert status == "done", df
        assert set(df["run_id"]) == set(ids) | {"untrained"} and (df["n"] == 300).all()
        assert list(df["logme"]) == sorted(df["logme"], reverse=True)
        status, msg = w.wait("rank", timeout=60, target=TARGET, runs=[])
        assert status == "error" and "no completed image run" in msg and "train one first" in msg
    finally:
        w.close()
