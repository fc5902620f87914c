"""Maps that must not crash a process: degenerate features are refused with one clear line, and a
native crash while fitting (in the CLI's child process or in the server's map process) becomes an
error answer while the caller lives on."""
import ctypes
import os
import signal
import time

import numpy as np
import pytest

from lepton.cli import main
from lepton.config import RunConfig
from lepton.evaluation import mapworker, projection
from lepton.evaluation.projection import (DegenerateFeaturesError, MapCrashError, check_features, compute_map,
                                          embed, run_isolated)
from lepton.kb import KnowledgeBase
from lepton.kb.files import read_npz

N_PER_DOMAIN = 50  # feature rows per domain in the stored run: 100 points in a map
EPOCHS = {"collapsed": 11, "nan": 12, "huge": 13, "few": 14, "nearly-same": 15}  # fake snapshots


def _degenerate(kind: str, x: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "collapsed":
        return np.broadcast_to(x[3], x.shape).copy()
    if kind == "nearly-same":
        return (np.ones_like(x) + rng.normal(size=x.shape).astype(np.float32) * 5e-8).astype(np.float32)
    if kind == "nan":
        y = x.copy()
        y[5, 2] = np.nan
        y[7, 0] = np.inf
        return y
    if kind == "huge":
        return (x * np.float32(1e30)).astype(np.float32)  # finite in float32; squares overflow
    if kind == "few":
        return x[rng.integers(0, 4, len(x))]  # four distinct vectors among 100 rows
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A short stored run on the built-in digits pair, plus snapshots with degenerate features."""
    from lepton.training import train
    home = tmp_path_factory.mktemp("kb_guards")
    kb = KnowledgeBase(home)
    rid = train(RunConfig("digits", "digits-rotated", "source-only", epochs=1, eval_cap=100), kb=kb,
                feature_cap=N_PER_DOMAIN).run_id
    snap = read_npz(kb.run_dir(rid) / "features" / "epoch_0001.npz", rid)
    assert len(snap["features"]) == 2 * N_PER_DOMAIN
    for kind, epoch in EPOCHS.items():
        kb.write_features(rid, epoch, {**snap, "features": _degenerate(kind, snap["features"])})
    return home, rid


WORDS = {"collapsed": "collapsed: all 100 rows are the same vector; the model learned nothing a map can show",
         "nearly-same": "collapsed: all 100 rows are the same vector up to rounding",
         "nan": "contain 1 NaN and 1 infinite values (in 2 of the 100 rows): training diverged",
         "huge": "sums of squares overflow 32-bit floats",
         "few": "nearly collapsed: only 4 distinct vectors among 100 rows (96 rows repeat another exactly)"}


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
@pytest.mark.parametrize("kind", sorted(WORDS))
def test_degenerate_features_are_refused_before_any_fit(stored, kind, method, monkeypatch):
    home, rid = stored
    kb = KnowledgeBase(home)
    fits = []
    for name in ("_pca", "_tsne", "_umap", "_reduce"):
        monkeypatch.setattr(projection, name, lambda *a, _n=name, **k: fits.append(_n))
    if kind == "few" and method == "pca":  # two distinct vectors are enough for PCA: drawn, with a note
        monkeypatch.undo()
        df = compute_map(kb, rid, epoch=EPOCHS[kind], method=method, cache=False)
        assert len(df) == 100 and "96 of the 100 rows repeat another row exactly" in df.attrs["notes"][0]
        return
    with pytest.raises(DegenerateFeaturesError) as e:
        compute_map(kb, rid, epoch=EPOCHS[kind], method=method)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"the features of run {rid} at epoch {EPOCHS[kind]} ")
    assert WORDS[kind] in msg and ("pick an earlier epoch or another run" in msg)
    if kind == "few":
        assert ("perplexity 30 needs at least 31" if method == "tsne" else "n_neighbors 15 needs at least 16") in msg
    assert not fits and isinstance(e.value, ValueError)  # the CLI and the app show ValueErrors as one line


def test_check_features_thresholds():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    assert check_features(x, "tsne") == [] and check_features(x * 1e12, "umap") == []  # large but safe
    with pytest.raises(DegenerateFeaturesError, match="below"):
        check_features(x.astype(np.float64) * 1e300, "pca")  # would be inf after the cast to float32
    with pytest.raises(DegenerateFeaturesError, match="at least 3 points, got 2"):
        embed(x[:2], "pca")
    # duplicates: 12 distinct rows pass t-SNE at perplexity 5 (needs 6), fail at perplexity 20 (capped to 13)
    dup = x[np.arange(40) % 12]
    assert "28 of the 40 rows repeat" in check_features(dup, "tsne", {"perplexity": 5.0})[0]
    with pytest.raises(DegenerateFeaturesError, match="perplexity 13 needs at least 14 distinct"):
        check_features(dup, "tsne", {"perplexity": 20.0})
    with pytest.raises(DegenerateFeaturesError, match="collapsed"):
        embed(np.zeros((30, 4)), "tsne")  # the raw call is guarded as well (sklearn would segfault)
    assert projection.distinct_rows(np.array([[0.0, 1.0], [-0.0, 1.0], [1.0, 1.0]])) == 2


def test_cli_map_of_collapsed_features_is_one_line(stored, monkeypatch, capsys):
    home, rid = stored
    monkeypatch.setenv("LEPTON_HOME", str(home))
    monkeypatch.setattr(projection, "run_isolated", lambda *a, **k: pytest.fail("a refused map started a process"))
    assert main(["map", rid, "--epoch", str(EPOCHS["collapsed"]), "--method", "tsne"]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and not cap.out, cap
    assert err[0] == (f"lepton: error: the features of run {rid} at epoch {EPOCHS['collapsed']} collapsed: all 100 "
                      "rows are the same vector; the model learned nothing a map can show; pick an earlier epoch or "
                      "another run")


def _segfault(*args, **kwargs):
    """Stands in for :func:`projection.embed` in the child process: dies as a native crash does."""
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_native_crash_in_the_map_child_is_an_error_here():
    with pytest.raises(MapCrashError, match=r"crashed \(signal 11, SIGSEGV\) while fitting a test map; "):
        run_isolated(ctypes.string_at, 0, what="fitting a test map")  # reads address 0: a real segfault
    with pytest.raises(DegenerateFeaturesError, match="collapsed"):  # the child's exceptions come back as they are
        run_isolated(embed, np.ones((20, 3), np.float32), "tsne")
    assert run_isolated(divmod, 7, 3) == (2, 1)


def test_cli_map_survives_a_crashing_fit_and_keeps_the_cached_fast_path(stored, monkeypatch, capsys, tmp_path):
    home, rid = stored
    monkeypatch.setenv("LEPTON_HOME", str(home))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the child's t-SNE: OpenMP threads crawl on busy cores
    args = ["map", rid, "--epoch", "1", "--method", "tsne", "--params", '{"perplexity": 7}']
    monkeypatch.setattr(projection, "embed", _segfault)  # pickled by name: the child runs it
    assert main(args) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and not cap.out, cap
    assert err[0].startswith(f"lepton: error: the map process crashed (signal 11, SIGSEGV) while fitting t-SNE on "
                             f"100 points of run {rid} at epoch 1; ")
    monkeypatch.setattr(projection, "embed", embed)
    out = tmp_path / "tsne.csv"
    assert main(args + ["--out", str(out)]) == 0  # a real t-SNE fit in the child, cached
    assert "wrote 100 points (tsne, epoch 1)" in capsys.readouterr().out
    monkeypatch.setattr(projection, "run_isolated", lambda *a, **k: pytest.fail("a cached map started a process"))
    t0 = time.perf_counter()
    assert main(args + ["--out", str(tmp_path / "again.csv")]) == 0
    assert time.perf_counter() - t0 < 5
    assert (tmp_path / "again.csv").read_text() == out.read_text()


def test_the_map_process_answers_a_request_it_died_on_and_restarts(stored, monkeypatch):
    home, rid = stored
    w = mapworker.MapWorker(home, warm_up=False)
    try:
        w.start()
        assert w.ready.wait(120)
        refused = w.wait("map", timeout=60, run_id=rid, epoch=EPOCHS["collapsed"], method="tsne")
        assert refused[0] == "error" and refused[1].startswith(f"the features of run {rid} at epoch 11 collapsed")
        slow = {"run_id": rid, "epoch": 1, "method": "tsne", "params": {"perplexity": 9.0}}
        queued = {"run_id": rid, "epoch": 0, "method": "pca"}
        assert w.submit("map", **slow)[0] == "pending"
        assert w.submit("map", **queued)[0] == "pending"
        pid = w.pid
        os.kill(pid, signal.SIGKILL)  # dies while serving the t-SNE request, as a native crash would
        status, msg = w.wait("map", timeout=60, **slow)
        assert status == "error", msg
        assert msg.startswith(f"the map process crashed (signal 9, SIGKILL) while fitting the t-SNE map of run {rid} "
                              "at epoch 1; it restarts for the next map")
        status, df = w.wait("map", timeout=60, **queued)  # queued behind the crash: sent again, answered
        assert status == "done" and len(df) == 100 and (df.epoch == 0).all()
        assert w.pid not in (None, pid)
        assert w.submit("map", **slow) == ("error", msg)  # kept a while: the page shows it, no refit loop
        monkeypatch.setattr(mapworker, "CRASH_RETRY_S", 0.0)
        status, df = w.wait("map", timeout=60, **slow)  # later the same request is tried again
        assert status == "done" and len(df) == 100
    finally:
        w.close()
