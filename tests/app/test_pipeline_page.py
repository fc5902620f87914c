"""AppTest of the Pipeline page: defaults, stage-order errors, a (fake) pipeline job shown stage by stage."""
import time

import pytest

from app_helpers import no_exception, open_page, texts, wait_for

from lepton.training.jobs import JobManager


def fake_pipeline(domains, target, stages, epochs, seed, k, progress=None, stop_event=None, **kw):
    """A stand-in for lepton.pipeline.run_pipeline emitting the same events (no torch)."""
    from lepton.pipeline import PipelineResult, StageResult

    out = PipelineResult(list(domains), target, seed, k, "completed")
    for i, name in enumerate(stages):
        base = {"index": i, "n_stages": len(stages), "stage": name, "kind": name}
        progress({**base, "event": "stage_start", "epochs": epochs})
        progress({**base, "event": "stage_run", "run_id": f"run-{name}", "total_steps": 2})
        time.sleep(0.01)
        if name == "evaluate":
            metrics = {"rows": [{"protocol": "linear-probe", "k": k, "mean": 0.61, "std": 0.02, "values": [0.6],
                                 "draws": 1}]}
            sr = StageResult(name, "evaluate", name, None, "run-dann", "completed", metrics)
        else:
            sr = StageResult(name, name, name, f"run-{name}", None, "completed",
                             {"source_acc": 0.9, "target_acc": 0.5, "probe": {"mean": 0.55, "std": 0.01}})
        out.stages.append(sr)
        progress({**base, "event": "stage_end", "result": sr})
    progress({"event": "done", "result": out})
    return out


@pytest.fixture
def fake_pipeline_jobs(monkeypatch):
    import ui.state
    jm = JobManager(kb=False, pipeline_fn=fake_pipeline)
    monkeypatch.setattr(ui.state, "jobs", lambda: jm)
    return jm


def test_pipeline_page_defaults(fake_pipeline_jobs):
    at = open_page("pipeline")
    no_exception(at)
    assert at.multiselect(key="pl_domains").value == ["digits", "digits-noisy"]
    assert at.selectbox(key="pl_target").value == "digits-small"
    assert at.multiselect(key="pl_stages").value == ["ssl", "multitask", "dann", "evaluate"]
    assert not at.button(key="pl_start").disabled and not at.error


def test_bad_stage_order_shows_an_error_and_blocks_start(fake_pipeline_jobs):
    at = open_page("pipeline")
    at.multiselect(key="pl_stages").set_value(["dann", "ssl"]).run()
    no_exception(at)
    assert at.error and "cannot come after" in at.error[0].value and "ssl -> multitask" in at.error[0].value
    assert at.button(key="pl_start").disabled
    at.multiselect(key="pl_domains").set_value(["digits"]).run()  # ssl on one source domain
    at.multiselect(key="pl_stages").set_value(["ssl", "evaluate"]).run()
    no_exception(at)
    assert at.error and "at least" in at.error[0].value and at.button(key="pl_start").disabled


def test_start_shows_each_stage_and_its_result(fake_pipeline_jobs):
    at = open_page("pipeline")
    at.button(key="pl_start").click().run()
    no_exception(at)
    jobs = fake_pipeline_jobs.list()
    assert len(jobs) == 1 and jobs[0].kind == "pipeline"
    assert wait_for(lambda: not jobs[0].active, 30)
    at.run()
    no_exception(at)
    page = texts(at)
    for name in ("ssl", "multitask", "dann", "evaluate"):
        assert name in page
    assert "run-dann" in page and "completed" in page
    assert any(m.label == "target accuracy" and m.value == "50.0%" for m in at.metric)
    assert at.dataframe and "accuracy %" in at.dataframe[-1].value.columns
