"""Knowledge base: recording from the CLI, reading back, transfer, crashes, concurrency, bad input."""
import errno
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lepton.cli import main
from lepton.config import RunConfig
from lepton.kb import KBError, KnowledgeBase, LIST_COLUMNS, SCHEMA_VERSION, RunFileError, UnknownRunError
from lepton.training.recorder import KBRecorder
from lepton.kb import files as kb_files
from lepton.kb import procs
from lepton.data.sampling import stratified_sample
from lepton.training import Callback, fit

REPO = Path(__file__).resolve().parents[1]
PAIR = ["--source", "digits", "--target", "digits-rotated"]


def _train_cli(capsys, *extra):
    assert main(["train", *PAIR, "--quiet", *extra]) == 0
    out = capsys.readouterr().out
    m = re.search(r"run id: (\S+)\s+knowledge base: (.+)", out)
    assert m, f"the CLI did not print the run id and the knowledge base: {out!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Two CLI runs digits -> digits-rotated (source-only, dann), 4 epochs, seed 0."""
    import contextlib
    import io
    home = tmp_path_factory.mktemp("kb_cli")
    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEPTON_HOME", str(home))
        for method in ("source-only", "dann"):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main(["train", *PAIR, "--method", method, "--epochs", "4", "--seed", "0", "--quiet"]) == 0
            m = re.search(r"run id: (\S+)\s+knowledge base: (.+)", buf.getvalue())
            assert m and Path(m.group(2).strip()) == home, buf.getvalue()
            ids[method] = m.group(1)
    return home, ids


def _map_gap(df):
    """Mean distance between same-class source and target centroids, over the map's RMS spread."""
    xy = df[["x", "y"]].to_numpy(np.float64)
    spread = np.sqrt(((xy - xy.mean(0)) ** 2).sum(1).mean())
    d = [np.linalg.norm(xy[(df.label_id == c) & (df.domain_id == 0)].mean(0)
                        - xy[(df.label_id == c) & (df.domain_id == 1)].mean(0)) for c in sorted(df.label_id.unique())]
    return float(np.mean(d) / spread)


def test_cli_runs_are_listed_with_accuracies_and_dann_maps_closer(cli_runs, capsys, monkeypatch):
    home, ids = cli_runs
    monkeypatch.setenv("LEPTON_HOME", str(home))
    df = KnowledgeBase(home).list_runs()
    assert list(df.columns) == LIST_COLUMNS + ["diverged"]
    assert set(df.run_id) == set(ids.values())
    for method, rid in ids.items():
        r = df.set_index("run_id").loc[rid]
        assert r.status == "completed" and r.method == method and r.epochs == 4 and r.seed == 0
        for c in ("source_acc", "target_acc", "target_acc_last", "target_acc_oracle"):
            assert 0.0 < r[c] <= 1.0, (method, c, r[c])
        assert r.wall_time_s > 0
    assert main(["kb", "list"]) == 0
    out = capsys.readouterr().out
    assert str(home) in out and all(rid in out for rid in ids.values())
    assert len(re.findall(r"\d+\.\d%", out)) >= 8

    from lepton.evaluation.projection import compute_map
    gaps = {m: _map_gap(compute_map(KnowledgeBase(home), rid, method="pca")) for m, rid in ids.items()}
    assert gaps["dann"] < 0.8 * gaps["source-only"], gaps


def test_map_command_writes_csv(cli_runs, tmp_path, monkeypatch, capsys):
    home, ids = cli_runs
    monkeypatch.setenv("LEPTON_HOME", str(home))
    out = tmp_path / "coords.csv"
    assert main(["map", ids["dann"], "--method", "pca", "--epoch", "0", "--out", str(out)]) == 0
    import pandas as pd
    df = pd.read_csv(out)
    assert {"x", "y", "domain", "label", "pred", "correct", "row", "index", "epoch"} <= set(df.columns)
    assert len(df) == 2 * 540 and (df.epoch == 0).all() and sorted(df.row) == list(range(len(df)))
    assert set(df.domain) == {"digits", "digits-rotated"}


def test_stored_run_reads_back(cli_runs):
    home, ids = cli_runs
    kb = KnowledgeBase(home)
    rid = ids["dann"]
    run = kb.get_run(rid)
    assert run["status"] == "completed" and run["parent"] is None and Path(run["run_dir"]).is_dir()
    assert run["config"]["method"] == "dann" and run["config"]["epochs"] == 4
    s = run["summary"]
    for key in ("checkpoints", "table", "per_class", "confusion", "harmonisation", "environment"):
        assert s[key], key
    assert {"torch", "numpy", "device"} <= set(s["environment"]) and len(s["confusion"]) == 10
    hist = kb.history(rid)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4] and all("target_acc" in h for h in hist)
    assert kb.feature_epochs(rid) == [0, 1, 2, 3, 4]  # snapshot_every = max(1, 4 // 5)

    f = kb.load_features(rid)
    n = len(f["labels"])
    assert f["epoch"] == 4 and f["features"].shape == (n, 128) and f["features"].dtype == np.float32
    for k in ("labels", "preds", "domain", "index"):
        assert f[k].dtype == np.int64 and f[k].shape == (n,)
    assert f["domain_names"] == ["digits", "digits-rotated"] and len(f["class_names"]) == 10
    # the stored indices point at the harmonised test rows whose labels were stored
    from lepton.data import load_domain
    from lepton.data.pairing import harmonise
    doms, _ = harmonise([load_domain("digits"), load_domain("digits-rotated")])
    for i, d in enumerate(doms):
        m = f["domain"] == i
        np.testing.assert_array_equal(d.y_test[f["index"][m]], f["labels"][m])

    # the stored selected checkpoint reproduces the recorded target accuracy
    from lepton.evaluation.metrics import accuracy, batched
    from lepton.training import plan
    prep = plan(RunConfig.from_dict(run["config"]))
    prep.method.load_state_dict(kb.load_state(rid, "selected"))
    acc = accuracy(doms[1].y_test, batched(prep.method.predict, doms[1].x_test).argmax(1))
    assert acc == pytest.approx(s["checkpoints"]["selected"]["target_acc"], abs=1e-6)


def test_init_from_loads_the_encoder_and_records_the_parent(cli_runs, capsys, monkeypatch):
    home, ids = cli_runs
    monkeypatch.setenv("LEPTON_HOME", str(home))
    parent = ids["dann"]
    child = _train_cli(capsys, "--method", "source-only", "--epochs", "1", "--init-from", parent[:-2])
    kb = KnowledgeBase(home)
    run = kb.get_run(child)
    assert run["parent"] == parent and run["config"]["init_from"] == parent
    assert kb.list_runs().set_index("run_id").loc[child, "parent"] == parent
    # epoch 0 of the child = the parent's selected encoder on the same sampled rows
    sel = kb.get_run(parent)["summary"]["checkpoints"]["selected"]["epoch"]
    np.testing.assert_allclose(kb.load_features(child, 0)["features"], kb.load_features(parent, sel)["features"],
                               atol=1e-5)
    kb.delete_run(child)


def test_kb_cli_show_export_delete(cli_runs, tmp_path, monkeypatch, capsys):
    home, ids = cli_runs
    monkeypatch.setenv("LEPTON_HOME", str(home))
    rid = _train_cli(capsys, "--method", "source-only", "--epochs", "1", "--seed", "3")
    assert main(["kb", "show", rid]) == 0
    out = capsys.readouterr().out
    assert "status: completed" in out and "checkpoint selected" in out and '"seed": 3' in out
    z = tmp_path / "run.zip"
    assert main(["kb", "export", rid, "--out", str(z)]) == 0
    with zipfile.ZipFile(z) as zf:
        names = set(zf.namelist())
    assert {f"{rid}/run.json", f"{rid}/summary.json", f"{rid}/checkpoints/selected.safetensors",
            f"{rid}/features/epoch_0000.npz"} <= names
    assert main(["kb", "delete", rid]) == 0
    capsys.readouterr()
    assert not (home / "runs" / rid).exists() and rid not in set(KnowledgeBase(home).list_runs().run_id)
    assert main(["kb", "show", rid]) == 2
    assert "python -m lepton kb list" in capsys.readouterr().err
    # the export brings the run back when unzipped into runs/ (re-indexed on open)
    with zipfile.ZipFile(z) as zf:
        zf.extractall(home / "runs")
    old = time.time() - 3600
    os.utime(home / "runs" / rid, (old, old))
    with pytest.warns(UserWarning, match="re-indexed as completed"):
        kb = KnowledgeBase(home)
    assert kb.get_run(rid)["status"] == "completed"
    kb.delete_run(rid)


def test_train_no_store_records_nothing(capsys, _isolated_home):
    assert main(["train", *PAIR, "--epochs", "1", "--quiet", "--no-store"]) == 0
    assert "run id" not in capsys.readouterr().out
    assert KnowledgeBase(_isolated_home).list_runs().empty


def test_unknown_run_id_explains_how_to_list(capsys):
    kb = KnowledgeBase()
    for call in (kb.get_run, kb.history, kb.load_state, kb.delete_run, kb.feature_epochs):
        with pytest.raises(UnknownRunError, match="python -m lepton kb list"):
            call("20990101-000000-abcdef")
    assert main(["train", *PAIR, "--epochs", "1", "--init-from", "nope"]) == 2
    assert "kb list" in capsys.readouterr().err


def _record(kb, method="source-only", epochs=1, **kw):
    rec = KBRecorder(kb, **kw)
    result = fit(RunConfig("digits", "digits-rotated", method, epochs=epochs), [rec])
    return rec.run_id, result


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A knowledge base holding two finished 1-epoch runs, recorded once and copied per test."""
    home = tmp_path_factory.mktemp("kb_template")
    kb = KnowledgeBase(home)
    ids = [_record(kb)[0], _record(kb, "dann")[0]]
    return home, ids


def _clone(template, dest):
    """A private copy of the template knowledge base (the index is closed, so copying is safe)."""
    import shutil
    shutil.copytree(template[0], dest, dirs_exist_ok=True)
    return KnowledgeBase(dest), list(template[1])


def _tmp_files(home):
    return [p for p in Path(home).rglob("*") if p.name.startswith(kb_files.TMP_PREFIX)]


@pytest.mark.parametrize("fail_on", ["history.json", "selected.safetensors"])
def test_full_disk_marks_the_run_failed_and_keeps_others(monkeypatch, fail_on, template, tmp_path):
    kb, (good, other) = _clone(template, tmp_path)
    real = kb_files._write_payload

    def full_disk(fh, data):
        if fail_on in Path(fh.name).name:
            fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, data)

    monkeypatch.setattr(kb_files, "_write_payload", full_disk)
    with pytest.raises(KBError, match="No space left on device"):
        _record(kb, epochs=2)
    monkeypatch.setattr(kb_files, "_write_payload", real)
    df = KnowledgeBase(kb.home).list_runs().set_index("run_id")
    bad = [r for r in df.index if r not in (good, other)]
    assert len(bad) == 1 and df.loc[bad[0], "status"] == "failed"
    assert "No space left on device" in df.loc[bad[0], "error"] and "free some disk space" in df.loc[bad[0], "error"]
    assert not _tmp_files(kb.home)
    assert df.loc[good, "status"] == "completed" and kb.load_state(good) and kb.load_features(good)["epoch"] == 1


def test_stopped_run_is_recorded_with_its_last_snapshot():
    stop = threading.Event()

    class StopAfter2(Callback):
        def on_epoch_end(self, run, epoch, metrics):
            if epoch == 2:
                stop.set()

    kb = KnowledgeBase()
    rec = KBRecorder(kb, snapshot_every=5)
    res = fit(RunConfig("digits", "digits-rotated", "source-only", epochs=10), [StopAfter2(), rec], stop_event=stop)
    assert res.status == "stopped"
    run = kb.get_run(rec.run_id)
    assert run["status"] == "stopped" and run["epochs_done"] == 2
    assert kb.feature_epochs(rec.run_id) == [0, 2]


def _spawn(home, *args):
    env = {**os.environ, "LEPTON_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "lepton", "train", *PAIR, "--quiet", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"the training process ended early: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the training process")


@pytest.mark.slow
def test_sigkill_mid_run_is_found_failed_and_others_stay_intact(template, tmp_path):
    kb, (good, _) = _clone(template, tmp_path)
    proc = _spawn(tmp_path, "--epochs", "500", "--method", "dann")
    try:
        def running():
            df = KnowledgeBase(tmp_path).list_runs()
            r = df[(df.status == "running") & (df.epochs_done >= 1)]
            return r.run_id.iloc[0] if len(r) else None
        rid = _wait_for(running, proc)
        assert KnowledgeBase(tmp_path).get_run(rid)["pid"] == proc.pid
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    kb2 = KnowledgeBase(tmp_path)
    run = kb2.get_run(rid)
    assert run["status"] == "failed" and "killed or crashed" in run["error"] and str(proc.pid) in run["error"]
    assert any(rid in m for m in kb2.repairs)
    assert len(kb2.history(rid)) >= 1  # what it wrote before dying is still readable
    assert kb2.get_run(good)["status"] == "completed" and kb2.load_state(good)
    with sqlite3.connect(kb2.db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_two_writer_processes_and_a_reader(tmp_path):
    kb = KnowledgeBase(tmp_path)
    assert kb.journal_mode() == "wal"
    procs_ = [_spawn(tmp_path, "--epochs", "1", "--seed", str(s)) for s in (1, 2)]
    seen_running, reads = set(), 0
    try:
        while any(p.poll() is None for p in procs_):
            df = kb.list_runs()  # reading while both write
            for rid in df.run_id[df.status == "running"]:
                seen_running.add(rid)
                kb.history(rid)
                kb.feature_epochs(rid)
            reads += 1
            time.sleep(0.05)
        outs = [p.communicate() for p in procs_]
    finally:
        for p in procs_:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs_] == [0, 0], outs
    df = KnowledgeBase(tmp_path).list_runs()
    assert len(df) == 2 and (df.status == "completed").all() and sorted(df.seed) == [1, 2]
    assert (df.epochs_done == 1).all()
    assert seen_running and reads > 5


def test_reader_is_not_blocked_by_an_open_write_transaction(template, tmp_path):
    kb, (rid, _) = _clone(template, tmp_path)
    con = sqlite3.connect(kb.db_path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("UPDATE runs SET status = 'failed' WHERE run_id = ?", (rid,))
    try:
        t0 = time.perf_counter()
        df = KnowledgeBase(tmp_path, repair=False).list_runs()
        assert time.perf_counter() - t0 < 5.0
        assert df.set_index("run_id").loc[rid, "status"] == "completed"  # uncommitted write not seen
    finally:
        con.execute("ROLLBACK")
        con.close()


def test_newer_schema_version_is_refused_naming_both(tmp_path):
    KnowledgeBase(tmp_path)
    with sqlite3.connect(tmp_path / "index.sqlite") as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(KBError, match=rf"schema version 99.*schema version {SCHEMA_VERSION}"):
        KnowledgeBase(tmp_path)


def test_damaged_database_file_is_reported(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(KBError, match="not a usable SQLite database"):
        KnowledgeBase(tmp_path)


def test_missing_and_damaged_run_folders(template, tmp_path):
    kb, (gone, broken) = _clone(template, tmp_path)
    import shutil
    shutil.rmtree(kb.run_dir(gone))
    with pytest.raises(RunFileError, match="folder .* is missing"):
        kb.get_run(gone)
    (kb.run_dir(broken) / "run.json").write_text("{not json")
    with pytest.raises(RunFileError, match="run.json is damaged.*kb delete"):
        kb.get_run(broken)
    (kb.run_dir(broken) / "checkpoints" / "selected.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(RunFileError, match="selected.safetensors is damaged"):
        kb.load_state(broken)
    (kb.run_dir(broken) / "features" / "epoch_0001.npz").write_bytes(b"garbage")
    with pytest.raises(RunFileError, match="epoch_0001.npz is damaged"):
        kb.load_features(broken, 1)
    # reopening drops the row without a folder; the broken run can still be deleted
    with pytest.warns(UserWarning, match="had no folder"):
        kb2 = KnowledgeBase(tmp_path)
    assert any(gone in m and "dropped" in m for m in kb2.repairs)
    assert gone not in set(kb2.list_runs().run_id)
    kb2.delete_run(broken)
    assert kb2.list_runs().empty and not any((tmp_path / "runs").iterdir())


def test_orphan_folder_without_row_is_reindexed_or_removed(template, tmp_path):
    kb, (rid, _) = _clone(template, tmp_path)
    with sqlite3.connect(kb.db_path) as con:
        con.execute("DELETE FROM runs WHERE run_id = ?", (rid,))
    junk = tmp_path / "runs" / "20200101-000000-000000"
    junk.mkdir()
    (tmp_path / "runs" / ".trash-x").mkdir()
    old = time.time() - 3600
    for p in (kb.run_dir(rid), junk):
        os.utime(p, (old, old))
    with pytest.warns(UserWarning):
        kb2 = KnowledgeBase(tmp_path)
    assert kb2.get_run(rid)["status"] == "completed"
    assert not junk.exists() and not (tmp_path / "runs" / ".trash-x").exists()


def test_no_features_and_bad_checkpoint_name(template, tmp_path):
    kb, (other, _) = _clone(template, tmp_path)
    rid, _ = _record(kb, feature_cap=0)
    assert kb.feature_epochs(rid) == []
    with pytest.raises(KBError, match="stored no feature snapshots"):
        kb.load_features(rid)
    with pytest.raises(KBError, match="no feature snapshot at epoch 7; it has epochs 0, 1"):
        kb.load_features(other, 7)
    with pytest.raises(KBError, match="unknown checkpoint"):
        kb.load_state(rid, "best")


def test_liveness_checks():
    assert procs.process_alive(os.getpid(), procs.hostname(), procs.start_token(os.getpid()), None)
    assert not procs.process_alive(os.getpid(), procs.hostname(), "1", None)  # pid reused by another process
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not procs.process_alive(p.pid, procs.hostname(), None, time.time())
    now = time.time()
    assert procs.process_alive(1, "elsewhere", None, now - 10)
    assert not procs.process_alive(1, "elsewhere", None, now - procs.STALE_AFTER_S - 1)


def test_stratified_sample_keeps_class_shares():
    y = np.repeat(np.arange(4), [500, 300, 150, 50])
    idx = stratified_sample(y, 100, seed=0)
    assert len(idx) == 100 and len(set(idx)) == 100 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(y[idx]), [50, 30, 15, 5])
    np.testing.assert_array_equal(idx, stratified_sample(y, 100, seed=0))
    assert len(stratified_sample(y, 3, 0)) == 3 and len(stratified_sample(y, 5000, 0)) == 1000
    rare = np.r_[np.zeros(990), np.ones(10)].astype(int)
    assert set(rare[stratified_sample(rare, 20, 0)]) == {0, 1}  # a rare class keeps a member


def test_importing_the_kb_leaves_torch_and_streamlit_out():
    code = "import sys, lepton.kb; assert 'torch' not in sys.modules and 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_schema_2_index_is_migrated_keeping_its_runs(tmp_path):
    """Schema 3 adds ``flags`` (diverged/chance); an index written by schema 2 keeps its rows."""
    with sqlite3.connect(tmp_path / "index.sqlite") as con:
        con.execute("""CREATE TABLE runs (
          run_id TEXT PRIMARY KEY, created TEXT NOT NULL,
          status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
          method TEXT, source TEXT, target TEXT, epochs INTEGER, seed INTEGER, epochs_done INTEGER DEFAULT 0,
          source_acc REAL, target_acc REAL, target_acc_last REAL, target_acc_oracle REAL, wall_time_s REAL,
          parent TEXT, error TEXT DEFAULT '', pid INTEGER, host TEXT, start_token TEXT, heartbeat REAL,
          updated REAL, task TEXT DEFAULT 'classification', metrics TEXT)""")
        con.execute("INSERT INTO runs (run_id, created, status, method, source, target, epochs, seed, target_acc) "
                    "VALUES ('20260101-000000-aaaaaa', '2026-01-01T00:00:00', 'completed', 'dann', 'digits', "
                    "'digits-rotated', 3, 0, 0.5)")
        con.execute("PRAGMA user_version = 2")
    con.close()
    df = KnowledgeBase(tmp_path, repair=False).list_runs()
    assert df["run_id"].tolist() == ["20260101-000000-aaaaaa"] and df["target_acc"][0] == 0.5
    assert df["flags"].tolist() == [""] and df["diverged"].tolist() == [False]
    with sqlite3.connect(tmp_path / "index.sqlite") as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()


def test_the_short_id_the_app_shows_resolves(tmp_path, capsys):
    """The Explore picker ends each run with its id's last 6 characters; the CLI takes them."""
    from lepton.cli import main
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--epochs", "1", "--quiet"]) == 0
    rid = KnowledgeBase().list_runs()["run_id"][0]
    capsys.readouterr()
    assert KnowledgeBase().resolve(rid[-6:]) == rid
    assert main(["map", rid[-6:], "--method", "pca", "--params", "oops"]) == 2
    assert "--params is not valid JSON" in capsys.readouterr().err
