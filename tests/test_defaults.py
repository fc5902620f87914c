"""Strong, honest defaults on a user's own tables (issue 12): input scaling, a training budget in
steps, the transductive protocol, n per figure, the label-free choice's gap to the oracle, and
run-health warnings. Real data: scikit-learn's digits written out as CSV tables."""
import numpy as np
import pandas as pd
import pytest

from lepton.cli import main
from lepton.config import DEFAULTS_VERSION, RunConfig
from lepton.data import load_domain
from lepton.data.pairing import harmonise
from lepton.training import fit
from lepton.training.health import health_warnings


def _table(path, name, scale=1.0):
    d = load_domain(name)
    x = np.concatenate([d.x_train, d.x_test]).reshape(-1, 64) * scale
    df = pd.DataFrame(x, columns=[f"p{i}" for i in range(64)])
    df["label"] = np.concatenate([d.y_train, d.y_test])
    df.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    t = tmp_path_factory.mktemp("defaults")
    return {"src": _table(t / "src.csv", "digits"), "tgt": _table(t / "tgt.csv", "digits-noisy"),
            "src1000": _table(t / "src1000.csv", "digits", 1000.0),
            "tgt1000": _table(t / "tgt1000.csv", "digits-noisy", 1000.0)}


def test_tables_are_standardised_without_labels_by_default_and_it_is_recorded(tables):
    doms = [load_domain(tables["src"]), load_domain(tables["tgt"])]
    (s, t), rec = harmonise(doms, scaling="auto")
    pooled = np.concatenate([s.x_train, t.x_train])
    assert np.allclose(pooled.mean(0), 0, atol=1e-4)
    live = pooled.std(0) > 0
    assert np.allclose(pooled.std(0)[live], 1, atol=1e-3)
    assert rec["scaling"]["method"] == "standard" and "no labels" in rec["scaling"]["fitted_on"]
    assert rec["scaling"]["rows"] == len(pooled)
    (s2, t2), rec2 = harmonise(doms, scaling="none")
    np.testing.assert_array_equal(s2.x_train, doms[0].x_train)
    (s3, t3), _ = harmonise(doms, scaling="domain-standard")
    assert np.allclose(t3.x_train.mean(0), 0, atol=1e-4) and np.allclose(s3.x_train.mean(0), 0, atol=1e-4)
    (s4, _), _ = harmonise(doms, scaling="l2")
    assert np.allclose(np.linalg.norm(s4.x_train, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="applies to feature tables"):
        harmonise([load_domain("digits"), load_domain("digits-rotated")], scaling="standard")


def test_a_table_a_thousand_times_larger_trains_the_same_under_standard_scaling(tables):
    """Deep CORAL on raw features: its loss grows with the fourth power of the scale; standardised,
    the x1,000 table and the original give the same run."""
    runs = [fit(RunConfig(tables[s], tables[t], "deep-coral", epochs=2, seed=0))
            for s, t in (("src", "tgt"), ("src1000", "tgt1000"))]
    a, b = (r.history[-1]["losses"] for r in runs)
    assert a["coral"] == pytest.approx(b["coral"], rel=1e-3) and a["cls"] == pytest.approx(b["cls"], rel=1e-3)
    assert runs[0].checkpoints["selected"]["target_acc"] == pytest.approx(runs[1].checkpoints["selected"]["target_acc"],
                                                                          abs=0.01)
    raw = [fit(RunConfig(tables[s], tables[t], "deep-coral", epochs=1, seed=0, scaling="none"))
           for s, t in (("src", "tgt"), ("src1000", "tgt1000"))]
    assert raw[1].history[0]["losses"]["coral"] > 1e3 * raw[0].history[0]["losses"]["coral"]  # what scaling removes


def test_steps_is_the_budget_whatever_the_size_and_a_small_one_is_warned(tables, capsys):
    run = fit(RunConfig("digits", "digits-rotated", "dann", steps=30, seed=0))
    assert run.budget == {"steps": 30, "steps_done": 30, "steps_per_epoch": 20, "epochs": 2}
    assert len(run.history) == 2
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--method", "dann", "--steps", "30",
                 "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "A small training budget: 30 optimisation steps" in err and "--steps 1000" in err
    assert "budget: 30 of 30 optimisation steps, 20 per epoch" in out
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--steps", "0"]) == 2
    assert "steps must be a whole number" in capsys.readouterr().err


def test_an_epoch_passes_over_the_larger_domain_so_a_small_source_does_not_starve_the_run(tables, tmp_path):
    """A 200-row source and a 1,797-row target: an epoch is a pass over the target's training rows
    for every method; a config stored before (no defaults_version) keeps epochs over the source."""
    from lepton.data.sampling import batches_per_pass
    from lepton.training.plan import plan
    small = pd.read_csv(tables["src"]).groupby("label").head(20)
    small.to_csv(tmp_path / "small.csv", index=False)
    tgt = load_domain(tables["tgt"])
    for method in ("source-only", "dann", "target-only"):
        st = plan(RunConfig(str(tmp_path / "small.csv"), tables["tgt"], method, epochs=3))
        assert st.steps_per_epoch == batches_per_pass(len(tgt.y_train), 64) == 23 and st.total_steps == 69
    old = RunConfig.from_dict({"source": str(tmp_path / "small.csv"), "target": tables["tgt"], "method": "dann",
                               "epochs": 3})
    assert old.defaults_version == 1 and plan(old).steps_per_epoch == batches_per_pass(160, 64) == 3
    assert plan(old).total_steps == 9


def test_relative_coral_keeps_its_weight_meaningful_on_an_unscaled_table_a_thousand_times_larger(tables):
    """With scaling none the paper CORAL loss on the x1,000 table is 1e12 times larger (test
    above); the relative form stays in [0, 4] and is neither negligible nor runaway."""
    run = fit(RunConfig(tables["src1000"], tables["tgt1000"], "deep-coral", epochs=2, seed=0, scaling="none",
                        hparams={"coral_form": "relative", "trade_off": 0.1}))
    coral = [h["losses"]["coral"] for h in run.history]
    assert all(1e-3 < c <= 4.0 for c in coral), coral
    assert "weak-alignment" not in run.flags and "diverged" not in run.flags


def test_transductive_protocol_evaluates_the_whole_target_and_says_so(tables, capsys):
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--method", "source-only",
                 "--epochs", "2", "--protocol", "transductive", "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines() if " target " in ln]
    assert rows and all(r[2] == "all" and r[-1] == "1797" for r in rows)  # 1,257 + 540 rows
    src = [ln.split() for ln in out.splitlines() if " source " in ln]
    assert src[0][2] == "test" and src[0][-1] == "540"
    assert "protocol: transductive" in out
    assert "oracle-best epoch" in out or "also the oracle-best epoch" in out  # the choice's cost, stated


def test_old_stored_configs_rebuild_without_scaling():
    cfg = RunConfig.from_dict({"source": "a.csv", "target": "b.csv", "method": "dann"})
    assert cfg.scaling == "none" and RunConfig("a", "b").scaling == "auto"


def test_run_health_warnings_on_collapse_underfit_and_negligible_alignment():
    hist = [{"epoch": 1, "losses": {"cls": 0.23, "coral": 1e-5}}]
    pred = np.r_[np.zeros(95, int), np.ones(5, int)]
    flags, msgs = health_warnings(hist, 0.55, pred, 10, trade_off=1.0)
    assert flags == ["collapsed", "underfit", "weak-alignment"]
    assert "collapsed onto 2 of 10 classes" in msgs[0] and "--steps" in msgs[1] and "'coral'" in msgs[2]
    ok, _ = health_warnings([{"epoch": 1, "losses": {"cls": 0.2, "domain": 0.69}}], 0.95, np.arange(100) % 10, 10)
    assert ok == []


def test_a_collapsed_self_training_run_is_warned_in_the_cli_and_stored(capsys):
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--method", "self-training",
                 "--epochs", "15", "--quiet", "--hparams", '{"threshold": 0.0, "teacher": "model", "align": "none"}']) == 0
    assert "the target predictions collapsed onto" in capsys.readouterr().err
    from lepton.kb import KnowledgeBase
    kb = KnowledgeBase()
    df = kb.list_runs()
    assert "collapsed" in df["flags"][0] and not df["diverged"][0]
    assert any("collapsed" in m for m in kb.get_run(df["run_id"][0])["summary"]["diagnosis"])


def test_deep_embedded_validation_weights_the_source_risk_towards_the_target():
    """With target features like the source's, DEV is the source validation risk (weights ~1); when
    the target resembles the rows the model gets wrong, DEV sees a larger risk than the plain mean."""
    from lepton.evaluation.metrics import deep_embedded_validation
    rng = np.random.default_rng(0)
    fs = rng.normal(size=(400, 4)).astype(np.float32)
    ys = (fs[:, 0] > 0).astype(int)
    logits = np.stack([-fs[:, 0], fs[:, 0]], 1) * 3
    wrong = fs[:, 1] > 1.0  # the model is wrong where feature 1 is large
    logits[wrong] = -logits[wrong]
    z = logits - logits.max(1, keepdims=True)
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(400), ys]
    same = deep_embedded_validation(fs, logits, ys, rng.normal(size=(400, 4)).astype(np.float32))
    assert same == pytest.approx(-ce.mean(), rel=0.15)
    shifted = rng.normal(size=(400, 4)).astype(np.float32)
    shifted[:, 1] += 1.5  # target rows sit where the model is wrong
    assert deep_embedded_validation(fs, logits, ys, shifted) < same - 0.5


def test_dev_picks_the_checkpoint_from_the_cli(capsys):
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--method", "dann", "--epochs", "3",
                 "--select", "dev"]) == 0
    out, err = capsys.readouterr()
    assert "label-free (dev) [model]" in out and " dev -" in err


# ----------------------------------------------------------------------------- defaults version 3
def test_the_automatic_budget_gives_a_small_domain_a_thousand_steps_and_stores_what_it_resolved_to():
    from lepton.config import AUTO_EPOCHS, AUTO_MIN_STEPS
    from lepton.training.plan import plan
    auto = plan(RunConfig("digits", "digits-rotated"))  # ~1,260 rows: ~20 batches of 64 per epoch
    spe = auto.steps_per_epoch
    assert spe * AUTO_EPOCHS < AUTO_MIN_STEPS  # so 10 epochs alone would be a few hundred steps
    assert auto.config.epochs == -(-AUTO_MIN_STEPS // spe) and auto.total_steps == auto.config.epochs * spe
    assert auto.total_steps >= AUTO_MIN_STEPS and any("automatic" in n["message"] for n in auto.notes)
    again = plan(RunConfig.from_dict(auto.config.to_dict()))  # the stored config rebuilds the same budget
    assert (again.config.epochs, again.total_steps) == (auto.config.epochs, auto.total_steps)
    two = plan(RunConfig("digits", "digits-rotated", epochs=2))  # chosen epochs are kept, however few steps
    assert (two.config.epochs, two.total_steps) == (2, 2 * spe)
    two_sources = plan(RunConfig(("digits", "digits-noisy"), "digits-rotated"))  # a step takes a batch of each
    assert two_sources.config.epochs == -(-AUTO_MIN_STEPS // (2 * two_sources.steps_per_epoch)) < auto.config.epochs
    big = plan(RunConfig("digits", "digits-rotated", batch_size=8))  # 8x the batches: 10 epochs are enough
    assert big.config.epochs == AUTO_EPOCHS and big.total_steps == AUTO_EPOCHS * big.steps_per_epoch >= AUTO_MIN_STEPS


def test_a_run_stored_before_the_ema_teacher_rebuilds_with_the_model_as_teacher():
    from lepton.training.plan import plan
    new = plan(RunConfig("digits", "digits-rotated", "self-training", epochs=1))
    assert new.config.hparams["teacher"] == "ema" and new.config.hparams["align"] == "coral"
    assert new.config.defaults_version == DEFAULTS_VERSION == 5
    bare = {k: v for k, v in new.config.hparams.items() if k not in ("teacher", "align")}  # as stored before
    v3 = RunConfig.from_dict({**new.config.to_dict(), "defaults_version": 3, "hparams": bare})
    assert (plan(v3).config.hparams["teacher"], plan(v3).config.hparams["align"]) == ("ema", "none")
    old = RunConfig.from_dict({**new.config.to_dict(), "defaults_version": 2, "hparams": bare})
    assert (plan(old).config.hparams["teacher"], plan(old).config.hparams["align"]) == ("model", "none")
    chosen = RunConfig.from_dict({**old.to_dict(), "hparams": {**old.hparams, "teacher": "ema"}})
    assert plan(chosen).config.hparams["teacher"] == "ema"  # a value the run stored wins over the old default


def test_shot_learns_at_1e_5_and_a_config_stored_before_keeps_1e_3():
    from lepton.methods import METHODS
    shot = METHODS.get("shot")
    assert shot.validate_hparams({})["lr"] == 1e-5
    assert shot.validate_hparams({}, defaults_version=4)["lr"] == 1e-3
    assert shot.validate_hparams({"lr": 3e-4}, defaults_version=4)["lr"] == 3e-4


def test_the_ema_teacher_starts_as_the_model_and_then_lags_behind_it():
    import torch
    from lepton.methods import build_method
    from lepton.methods.batch import Batch
    d = load_domain("digits")
    m = build_method("self-training", d.input_shape, d.n_classes, {"warmup_fraction": 0.5}, total_steps=10)
    x, y = torch.from_numpy(d.x_train[:32]), torch.from_numpy(d.y_train[:32])
    w = "encoder.fc.2.weight" if "encoder.fc.2.weight" in m.net.state_dict() else next(iter(m.net.state_dict()))

    def step(i):
        m.update(Batch(sources=[("digits", x, y)], target=x), i)
    for i in range(5):  # warm-up: the teacher is not used yet
        step(i)
    assert not bool(m.teacher_ready)
    before = m.net.state_dict()[w].clone()
    step(5)  # the first pseudo-label step copies the model into the teacher, then the model moves
    assert torch.equal(m.teacher.state_dict()[w], before) and not torch.equal(m.net.state_dict()[w], before)
    for i in range(6, 10):
        step(i)
    t, now = m.teacher.state_dict()[w], m.net.state_dict()[w]
    assert (t - before).abs().sum() < 0.1 * (now - before).abs().sum()  # decay 0.999: it barely follows
    assert all(not p.requires_grad for p in m.teacher.parameters())
    assert all(p is not q for p in m.optimizer.param_groups[0]["params"] for q in m.teacher.parameters())


def test_a_table_of_flattened_pixels_reads_as_images_with_shape_and_is_hinted_without(tables, tmp_path):
    from lepton.data import DataError
    d = load_domain("digits")
    x = np.round(255 * np.concatenate([d.x_train, d.x_test]).reshape(-1, 64))
    df = pd.DataFrame(x, columns=[f"px{i}" for i in range(64)])
    df["label"] = np.concatenate([d.y_train, d.y_test])
    df.to_csv(tmp_path / "pix.csv", index=False)
    path = str(tmp_path / "pix.csv")
    with pytest.warns(UserWarning, match=r"could be 8x8 images.*pix.csv#shape=8x8"):
        assert load_domain(path).modality == "features"
    img = load_domain(path + "#shape=8x8")
    assert img.modality == "image" and img.input_shape == (1, 8, 8)
    assert img.x_train.max() <= 1.0 and img.notes["pixels"].startswith("divided by 255")
    np.testing.assert_allclose(img.x_train.reshape(len(img.x_train), -1), load_domain(path).x_train / 255, atol=1e-6)
    with pytest.raises(DataError, match="needs 100 feature columns, the table has 64"):
        load_domain(path + "#shape=10x10")
    with pytest.raises(DataError, match="shape=8by8 is not understood"):
        load_domain(path + "#shape=8by8")
    with pytest.raises(DataError, match=r"must lie in \[0, 1\] or \[0, 255\]"):
        load_domain(tables["src1000"] + "#shape=8x8")
    res = fit(RunConfig(path + "#shape=8x8", path + "#shape=8x8", epochs=1))  # a conv encoder trains on it
    assert res.status == "completed" and res.checkpoints["selected"]["target_acc"] > 0.5


def test_dan_raises_its_mmd_weight_progressively_and_old_runs_keep_it_constant():
    from lepton.methods import METHODS, build_method
    from lepton.training.plan import plan
    m = build_method("dan", (1, 8, 8), 10, {"trade_off": 2.0}, total_steps=100)
    w = [m.weight(s) for s in (0, 10, 50, 100)]
    assert w[0] == 0.0 and w[0] < w[1] < w[2] < w[3] and w[3] == pytest.approx(2.0, rel=1e-3)
    flat = build_method("dan", (1, 8, 8), 10, {"schedule": "constant"}, total_steps=100)
    assert flat.weight(0) == flat.weight(100) == 1.0
    assert METHODS.get("dan").validate_hparams({}, defaults_version=2)["schedule"] == "constant"
    assert plan(RunConfig("digits", "digits-rotated", "dan", epochs=1)).config.hparams["schedule"] == "progressive"


def test_the_oracle_and_a_source_free_run_are_not_judged_by_their_source_accuracy():
    """target-only fits the target (its source accuracy on inverted digits is low by design) and
    fine-tuning with no source pre-training fits no source: neither is 'underfit' or 'diverged' for it."""
    oracle = fit(RunConfig("digits", "digits-inverted", "target-only", epochs=3))
    assert oracle.checkpoints["selected"]["target_acc"] > 0.8 and oracle.checkpoints["selected"]["source_acc"] < 0.3
    assert "underfit" not in oracle.flags and "diverged" not in oracle.flags, oracle.diagnosis
    k_shot = fit(RunConfig("digits", "digits-inverted", "finetune", epochs=3, hparams={"pretrain_fraction": 0.0}))
    assert "underfit" not in k_shot.flags, k_shot.diagnosis
    plain = fit(RunConfig("digits", "digits-inverted", "source-only", steps=3))  # three steps: at chance on its source
    assert "diverged" in plain.flags and "source accuracy" in " ".join(plain.diagnosis)
