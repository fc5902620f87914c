"""The reshaped core: one way to run, layers, per-run randomness, rebuilding stored models, several sources."""
import ast
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from lepton.config import RunConfig
from lepton.kb import KnowledgeBase
from lepton.training import check, fit, plan, train
from lepton.training.jobs import JobManager

PKG = Path(__file__).resolve().parents[1] / "lepton"
PAIR = ("digits", "digits-rotated")


def _imports(package: str):
    """Every lepton module a package's files import (module level and inside functions)."""
    out = set()
    for f in (PKG / package).rglob("*.py"):
        mod = "lepton." + ".".join(f.relative_to(PKG).with_suffix("").parts)
        base = mod if f.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")[:len(base.split(".")) - node.level + 1]
                    name = ".".join(parts + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                out |= {(f.name, name)} if name.startswith("lepton") else set()
            elif isinstance(node, ast.Import):
                out |= {(f.name, a.name) for a in node.names if a.name.startswith("lepton")}
    return out


@pytest.mark.parametrize("package, forbidden", [
    ("kb", ("lepton.training", "lepton.evaluation", "lepton.methods", "lepton.strategies", "lepton.pipeline")),
    ("methods", ("lepton.training", "lepton.kb", "lepton.pipeline")),
    ("data", ("lepton.kb", "lepton.training", "lepton.methods")),
    ("models", ("lepton.training", "lepton.kb", "lepton.methods", "lepton.data")),
])
def test_layers(package, forbidden):
    bad = sorted((f, m) for f, m in _imports(package) if m.startswith(forbidden))
    assert not bad, f"lepton.{package} must not import {forbidden}: {bad}"


def test_the_resolver_is_seen_by_the_layering_test():
    assert ("recorder.py", "lepton.kb") in _imports("training")  # the scan resolves relative imports


def test_argparse_lives_only_in_the_cli():
    users = sorted(str(f.relative_to(PKG)) for f in PKG.rglob("*.py") if "argparse" in f.read_text())
    assert users and all(u.startswith("cli/") for u in users), users


def test_environment_variables_for_folders_are_read_in_one_module():
    users = sorted(str(f.relative_to(PKG)) for f in PKG.rglob("*.py")
                   if "environ.get(\"LEPTON_HOME\"" in f.read_text() or "environ.get(\"LEPTON_DATA_DIR\"" in f.read_text())
    assert users == ["paths.py"]


# ----------------------------------------------------------------------------- randomness per run
def test_two_jobs_at_once_give_their_solo_results():
    cfgs = [RunConfig(*PAIR, "dann", epochs=2, seed=s, eval_cap=300) for s in (1, 2)]
    solo = [fit(c) for c in cfgs]
    jm = JobManager(kb=False, workers="thread")
    ids = [jm.start(c) for c in cfgs]  # both train in this process (its threads) at the same time
    together = [jm.wait(i, 300) for i in ids]
    for s, t in zip(solo, together):
        assert t["status"] == "completed", t["error"]
        assert [r["target_acc"] for r in t["history"]] == [r["target_acc"] for r in s.history]
        assert [r["losses"] for r in t["history"]] == [r["losses"] for r in s.history]
    assert solo[0].history[-1]["losses"] != solo[1].history[-1]["losses"]  # the seeds matter


def test_training_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(RunConfig(*PAIR, "dann", epochs=1, eval_cap=100))
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- one way to run
def test_preflight_and_training_agree():
    cfg = RunConfig(*PAIR, "finetune", epochs=1, hparams={"k": 500})
    (p,) = check(cfg)
    assert p["level"] == "error" and "k=500" in p["message"]
    with pytest.raises(ValueError, match="k=500"):
        train(cfg, record=False)


def test_config_is_the_lineage(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    first = train(RunConfig(*PAIR, "source-only", epochs=1, eval_cap=100), kb=kb, feature_cap=0)
    second = train(RunConfig(*PAIR, "dann", epochs=1, eval_cap=100, init_from=first.run_id[:15]), kb=kb,
                   feature_cap=0)
    run = kb.get_run(second.run_id)
    assert run["parent"] == first.run_id == run["config"]["init_from"]  # the prefix was resolved and stored
    fresh = plan(RunConfig(*PAIR, "dann", epochs=1))
    stored = kb.load_state(first.run_id)
    got = plan(RunConfig(*PAIR, "dann", epochs=1, init_from=first.run_id), kb=kb).method.state_dict()
    w = "net.encoder.fc.2.weight"
    assert torch.equal(got[w], stored[w]) and not torch.equal(fresh.method.state_dict()[w], stored[w])
    with pytest.raises(ValueError, match="no knowledge base"):
        plan(RunConfig(*PAIR, "dann", init_from=first.run_id))


def test_a_stored_run_reloaded_by_id_predicts_the_same(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    res = train(RunConfig(*PAIR, "dann", epochs=2, eval_cap=100), kb=kb, feature_cap=0)
    x = torch.from_numpy(res.plan.target.x_test[:50])
    want = res.plan.method.predict(x)
    net = kb.load_method(res.run_id)  # no data loaded: the network is rebuilt from the run's files
    with torch.no_grad():
        assert torch.allclose(net(x), want, atol=1e-5)
    feats_only = kb.load_method(res.run_id, parts=("encoder", "transfer"))
    with torch.no_grad():
        assert torch.allclose(feats_only.features(x), res.plan.method.features(x), atol=1e-5)
        assert not torch.allclose(feats_only(x), want, atol=1e-3)  # a fresh head
    with pytest.raises(ValueError, match="unknown model part"):
        kb.load_method(res.run_id, parts=("decoder",))


# ----------------------------------------------------------------------------- several sources
def test_several_sources_are_first_class(tmp_path, capsys, monkeypatch):
    from lepton.cli import main
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "kb"))
    code = main(["train", "--source", "digits-noisy", "digits-inverted", "--target", "digits-rotated",
                 "--method", "dann", "--epochs", "1", "--quiet", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    run = KnowledgeBase(tmp_path / "kb").get_run(out["run_id"])
    assert run["config"]["source"] == ["digits-noisy", "digits-inverted"]
    assert run["roles"] == ["source", "source", "target"]
    roles = {(r["domain"], r["role"]) for r in out["table"]}
    assert {("digits-noisy", "source"), ("digits-inverted", "source"), ("digits-rotated", "target")} <= roles
    listed = KnowledgeBase(tmp_path / "kb").list_runs().iloc[0]
    assert listed["source"] == "digits-noisy + digits-inverted"


def test_each_source_feeds_every_step():
    seen = []
    p = plan(RunConfig(("digits-noisy", "digits-inverted"), "digits-rotated", "source-only", epochs=1, batch_size=32))
    real = p.method.update
    p.method.update = lambda b, step: (seen.append([n for n, _, _ in b.sources]), real(b, step))[1]
    fit(p)
    assert seen and all(s == ["digits-noisy", "digits-inverted"] for s in seen)
    assert p.steps_per_epoch == int(np.ceil(max(len(d.y_train) for d in p.sources) / 32))


def test_a_target_among_several_sources_is_refused():
    with pytest.raises(ValueError, match="also a source"):
        plan(RunConfig(("digits", "digits-rotated"), "digits-rotated"))


# ----------------------------------------------------------------------------- the knowledge base
def test_inputs_behind_snapshot_rows_of_a_pipeline_stage(tmp_path):
    from lepton.data import load_domain
    from lepton.data.pairing import harmonise
    from lepton.pipeline import run_pipeline
    kb = KnowledgeBase(tmp_path / "kb")
    res = run_pipeline(["digits", "digits-noisy"], "digits-rotated", ["multitask"], 1, k=2, draws=1, kb=kb,
                       batch_size=128, feature_cap=40)
    rid = res.stages[0].run_id
    snap = kb.load_features(rid)
    assert snap["domain_roles"] == ["source", "source", "target"]
    doms, _ = harmonise([load_domain(n) for n in snap["domain_names"]], snap["domain_roles"])
    for dom_id in (1, 2):  # the second source (not the run's first) and the target
        rows = np.flatnonzero(snap["domain"] == dom_id)[:5]
        idx = snap["index"][rows]
        got = kb.snapshot_inputs(rid, dom_id, idx)
        np.testing.assert_array_equal(got, doms[dom_id].x_test[idx])
    with pytest.raises(Exception, match="no domain 7"):
        kb.snapshot_inputs(rid, 7, [0])


def test_schema_1_is_migrated_and_metrics_are_a_document(tmp_path):
    home = tmp_path / "old"
    home.mkdir()
    with sqlite3.connect(home / "index.sqlite") as con:  # the schema of the first slice
        con.execute("""CREATE TABLE runs (run_id TEXT PRIMARY KEY, created TEXT NOT NULL, status TEXT NOT NULL,
            method TEXT, source TEXT, target TEXT, epochs INTEGER, seed INTEGER, epochs_done INTEGER DEFAULT 0,
            source_acc REAL, target_acc REAL, target_acc_last REAL, target_acc_oracle REAL, wall_time_s REAL,
            parent TEXT, error TEXT DEFAULT '', pid INTEGER, host TEXT, start_token TEXT, heartbeat REAL,
            updated REAL)""")
        con.execute("PRAGMA user_version = 1")
    kb = KnowledgeBase(home)
    res = train(RunConfig(*PAIR, "source-only", epochs=1, eval_cap=100), kb=kb, feature_cap=0)
    doc = kb.metrics(res.run_id)
    assert doc["task"] == "classification" and doc["metric"] == "accuracy"
    assert doc["checkpoints"]["selected"]["target_acc"] == pytest.approx(res.checkpoints["selected"]["target_acc"])
    assert kb.list_runs().iloc[0]["task"] == "classification"
