"""Odd data must give right answers or say why (issue 11): label bases, feature keys, unlabelled
targets, divergence, per-epoch means, and the smaller traps. Real data: scikit-learn's digits
written as the tables a user would bring."""
import warnings

import numpy as np
import pandas as pd
import pytest

from lepton.cli import main
from lepton.config import RunConfig
from lepton.data import DataError, load_domain
from lepton.data.pairing import harmonise
from lepton.training import train
from lepton.training.health import at_chance, diagnose, runaway_losses


def _digits_table(path, name="digits", base=0, label=True):
    """The 1,797 digits of ``name`` as a CSV of 64 pixel columns (+ ``label`` starting at ``base``)."""
    d = load_domain(name)
    x = np.concatenate([d.x_train, d.x_test]).reshape(-1, 64)
    df = pd.DataFrame(x, columns=[f"p{i}" for i in range(64)])
    if label:
        df["label"] = np.concatenate([d.y_train, d.y_test]) + base
    df.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    t = tmp_path_factory.mktemp("tables")
    return {"src1": _digits_table(t / "src1.csv", base=1), "tgt0": _digits_table(t / "tgt0.csv", "digits-noisy"),
            "tgt_nolabel": _digits_table(t / "tgt_nolabel.csv", "digits-noisy", label=False), "dir": t}


# ----------------------------------------------------------------------------- 1. label bases

def test_one_based_source_pairs_with_zero_based_target_by_meaning(tables):
    """Before: classes matched by the written names, every class off by one, 0.0 % target accuracy."""
    with pytest.warns(UserWarning, match="1-based"):
        src = load_domain(tables["src1"], cache=False)
    tgt = load_domain(tables["tgt0"], cache=False)
    assert src.class_names == tgt.class_names == [str(i) for i in range(10)]
    (s, t), rec = harmonise([src, tgt])
    assert rec["dropped_classes"] == {} and len(s.class_names) == 10
    assert any("start at different values" in n and "1-based" in n for n in rec["notes"])
    assert "1-based" in rec["labels"][tables["src1"]]  # the assumption is stored with the run
    res = train(RunConfig(tables["src1"], tables["tgt0"], "source-only", epochs=3, seed=0))
    assert res.checkpoints["selected"]["target_acc"] > 0.5  # was 0.0
    assert "1-based" in res.harmonisation["labels"][tables["src1"]]


def test_stated_base_overrides_the_guess_and_a_shift_is_named(tables):
    d = load_domain(tables["src1"] + "#base=0", cache=False)  # "no, they are 0-based with a class 10"
    assert d.class_names == [str(i) for i in range(1, 11)] and "stated" in d.notes["labels"]
    _, rec = harmonise([d, load_domain(tables["tgt0"])])
    assert any("look shifted by one" in n and "#base=" in n for n in rec["notes"])
    with pytest.raises(DataError, match="base=2 is not understood"):
        load_domain(tables["src1"] + "#base=2", cache=False)


# ----------------------------------------------------------------------------- 2. feature keys

def test_feature_keys_of_public_releases_and_two_domains_in_one_file(tmp_path):
    from scipy.io import savemat
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), np.repeat([1, 2, 3, 4], 10)[:, None]
    savemat(str(tmp_path / "surf.mat"), {"fts": x, "labels": y})  # Office-Caltech SURF naming
    with pytest.warns(UserWarning, match="1-based"):
        d = load_domain(str(tmp_path / "surf.mat"), cache=False)
    assert d.input_shape == (6,) and d.notes["keys"] == ["fts", "labels"]
    both = tmp_path / "pair.mat"
    savemat(str(both), {"Xs": x, "Ys": y, "Xt": x + 1, "Yt": y})
    with pytest.raises(DataError) as e:
        load_domain(str(both), cache=False)
    msg = str(e.value)
    assert "found: Xs, Ys, Xt, Yt" in msg and "pair.mat#x=Xs,label=Ys" in msg and "pair.mat#x=Xt,label=Yt" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = load_domain(f"{both}#x=Xs,label=Ys", cache=False)
        t = load_domain(f"{both}#x=Xt", cache=False)  # its labels found as Yt
    assert s.notes["keys"] == ["Xs", "Ys"] and t.notes["keys"] == ["Xt", "Yt"] and t.labelled
    assert np.allclose(np.sort(t.x_train[:, 0]) - 1, np.sort(s.x_train[:, 0]), atol=1e-5)
    with pytest.raises(DataError, match=r"'nope' not found.*found: Xs"):
        load_domain(f"{both}#x=nope", cache=False)
    with pytest.raises(DataError, match="KEY one of label, x, base"):
        load_domain(f"{both}#colour=red", cache=False)


# ----------------------------------------------------------------------------- 3. unlabelled target

def test_unlabelled_target_trains_selects_maps_and_reports_no_labels(tables, capsys):
    rc = main(["train", "--source", tables["src1"], "--target", tables["tgt_nolabel"], "--method", "dann",
               "--epochs", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "target acc no labels" in err and "has no labels" in err
    target_rows = [ln for ln in out.splitlines() if " target " in ln]
    assert target_rows and all("no labels" in ln and "%" not in ln for ln in target_rows)
    assert "0.0%" not in out and "oracle" not in out
    from lepton.kb import KnowledgeBase
    kb = KnowledgeBase()
    rid = kb.list_runs()["run_id"][0]
    summary = kb.get_run(rid)["summary"]
    assert summary["checkpoints"]["selected"]["target_acc"] is None or np.isnan(
        summary["checkpoints"]["selected"]["target_acc"])
    assert summary["per_class"] == [] and summary["confusion"] == []
    assert main(["kb", "show", rid]) == 0
    assert "target no labels" in capsys.readouterr().out
    assert main(["kb", "list"]) == 0 and "no labels" in capsys.readouterr().out
    assert main(["map", rid, "--method", "pca"]) == 0  # the map works
    df = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    tgt = df[df["role"] == "target"]
    assert len(tgt) and (tgt["label"] == "no label").all() and (tgt["label_id"] == -1).all()
    assert tgt["correct"].isna().all()
    from lepton.evaluation.shift import domain_shift, shift_statistics
    st = shift_statistics(kb, rid)
    assert np.isfinite(st["after"]["proxy_a_distance"]) if "after" in st else True
    raw = domain_shift(tables["src1"], tables["tgt_nolabel"])
    assert 0 <= raw["proxy_a_distance"] <= 2 and np.isnan(raw["mean_class_distance"])


def test_unlabelled_domains_are_refused_where_labels_are_needed(tables, capsys):
    assert main(["train", "--source", tables["src1"], "--target", tables["tgt_nolabel"], "--method",
                 "target-only", "--epochs", "1"]) == 2
    assert "has no labels; pick a method that needs no target labels" in capsys.readouterr().err
    assert main(["train", "--source", tables["tgt_nolabel"], "--target", tables["tgt0"], "--epochs", "1"]) == 2
    assert "the source domain" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 5. divergence

def test_runaway_losses_flag_the_run_as_diverged_everywhere(capsys):
    rc = main(["train", "--source", "digits", "--target", "digits-rotated", "--method", "dann", "--epochs", "3",
               "--hparams", '{"lr": 0.9}', "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0 and "status: completed (diverged)" in out
    assert "the run diverged: loss 'cls' rose from" in err and "lower the learning rate" in err
    assert main(["kb", "list"]) == 0
    listing = capsys.readouterr().out
    assert " diverged " in listing and "its numbers are not results" in listing
    from lepton.kb import KnowledgeBase
    df = KnowledgeBase().list_runs()
    assert df["diverged"].tolist() == [True] and "diverged" in df["flags"][0]


def test_health_checks_on_sound_and_broken_histories():
    y = np.repeat(np.arange(10), 50)
    assert at_chance(0.11, y)[0] and not at_chance(0.5, y)[0]
    hist = [{"epoch": 1, "losses": {"cls": 2.0}, "losses_at_start": {"cls": 2.3}},
            {"epoch": 2, "losses": {"cls": 1.0}}]
    assert runaway_losses(hist) == []
    assert diagnose(hist, 0.9, y, 0.8, y) == ([], [])
    hist[1]["losses"]["cls"] = 1e13
    assert "1e+13" in runaway_losses(hist)[0]
    flags, msgs = diagnose(hist[:1], 0.9, y, 0.1, y)
    assert flags == ["chance"] and "nothing transferred" in msgs[0]
    assert diagnose(hist[:1], 0.9, y, float("nan"), np.full(5, -1)) == ([], [])  # unlabelled: no verdict


# ----------------------------------------------------------------------------- 7. per-epoch means

def test_a_metric_is_averaged_over_the_steps_that_report_it():
    """self-training reports its mask rate only after the warm-up; with threshold 0 every target
    example passes, so the true rate is 1.0 in every epoch (it read 0.5 when averaged over all steps)."""
    res = train(RunConfig("digits", "digits-rotated", "self-training", epochs=2, seed=0,
                          hparams={"warmup_fraction": 0.25, "threshold": 0.0}))
    rates = [h["losses"]["mask_rate"] for h in res.history]
    assert rates == [1.0, 1.0]


# ----------------------------------------------------------------------------- 8. smaller ones

def test_a_hash_in_the_first_path_segment_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _digits_table(tmp_path / "my#digits.csv")
    d = load_domain("my#digits.csv", cache=False)
    assert d.n_classes == 10 and d.sizes()["train"] > 1000
    assert load_domain("my#digits.csv#label=label", cache=False).n_classes == 10


def test_cuda_hint_names_the_environment_variable(monkeypatch):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from lepton.training.runtime import resolve_device
    monkeypatch.setenv("LEPTON_DEVICE", "cuda")
    with pytest.raises(ValueError, match="from LEPTON_DEVICE=cuda.*unset LEPTON_DEVICE"):
        resolve_device("auto")
    monkeypatch.delenv("LEPTON_DEVICE")
    with pytest.raises(ValueError, match="use --device cpu or auto"):
        resolve_device("cuda")


@pytest.mark.parametrize("hp, needle", [('{"lr": "0.01"}', "is a string; write the number without quotes"),
                                        ('{"trade_off": true}', "must be a number, not true/false"),
                                        ('{"lr_anneal": 1}', "must be true or false")])
def test_wrong_hyper_parameter_types_are_refused(capsys, hp, needle):
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--method", "dann",
                 "--hparams", hp, "--epochs", "1"]) == 2
    assert needle in capsys.readouterr().err


def test_a_table_with_only_a_label_column(tmp_path):
    pd.DataFrame({"label": [0, 1] * 5}).to_csv(tmp_path / "only.csv", index=False)
    with pytest.raises(DataError, match="no feature columns"):
        load_domain(str(tmp_path / "only.csv"), cache=False)


def test_library_import_notices_are_not_lepton_warnings(capsys):
    from lepton.cli import _format_warning
    import umap
    line = _format_warning("Tensorflow not installed", ImportWarning, umap.__file__, 1)
    assert line.startswith("lepton: note from umap") and "lepton: warning" not in line
    from lepton.data import custom
    assert _format_warning("labels taken as 1-based", UserWarning, custom.__file__, 1).startswith("lepton: warning:")


def test_tables_load_as_float32_without_a_float64_copy(tables):
    from pathlib import Path

    from lepton.data import custom
    x, _, _ = custom._read_csv(Path(tables["tgt0"]), {})
    assert x.dtype == np.float32  # parsed as float32, not parsed as float64 and copied
    assert load_domain(tables["tgt0"], cache=False).x_train.dtype == np.float32


def test_a_batchnorm_encoder_never_sees_a_batch_of_one(tmp_path):
    import torch
    from torch import nn

    from lepton.data.sampling import Cycler, batches_per_pass
    from lepton.models import ENCODERS

    class BN(nn.Module):
        def __init__(self, shape, feature_dim=32):
            super().__init__()
            self.feature_dim = feature_dim
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), feature_dim),
                                     nn.BatchNorm1d(feature_dim), nn.ReLU())

        def forward(self, x):
            return self.net(x)

    name = "test-bn-encoder"
    if name not in ENCODERS:
        ENCODERS.add(name, lambda shape, feature_dim=32: BN(shape, feature_dim))
    gen = torch.Generator().manual_seed(0)
    c = Cycler(129, 64, gen)
    sizes = [len(c.next()) for _ in range(batches_per_pass(129, 64))]
    assert sizes == [64, 65] and len(c.next()) == 64  # the lone 129th joined the last batch; a new pass
    # digits has 1,257 training images: with batch 1,256 the pass would end on a batch of one
    res = train(RunConfig("digits", "digits-rotated", "source-only", epochs=1, batch_size=1256, seed=0,
                          encoder=name, hparams={"feature_dim": 32}))
    assert res.status == "completed" and len(res.history) == 1
