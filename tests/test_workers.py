"""Heavy work out of the caller's process: training jobs in worker processes, maps in one map process."""
import os
import signal
import time

import numpy as np

from lepton.config import RunConfig
from lepton.kb import KnowledgeBase
from lepton.training.jobs import JobManager

PAIR = ("digits", "digits-rotated")


def test_a_run_in_a_worker_process_gives_the_in_thread_result(tmp_path):
    cfg = RunConfig(*PAIR, "dann", epochs=2, eval_cap=300)
    kb = KnowledgeBase(tmp_path / "kb")
    procs, threads = JobManager(kb=kb, workers="process"), JobManager(kb=False, workers="thread")
    a, b = procs.start(cfg), threads.start(cfg)
    sa, sb = procs.wait(a, 300), threads.wait(b, 300)
    assert sa["status"] == sb["status"] == "completed", (sa["error"], sb["error"])
    assert procs.get(a).pid not in (None, os.getpid()) and threads.get(b).pid is None
    assert [r["target_acc"] for r in sa["history"]] == [r["target_acc"] for r in sb["history"]]
    res = procs.get(a).result
    assert res.run_id == sa["run_id"] and kb.get_run(res.run_id)["status"] == "completed"
    assert res.table and res.checkpoints["selected"]["target_acc"] == kb.list_runs().iloc[0]["target_acc"]


def test_stop_reaches_the_worker_process(tmp_path):
    jm = JobManager(kb=KnowledgeBase(tmp_path / "kb"), workers="process")
    j = jm.start(RunConfig(*PAIR, "source-only", epochs=500))
    t0 = time.time()
    while jm.get(j).snapshot()["epoch"] < 2 and time.time() - t0 < 120:
        time.sleep(0.05)
    jm.stop(j)
    s = jm.wait(j, 120)
    assert s["status"] == "stopped" and 1 <= len(s["history"]) < 500
    assert jm.kb.get_run(s["run_id"])["status"] == "stopped"


def test_a_crashed_worker_fails_its_job_and_nothing_else(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    jm = JobManager(kb=kb, workers="process")
    j = jm.start(RunConfig(*PAIR, "source-only", epochs=500))
    t0 = time.time()
    while jm.get(j).snapshot()["step"] < 30 and time.time() - t0 < 120:
        time.sleep(0.05)
    os.kill(jm.get(j).pid, signal.SIGKILL)  # a native crash, as far as the server can tell
    s = jm.wait(j, 60)
    assert s["status"] == "failed" and "ended unexpectedly" in s["error"]
    assert kb.get_run(s["run_id"])["status"] == "failed"  # the store stays consistent
    ok = jm.start(RunConfig(*PAIR, "source-only", epochs=1))  # the manager keeps working
    assert jm.wait(ok, 120)["status"] == "completed"


def test_bad_settings_in_a_worker_give_the_message(tmp_path):
    jm = JobManager(kb=KnowledgeBase(tmp_path / "kb"), workers="process")
    s = jm.wait(jm.start(RunConfig(*PAIR, "finetune", epochs=1, hparams={"k": 900})), 60)
    assert s["status"] == "failed" and "k=900" in s["error"] and "Traceback" not in s["error"]


def test_a_pipeline_in_a_worker_process(tmp_path):
    jm = JobManager(kb=KnowledgeBase(tmp_path / "kb"), workers="process")
    p = jm.start_pipeline(["digits", "digits-noisy"], "digits-rotated", ["multitask", "finetune", "evaluate"], 1,
                          k=2, draws=1)
    s = jm.wait(p, 300)
    assert s["status"] == "completed", s["error"]
    assert [r["status"] for r in s["stages"]] == ["completed"] * 3 and all(r["run_id"] for r in s["stages"][:2])
    assert jm.get(p).result.evaluation["rows"]


def test_the_map_process_answers_with_the_maps_of_the_core(tmp_path):
    from lepton.evaluation import projection
    from lepton.evaluation.mapworker import MapWorker
    from lepton.training import train
    kb = KnowledgeBase(tmp_path / "kb")
    rid = train(RunConfig(*PAIR, "source-only", epochs=1, eval_cap=100), kb=kb, feature_cap=50).run_id
    w = MapWorker(kb.home, warm_up=False)  # the UMAP warm-up (minutes here, twice) is the browser test's
    try:
        first = w.submit("map", run_id=rid, method="pca")
        assert first[0] in ("pending", "done")
        status, df = w.wait("map", timeout=300, run_id=rid, method="pca")
        assert status == "done"
        want = projection.compute_map(kb, rid, method="pca")
        np.testing.assert_allclose(df[["x", "y"]].to_numpy(), want[["x", "y"]].to_numpy(), atol=1e-5)
        status, msg = w.wait("map", timeout=300, run_id="no-such-run", method="pca")
        assert status == "error" and "no-such-run" in msg
        os.kill(w._proc.pid, signal.SIGKILL)
        w._proc.join(10)
        assert w.wait("map", timeout=300, run_id=rid, epoch=0, method="pca")[0] == "done"  # restarted
    finally:
        w.close()
