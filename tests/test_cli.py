"""The CLI as a user meets it: listings, a training run, and one clear line for each bad input."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lepton.cli import main

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [l for l in err.strip().splitlines() if l.startswith("lepton: error")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_domains_lists_builtins_and_benchmarks(capsys, data_dir):
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "domains")
    assert code == 0
    assert "digits-rotated" in out and "mnist" in out and "usps" in out
    assert "svhn" in out and "missing files" in out  # svhn is not in shared/data


def test_methods_lists_hparams_as_json(capsys):
    code, out, _ = run(capsys, "methods", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"source-only", "target-only", "finetune", "dann", "deep-coral", "dan", "self-training"} <= set(rows)
    assert rows["target-only"]["oracle"] is True
    assert rows["dann"]["hparams"]["trade_off"]["high"] == 100.0


def test_train_json_reports_target_accuracy(capsys):
    code, out, err = run(capsys, "train", "--source", "digits", "--target", "digits-rotated", "--method", "dann",
                         "--epochs", "2", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] == "completed"
    tgt = [r for r in res["table"] if r["role"] == "target"]
    assert {r["checkpoint"] for r in tgt} == {"selected", "last", "oracle"}
    assert all(0 <= r["accuracy"] <= 1 for r in tgt)
    assert "epoch   2/2" in err  # progress went to stderr


def test_train_table(capsys):
    code, out, _ = run(capsys, "train", "--source", "digits", "--target", "digits-noisy", "--epochs", "1", "--quiet")
    assert code == 0 and "label-free (im) [model]" in out and "oracle-best" in out


@pytest.mark.parametrize("argv, needle", [
    (["--source", "digitz", "--target", "digits"], "unknown domain 'digitz'; valid domains:"),
    (["--source", "digits", "--target", "digits-rotated", "--method", "adda"], "unknown method 'adda'; valid methods:"),
    (["--source", "digits", "--target", "digits-rotated", "--method", "dann", "--hparams", '{"trade_off": 500}'],
     "trade_off=500 is out of range [0, 100]"),
    (["--source", "digits", "--target", "digits-rotated", "--hparams", "{lr: 1}"], "--hparams is not valid JSON"),
    (["--source", "digits", "--target", "digits:rotate=999"], "out of range"),
    (["--source", "digits", "--target", "digits:spin=3"], "unknown shift 'spin'"),
    (["--source", "digits", "--target", "digits-rotated", "--epochs", "0"], "epochs must be"),
    (["--source", "digits", "--target", "digits-rotated", "--method", "finetune", "--hparams", '{"k": 500}'],
     "lower k"),
])
def test_bad_input_one_line_nonzero(capsys, argv, needle):
    code, _, err = run(capsys, "train", *argv)
    assert code == 2
    assert needle in _one_error_line(err)


def _table(path, labels, seed=0, n=40, d=5, nan_row=None, zero_row=None):
    rng = np.random.default_rng(seed)
    labels = np.resize(np.asarray(labels), n)
    x = rng.normal(size=(n, d)) + np.array([hash(str(l)) % 5 for l in labels])[:, None]
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(d)])
    if nan_row is not None:
        df.iloc[nan_row, 1] = np.nan
    if zero_row is not None:
        df.iloc[zero_row, :] = 0.0
    df["label"] = labels
    df.to_csv(path, index=False)
    return str(path)


def test_custom_tables_train_and_errors(capsys, tmp_path):
    a = _table(tmp_path / "a.csv", ["x", "y", "z"])
    b = _table(tmp_path / "b.csv", ["x", "y", "z"], seed=1)
    code, out, err = run(capsys, "train", "--source", a, "--target", b, "--epochs", "2", "--quiet")
    assert code == 0, err
    none_shared = _table(tmp_path / "c.csv", ["p", "q"])
    code, _, err = run(capsys, "train", "--source", a, "--target", none_shared, "--epochs", "1")
    assert code == 2 and "no classes are shared" in _one_error_line(err)
    one = _table(tmp_path / "one.csv", ["x"])
    code, _, err = run(capsys, "train", "--source", one, "--target", b, "--epochs", "1")
    assert code == 2 and "same label" in _one_error_line(err)
    nan = _table(tmp_path / "nan.csv", ["x", "y"], nan_row=3)
    code, _, err = run(capsys, "train", "--source", nan, "--target", b, "--epochs", "1")
    assert code == 2 and "NaN" in _one_error_line(err)
    zero = _table(tmp_path / "zero.csv", ["x", "y"], zero_row=5)
    code, _, err = run(capsys, "train", "--source", zero, "--target", b, "--epochs", "1")
    assert code == 2 and "zero" in _one_error_line(err)
    empty = tmp_path / "empty.csv"
    empty.write_text("f0,f1,label\n")
    code, _, err = run(capsys, "train", "--source", a, "--target", str(empty), "--epochs", "1")
    assert code == 2 and "no rows" in _one_error_line(err)


def test_corrupt_benchmark_file(capsys, tmp_path, data_dir):
    bad = tmp_path / "data"
    shutil.copytree(data_dir / "mnist", bad / "mnist")
    p = bad / "mnist" / "t10k-images-idx3-ubyte.gz"
    p.chmod(0o644)
    p.write_bytes(p.read_bytes()[: 5000])  # truncated
    code, _, err = run(capsys, "--data-dir", str(bad), "train", "--source", "mnist", "--target", "digits")
    line = _one_error_line(err)
    assert code == 2 and "t10k-images-idx3-ubyte.gz" in line


def test_missing_benchmark_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_OFFLINE", "1")
    code, _, err = run(capsys, "--data-dir", str(tmp_path), "train", "--source", "usps", "--target", "digits")
    line = _one_error_line(err)
    assert code == 2 and "usps" in line and str(tmp_path) in line and "http" in line


def test_unreadable_image_folder(capsys, tmp_path):
    from PIL import Image
    root = tmp_path / "imgs"
    for c in ("0", "1"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    (root / "1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, _, err = run(capsys, "train", "--source", "digits", "--target", str(root), "--epochs", "1")
    assert code == 2 and "broken.png" in _one_error_line(err)


def test_python_dash_m_entry_point_exit_code():
    p = subprocess.run([sys.executable, "-m", "lepton", "train", "--source", "nope", "--target", "digits"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [_one_error_line(p.stderr)]  # exactly one line
    assert p.stderr.startswith("lepton: error: unknown domain 'nope'")


def test_import_lepton_does_not_import_streamlit():
    mods = ("lepton", "lepton.data", "lepton.methods", "lepton.training", "lepton.training.jobs", "lepton.evaluation",
            "lepton.evaluation.projection", "lepton.evaluation.shift", "lepton.kb", "lepton.cli", "lepton.pipeline",
            "lepton.strategies", "lepton.tasks")
    code = f"import sys, importlib; [importlib.import_module(m) for m in {mods!r}]; print('streamlit' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "False", p.stderr


def test_map_out_to_a_missing_folder_or_a_folder_is_one_line(tmp_path, monkeypatch, capsys):
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training import train
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "kb"))
    rid = train(RunConfig("digits", "digits-rotated", "source-only", epochs=1, eval_cap=100),
                kb=KnowledgeBase(tmp_path / "kb"), feature_cap=20).run_id
    for out, words in ((tmp_path / "nope" / "c.csv", "does not exist"), (tmp_path, "is a folder")):
        assert main(["map", rid, "--method", "pca", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0]


def test_true_is_not_a_number_for_a_hyper_parameter(capsys):
    assert main(["train", "--source", "digits", "--target", "digits-rotated", "--hparams", '{"lr": true}',
                 "--no-store", "--quiet"]) == 2
    assert "must be a number" in capsys.readouterr().err


def test_pipeline_draws_are_checked_before_training(capsys):
    assert main(["pipeline", "--domains", "digits", "--target", "digits-rotated", "--stages", "source-only",
                 "evaluate", "--draws", "0", "--no-kb", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "draws must be" in err and "[1/" not in err


@pytest.mark.parametrize("argv, needle", [(["train", "--source", "digits"], "required: --target"),
                                          (["nope"], "invalid choice: 'nope'"),
                                          (["kb", "show"], "required: run"),
                                          (["train", "--source", "d", "--target", "e", "--epochs", "x"], "invalid int")])
def test_argument_errors_are_one_line_with_where_the_help_is(argv, needle):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "lepton", *argv], capture_output=True, text=True, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("lepton: error: ") and needle in lines[0]
    assert "--help`" in lines[0] and "usage:" not in p.stderr


def test_the_encoder_help_lists_the_registered_encoders_and_each_modality_default():
    from lepton.cli import ENCODER_HELP
    from lepton.models import ENCODERS, MODALITY_ENCODERS
    auto = ", ".join(f"{m}: {MODALITY_ENCODERS.get(m)}" for m in MODALITY_ENCODERS.names())
    assert ENCODER_HELP.startswith(f"auto ({auto}) or one of {', '.join(ENCODERS.names())} ")
