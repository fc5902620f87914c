"""Background jobs (lepton.training.jobs): lifecycle, stop, errors, concurrency, recording, pre-flight checks."""
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from lepton.config import RunConfig
from lepton.data import DataError
from lepton.training.jobs import JobManager, check_config, explain_error, format_seconds
from toydata import fake_fit as shared_fake_fit

CFG = RunConfig("digits", "digits-rotated", "dann", epochs=3, batch_size=128)


def fake_fit(steps_per_epoch=4, **kw):
    """The shared stand-in for lepton.training.fit (tests/toydata.py), 4 steps per epoch."""
    return shared_fake_fit(steps_per_epoch=steps_per_epoch, **kw)


def test_job_runs_to_completion_and_reports_progress():
    jm = JobManager(kb=False, fit_fn=fake_fit())
    jid = jm.start(CFG)
    snap = jm.wait(jid, timeout=10)
    assert snap["status"] == "completed" and not snap["error"]
    assert snap["step"] == snap["total"] == 12 and snap["fraction"] == 1.0
    assert [r["epoch"] for r in snap["history"]] == [1, 2, 3]
    assert snap["first_update_s"] is not None and snap["elapsed_s"] >= 0
    assert jm.get(jid).result.status == "completed"


def test_snapshot_is_a_copy():
    jm = JobManager(kb=False, fit_fn=fake_fit())
    jid = jm.start(CFG)
    jm.wait(jid, timeout=10)
    snap = jm.get(jid).snapshot()
    snap["history"].clear()
    assert len(jm.get(jid).snapshot()["history"]) == 3


def test_stop_ends_the_job_as_stopped():
    jm = JobManager(kb=False, fit_fn=fake_fit(step_s=0.05))
    jid = jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=50))
    while jm.get(jid).snapshot()["step"] < 2:
        time.sleep(0.01)
    jm.stop(jid)
    snap = jm.wait(jid, timeout=10)
    assert snap["status"] == "stopped"
    assert snap["step"] < snap["total"]


def test_only_the_owner_a_teacher_or_the_process_may_stop_a_job():
    jm = JobManager(kb=False, fit_fn=fake_fit(step_s=0.05))
    mine = jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=50), owner="alice")
    pipe = jm.start_pipeline(["digits"], "digits-rotated", "source-only", 50, owner="alice")
    assert [j.id for j in jm.owned("alice")] == [pipe, mine] and jm.owned("bob") == []
    for jid, what in ((mine, "dann: digits → digits-rotated"), (pipe, "pipeline digits → digits-rotated")):
        with pytest.raises(PermissionError, match=f"{what} was started in another browser session"):
            jm.stop(jid, by="bob")
        assert jm.get(jid).active and not jm.get(jid).stop_event.is_set()
    jm.stop(mine, by="alice")
    jm.stop(pipe, by="bob", teacher=True)
    assert jm.wait(mine, 10)["status"] == "stopped" and jm.wait(pipe, 10)["status"] == "stopped"
    anon = jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=50))  # started by the process itself
    with pytest.raises(PermissionError):
        jm.stop(anon, by="alice")
    jm.stop(anon)
    assert jm.wait(anon, 10)["status"] == "stopped"


def test_failed_run_has_a_message_not_a_traceback():
    jm = JobManager(kb=False, fit_fn=fake_fit(fail_at=3))
    snap = jm.wait(jm.start(CFG), timeout=10)
    assert snap["status"] == "failed"
    assert "nan" in snap["error"] and "Traceback" not in snap["error"]


@pytest.mark.parametrize("exc, words", [
    (DataError("missing usps.bz2 for domain usps: download it from X and put it in Y"), "Missing usps.bz2"),
    (ValueError("hyper-parameter lr=5 is out of range [1e-06, 1]"), "Invalid setting"),
    (MemoryError(), "out of memory"),
    (RuntimeError("boom"), "unexpected error"),
])
def test_exceptions_in_the_worker_become_explanations(exc, words):
    jm = JobManager(kb=False, fit_fn=fake_fit(raise_exc=exc))
    snap = jm.wait(jm.start(CFG), timeout=10)
    assert snap["status"] == "failed"
    assert words in snap["error"]
    assert words in explain_error(exc)


def test_two_jobs_at_once_and_the_limit():
    jm = JobManager(kb=False, fit_fn=fake_fit(step_s=0.05), max_active=2)
    long = RunConfig("digits", "digits-rotated", "dann", epochs=40)
    a, b = jm.start(long), jm.start(long)
    assert a != b and {j.id for j in jm.active()} == {a, b}
    with pytest.raises(ValueError, match="already training"):
        jm.start(long)
    for j in (a, b):
        jm.stop(j)
    assert jm.wait(a, 10)["status"] == jm.wait(b, 10)["status"] == "stopped"
    assert [j.id for j in jm.list()] == [b, a]  # newest first
    jm.forget(a)
    assert [j.id for j in jm.list()] == [b]


def test_start_rejects_an_invalid_config_synchronously():
    jm = JobManager(kb=False, fit_fn=fake_fit())
    with pytest.raises(ValueError, match="epochs"):
        jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=0))
    assert jm.list() == []


def test_job_registry_is_thread_safe():
    jm = JobManager(kb=False, fit_fn=fake_fit(steps_per_epoch=2, step_s=0.001), max_active=100)
    ids, lock = [], threading.Lock()

    def go():
        for _ in range(5):
            jid = jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=1))
            with lock:
                ids.append(jid)

    threads = [threading.Thread(target=go) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(ids)) == 20
    assert all(jm.wait(j, 10)["status"] == "completed" for j in ids)


def test_real_run_is_recorded_in_the_knowledge_base(tmp_path):
    kb_mod = pytest.importorskip("lepton.kb")
    kb = kb_mod.KnowledgeBase(tmp_path / "home")
    jm = JobManager(kb=kb)
    t0 = time.time()
    jid = jm.start(RunConfig("digits", "digits-rotated", "source-only", epochs=1, batch_size=128, eval_cap=200))
    snap = jm.wait(jid, timeout=300)
    assert snap["status"] == "completed", snap["error"]
    assert snap["run_id"] and time.time() - t0 < 300
    runs = kb.list_runs()
    row = runs[runs.run_id == snap["run_id"]].iloc[0]
    assert row["status"] == "completed" and np.isfinite(row["target_acc"])
    assert jm.get(jid).result.states == {}  # weights live in the knowledge base, not in memory twice


def test_real_run_stopped_is_stored_as_stopped(tmp_path):
    kb_mod = pytest.importorskip("lepton.kb")
    kb = kb_mod.KnowledgeBase(tmp_path / "home")
    jm = JobManager(kb=kb)
    jid = jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=200, batch_size=32, eval_cap=200))
    deadline = time.time() + 120
    while jm.get(jid).snapshot()["step"] < 1 and time.time() < deadline:
        time.sleep(0.05)
    jm.stop(jid)
    snap = jm.wait(jid, timeout=120)
    assert snap["status"] == "stopped"
    runs = kb.list_runs()
    assert runs[runs.run_id == snap["run_id"]].iloc[0]["status"] == "stopped"


# ----------------------------------------------------------------------------- pre-flight checks

def levels(problems):
    return [p["level"] for p in problems]


def test_check_config_accepts_a_good_choice():
    assert "error" not in levels(check_config(CFG))


def test_check_config_explains_same_domain():
    probs = check_config(RunConfig("digits", "digits", "dann"))
    assert "warning" in levels(probs) and "same domain" in probs[0]["message"]


def test_check_config_explains_no_shared_classes(tmp_path):
    from PIL import Image

    from lepton.data.custom import register_custom
    for cls in ("cat", "dog"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype(np.uint8)).save(
                tmp_path / "pets" / cls / f"{i}.png")
    register_custom("pets-test", tmp_path / "pets")
    probs = check_config(RunConfig("digits", "pets-test", "dann"))
    assert levels(probs) == ["error"] and "no classes are shared" in probs[0]["message"].lower()


def test_check_config_explains_missing_target_labels_for_finetune():
    probs = check_config(RunConfig("digits", "digits-rotated", "finetune", hparams={"k": 1000}))
    assert "error" in levels(probs)
    assert "labelled target examples per class" in probs[-1]["message"]


def test_check_config_marks_the_oracle():
    probs = check_config(RunConfig("digits", "digits-rotated", "target-only"))
    assert set(levels(probs)) == {"info"} and any("oracle" in p["message"] for p in probs)
    assert any("training budget" in p["message"].lower() for p in probs)


@pytest.mark.parametrize("cfg, words", [
    (RunConfig("digits", "digits-rotated", "dann", hparams={"lr": 50.0}), "lr"),
    (RunConfig("digits", "digits-rotated", "no-such-method"), "unknown method"),
    (RunConfig("digits", "no-such-domain", "dann"), "unknown domain"),
    (RunConfig("digits", "digits-rotated", "dann", device="cuda:99"), "cuda"),
])
def test_check_config_explains_bad_settings(cfg, words):
    probs = check_config(cfg)
    assert levels(probs) == ["error"] and words in probs[0]["message"].lower()


def test_format_seconds():
    assert format_seconds(None) == "-"
    assert format_seconds(42.4) == "42 s"
    assert format_seconds(65) == "1 min 05 s"


def test_jobs_module_does_not_import_streamlit():
    code = "import sys, lepton.training.jobs, lepton.data.user_domains; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_init_from_without_a_knowledge_base_is_explained():
    jm = JobManager(kb=False, fit_fn=fake_fit())
    snap = jm.wait(jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=1, init_from="20260101-x")), 10)
    assert snap["status"] == "failed" and "knowledge base" in snap["error"]


def test_init_from_a_stored_run_reuses_its_encoder(tmp_path):
    kb_mod = pytest.importorskip("lepton.kb")
    kb = kb_mod.KnowledgeBase(tmp_path / "home")
    jm = JobManager(kb=kb)
    first = jm.wait(jm.start(RunConfig("digits", "digits-rotated", "source-only", epochs=1, eval_cap=200)), 300)
    second = jm.wait(jm.start(RunConfig("digits", "digits-rotated", "dann", epochs=1, eval_cap=200,
                                        init_from=first["run_id"])), 300)
    assert second["status"] == "completed", second["error"]
    runs = kb.list_runs().set_index("run_id")
    assert runs.loc[second["run_id"], "parent"] == first["run_id"]


# ----- pipeline jobs ------------------------------------------------------------------------------
def test_pipeline_job_runs_stages_in_order_with_run_ids(tmp_path):
    """A real tiny pipeline (digits + digits-noisy -> digits-rotated) as a background job."""
    import torch
    kb_mod = pytest.importorskip("lepton.kb")
    kb = kb_mod.KnowledgeBase(tmp_path / "home")
    jm = JobManager(kb=kb)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        jid = jm.start_pipeline(["digits", "digits-noisy"], "digits-rotated", ["ssl", "dann", "evaluate:adapt_steps=5"],
                                epochs_per_stage=1, seed=0, k=2, draws=2, batch_size=128, eval_cap=200)
        snap = jm.wait(jid, 600)
    finally:
        torch.set_num_threads(n)
    assert snap["kind"] == "pipeline" and snap["status"] == "completed", snap["error"]
    rows = snap["stages"]
    assert [r["name"] for r in rows] == ["ssl", "dann", "evaluate"]
    assert all(r["status"] == "completed" and r["wall_time_s"] is not None for r in rows)
    assert rows[0]["run_id"] and rows[1]["run_id"] and rows[1]["parent"] == rows[0]["run_id"]
    assert rows[2]["parent"] == rows[1]["run_id"] and rows[2]["metrics"]["rows"]
    assert 0 <= rows[1]["metrics"]["target_acc"] <= 1 and snap["fraction"] == 1.0
    assert set(kb.list_runs()["run_id"]) >= {rows[0]["run_id"], rows[1]["run_id"]}
    assert jm.get(jid).result.status == "completed"


def _fake_pipeline(hold: threading.Event = None):
    """A stand-in for run_pipeline emitting the same events (no torch), optionally waiting on ``hold``."""
    from lepton.pipeline import PipelineResult, StageResult

    def run(domains, target, stages, epochs, seed, k, progress=None, stop_event=None, **kw):
        out = PipelineResult(list(domains), target, seed, k, "completed")
        for i, name in enumerate(stages):
            base = {"index": i, "n_stages": len(stages), "stage": name, "kind": name}
            if stop_event.is_set():
                out.status = "stopped"
                break
            progress({**base, "event": "stage_start", "epochs": epochs})
            progress({**base, "event": "stage_run", "run_id": f"r{i}", "total_steps": 2})
            if hold is not None:
                hold.wait(10)
            status = "stopped" if stop_event.is_set() else "completed"
            sr = StageResult(name, name, name, f"r{i}", None, status, {"target_acc": 0.5})
            out.stages.append(sr)
            progress({**base, "event": "stage_end", "result": sr})
            if status != "completed":
                out.status = status
                break
        progress({"event": "done", "result": out})
        return out
    return run


def test_pipeline_job_stop_marks_the_rest_not_run():
    hold = threading.Event()
    jm = JobManager(kb=False, pipeline_fn=_fake_pipeline(hold))
    jid = jm.start_pipeline(["digits", "digits-noisy"], "digits-rotated", ["ssl", "dann", "evaluate"], 1)
    assert wait_until(lambda: jm.get(jid).snapshot()["stages"][0]["status"] == "running")
    jm.stop(jid)
    hold.set()
    snap = jm.wait(jid, 10)
    assert snap["status"] == "stopped"
    assert [r["status"] for r in snap["stages"]] == ["stopped", "not run", "not run"]


@pytest.mark.parametrize("stages, words", [(["dann", "ssl"], "cannot come after"),
                                           (["ssl", "nope"], "unknown stage")])
def test_pipeline_bad_stages_fail_before_any_thread(stages, words):
    jm = JobManager(kb=False, pipeline_fn=_fake_pipeline())
    before = threading.active_count()
    with pytest.raises((ValueError, KeyError), match=words):
        jm.start_pipeline(["digits", "digits-noisy"], "digits-rotated", stages, 1)
    assert jm.list() == [] and threading.active_count() == before
    from lepton.training.jobs import check_pipeline
    probs = check_pipeline(["digits", "digits-noisy"], "digits-rotated", stages)
    assert [p["level"] for p in probs] == ["error"] and words in probs[0]["message"].lower()
    assert "evaluate" in probs[0]["message"]  # the valid stages / the order are named
    assert check_pipeline(["digits", "digits-noisy"], "digits-rotated", ["ssl", "dann", "evaluate"]) == []


def wait_until(cond, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False
