"""A run costs what its training costs: one shared forward pass per epoch, a bounded store, ``kb gc``."""
import os

import numpy as np
import pytest
import torch

from lepton.cli import main
from lepton.config import RunConfig
from lepton.data.sampling import stratified_sample
from lepton.evaluation.metrics import accuracy, batched
from lepton.kb import KnowledgeBase
from lepton.training import plan, train
from lepton.training.inference import TEST, InferencePass


def _count_eval_rows(method):
    """Wrap the encoder so every eval-mode (no-grad) row it sees is counted."""
    seen = []
    enc = method.net.encoder
    orig = enc.forward

    def counting(x):
        if not torch.is_grad_enabled():
            seen.append(len(x))
        return orig(x)
    enc.forward = counting
    return seen


def test_one_forward_pass_serves_evaluation_scores_and_snapshots(tmp_path):
    """Per epoch the encoder sees each requested row once (evaluation, label-free scores and the
    snapshot share it); the stored snapshot and the per-epoch accuracy agree with direct calls."""
    kb = KnowledgeBase(tmp_path)
    cfg = RunConfig("digits", "digits-rotated", "dann", epochs=3, seed=0, eval_cap=300)
    run = plan(cfg, kb=kb)
    seen = _count_eval_rows(run.method)
    from lepton.training import fit
    from lepton.training.recorder import KBRecorder
    rec = KBRecorder(kb, feature_cap=200, snapshot_every=1)
    res = fit(run, [rec])
    inf = run.inference
    eval_rows = sum(len(idx) for idx in inf._want.values())
    snap = {(i, "test"): idx for i, idx in enumerate(rec._sample)}
    union = sum(len(np.union1d(inf._want.get(k, []), snap.get(k, []))) for k in set(inf._want) | set(snap))
    # epochs 0..3 each one pass over the union of evaluation and snapshot rows (snapshots every epoch
    # here), then the final full test evaluation of the distinct checkpoint epochs
    n_final = sum(len(d.y_test) for d in run.domains)  # the selected checkpoint on every domain
    distinct = {res.checkpoints[c]["epoch"] for c in ("selected", "last", "oracle")}
    assert 3 * eval_rows <= sum(seen) <= 4 * union + n_final + (len(distinct) - 1) * len(run.target.y_test)
    # without sharing, evaluation (3 x 300) and snapshots (2 x 200 per domain: features and logits)
    # would each run the encoder again
    assert union < 300 * 3 + 200 * 3 * 2

    # the stored last snapshot equals a direct features() call with the last weights
    f = kb.load_features(rec.run_id, 3)
    run.method.load_state_dict(res.states["last"])
    for d, dom in enumerate(run.domains):
        m = f["domain"] == d
        direct = batched(run.method.features, dom.x_test[f["index"][m]])
        np.testing.assert_allclose(f["features"][m], direct, rtol=2e-3, atol=2e-3)  # float16 on disk
    # the per-epoch target accuracy is the accuracy of the stratified evaluation rows
    idx = stratified_sample(run.target.y_test, 300, 0)
    pred = batched(run.method.predict, run.target.x_test[idx]).argmax(1)
    assert res.history[-1]["target_acc"] == pytest.approx(accuracy(run.target.y_test[idx], pred))
    # the final table evaluates the whole test split with the selected weights
    run.method.load_state_dict(res.states["selected"])
    full = accuracy(run.target.y_test, batched(run.method.predict, run.target.x_test).argmax(1))
    row = next(r for r in res.table if r["role"] == "target" and r["checkpoint"] == "selected")
    assert row["accuracy"] == pytest.approx(full) and row["n"] == len(run.target.y_test)


def test_take_refuses_rows_that_were_not_requested():
    run = plan(RunConfig("digits", "digits-rotated", "source-only", epochs=1))
    inf = InferencePass(run)
    inf.request(0, TEST, np.array([3, 1, 2]))
    out = inf.at(0)
    feats, logits = out.take(0, TEST, np.array([1, 3]))
    assert feats.shape == (2, run.method.net.feature_dim) and logits.shape == (2, run.source.n_classes)
    with pytest.raises(KeyError, match="not requested"):
        out.take(0, TEST, np.array([4]))
    assert inf.at(0) is out  # cached for the epoch
    inf.request(0, TEST, np.array([1]))  # already there: the cache stays
    assert inf.at(0) is out


def test_store_keeps_selected_and_last_shares_files_and_halves_snapshots(tmp_path):
    kb = KnowledgeBase(tmp_path)
    res = train(RunConfig("digits", "digits-rotated", "source-only", epochs=2), kb=kb)
    d = kb.run_dir(res.run_id)
    names = sorted(p.stem for p in (d / "checkpoints").glob("*.safetensors"))
    assert names == ["last", "selected"]  # no oracle unless asked
    sel, last = d / "checkpoints" / "selected.safetensors", d / "checkpoints" / "last.safetensors"
    same = res.checkpoints["selected"]["epoch"] == res.checkpoints["last"]["epoch"]
    assert (os.stat(sel).st_ino == os.stat(last).st_ino) == same
    z = np.load(d / "features" / "epoch_0002.npz")
    assert z["features"].dtype == np.float16
    assert kb.load_features(res.run_id, 2)["features"].dtype == np.float32
    assert 0 < kb.run_size(res.run_id) < 2_000_000
    with pytest.raises(ValueError, match="unknown checkpoint best"):
        train(RunConfig("digits", "digits-rotated", "source-only", epochs=1), kb=kb, checkpoints=("best",))


def test_oracle_checkpoint_when_asked_from_the_cli(capsys, _isolated_home):
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--epochs", "1", "--quiet",
                 "--checkpoints", "selected", "oracle"]) == 0
    kb = KnowledgeBase()
    rid = kb.list_runs().iloc[0]["run_id"]
    assert kb.get_run(rid)["checkpoint_files"] == ["oracle", "selected"]
    kb.load_state(rid, "oracle")


def test_gc_frees_old_runs_and_keeps_their_records_and_models(tmp_path, capsys):
    kb = KnowledgeBase(tmp_path)
    ids = [train(RunConfig("digits", "digits-rotated", "source-only", epochs=5, seed=s), kb=kb,
                 checkpoints=("selected", "last", "oracle"), snapshot_every=1).run_id for s in range(3)]
    sizes = {r: kb.run_size(r) for r in ids}
    assert main(["kb", "--home", str(tmp_path), "gc", "--keep", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would free" in out and all(kb.run_size(r) == sizes[r] for r in ids)
    done = kb.gc(keep=1)
    assert sorted(r["run_id"] for r in done) == sorted(ids[:2])  # the newest (ids[2]) is kept whole
    assert kb.run_size(ids[2]) == sizes[ids[2]]
    for r in done:
        rid = r["run_id"]
        assert r["freed_bytes"] > 0 and kb.run_size(rid) == sizes[rid] - r["freed_bytes"]
        assert kb.feature_epochs(rid) == [0, 5]
        assert kb.get_run(rid)["checkpoint_files"] == ["selected"]
        kb.load_state(rid, "selected")
        assert len(kb.history(rid)) == 5 and kb.get_run(rid)["status"] == "completed"
    assert kb.gc(keep=1) == []  # nothing left to free
    with pytest.raises(ValueError, match="keep must be >= 0"):
        kb.gc(keep=-1)


def test_prepared_pair_is_cached_on_disk_and_keyed_by_files_and_options(data_dir, tmp_path, monkeypatch):
    """mnist -> usps is loaded and harmonised once; a changed file or another option is a new key."""
    import shutil

    from lepton.data import catalog, prepared
    monkeypatch.setenv("LEPTON_CACHE_DIR", str(tmp_path / "cache"))
    names, roles = ["mnist", "usps"], ["source", "target"]
    first, rec = prepared.prepare(names, roles, data_dir)
    assert len(list((tmp_path / "cache" / "prepared").glob("*.npz"))) == 1
    loads = []
    monkeypatch.setattr(catalog, "load_domain", lambda *a, **k: loads.append(a) or pytest.fail("loaded again"))
    again, rec2 = prepared.prepare(names, roles, data_dir)
    assert loads == [] and rec2 == json_round(rec)
    for a, b in zip(first, again):
        assert a.name == b.name and a.class_names == b.class_names and a.content_fraction == b.content_fraction
        np.testing.assert_array_equal(a.x_train, b.x_train)
        np.testing.assert_array_equal(a.y_test, b.y_test)
        assert b.x_train.dtype == a.x_train.dtype
    k = prepared.cache_key(names, roles, data_dir)
    assert prepared.cache_key(["mnist", "usps:rotate=10"], roles, data_dir) != k  # an option
    assert prepared.cache_key(names, ["target", "source"], data_dir) != k  # roles
    copy = tmp_path / "data"
    shutil.copytree(data_dir / "usps", copy / "usps")
    shutil.copytree(data_dir / "mnist", copy / "mnist")
    k_copy = prepared.cache_key(names, roles, copy)
    os.utime(copy / "usps" / "usps.t.bz2", ns=(1, 1))  # the same bytes, touched: never trust it
    assert prepared.cache_key(names, roles, copy) not in (k, k_copy)
    builtin = prepared.cache_key(["digits", "digits-small"], roles)  # keyed on scikit-learn's bundled file
    assert builtin is not None and builtin != prepared.cache_key(["digits", "digits-noisy"], roles)
    assert prepared.cache_key([str(tmp_path / "t.csv"), "digits"], roles) is None  # custom paths are not


def test_listings_import_no_torch_once_cached(data_dir, tmp_path):
    """``domains`` and ``methods`` answer from the cache without torch or scikit-learn, with the same
    text as when built; a changed file makes a new key."""
    import subprocess
    import sys
    env = dict(os.environ, LEPTON_CACHE_DIR=str(tmp_path / "cache"), LEPTON_HOME=str(tmp_path / "home"),
               LEPTON_DATA_DIR=str(data_dir))
    probe = ("import sys, runpy; sys.argv = ['lepton', {cmd!r}]\n"
             "try: runpy.run_module('lepton', run_name='__main__')\n"
             "except SystemExit: pass\n"
             "print('HEAVY', sorted(m for m in ('torch', 'sklearn', 'umap') if m in sys.modules))")
    outs = []
    for cmd in ("domains", "methods"):
        for _ in range(2):
            p = subprocess.run([sys.executable, "-c", probe.format(cmd=cmd)], env=env, capture_output=True,
                               text=True, timeout=300)
            assert p.returncode == 0, p.stderr
            outs.append(p.stdout)
        first, second = outs[-2:]
        assert first.rsplit("HEAVY", 1)[0] == second.rsplit("HEAVY", 1)[0]
        assert second.rsplit("HEAVY", 1)[1].strip() == "[]", (cmd, second[-200:])
    assert "usps" in outs[1] and "7291" in outs[1]
    assert "dann:" in outs[3] and "trade_off" in outs[3]


def json_round(obj):
    import json
    return json.loads(json.dumps(obj, default=str))


def test_a_cached_domain_trains_to_the_same_bits_as_a_fresh_one(tmp_path, monkeypatch):
    """A freshly prepared digits array had strides that torch reads as channels-last (a (N, 1, H, W)
    view), its cached copy standard ones, and the convolutions rounded differently: the first run
    and every later one disagreed in the last bits. Domains now hold one memory layout."""
    from lepton.training import fit
    monkeypatch.setenv("LEPTON_CACHE_DIR", str(tmp_path / "cache"))
    cfg = RunConfig("digits", "digits-rotated", "dann", epochs=1, seed=1, eval_cap=300)
    fresh, cached = fit(cfg), fit(cfg)
    assert list((tmp_path / "cache" / "prepared").glob("*.npz"))  # the second read the cache
    assert fresh.history[0]["losses"] == cached.history[0]["losses"]
    assert [s.x_train.strides for s in fresh.plan.domains] == [s.x_train.strides for s in cached.plan.domains]
