"""Repeats over seeds: ``train --seeds`` (mean ± std of every figure) and seed groups of stored runs."""
import json

import numpy as np
import pytest

from lepton.cli import main
from lepton.config import RunConfig
from lepton.kb import KnowledgeBase
from lepton.kb.repeats import check_seeds, repeat_key, seed_groups, seed_summary
from lepton.training import train

FAST = dict(epochs=1, batch_size=128, eval_cap=300)


def _run(kb, seed, **kw):
    cfg = RunConfig("digits", "digits-rotated", kw.pop("method", "source-only"), seed=seed, **{**FAST, **kw})
    return train(cfg, kb=kb, record=kb is not None)


def test_check_seeds_refuses_a_repeated_seed():
    assert check_seeds([2, 0, 1]) == [2, 0, 1]
    with pytest.raises(ValueError, match="seed 1 more than once"):
        check_seeds([0, 1, 1])
    with pytest.raises(ValueError, match="at least one seed"):
        check_seeds([])


def test_seed_summary_is_the_mean_and_sample_std_of_each_figure():
    results = [_run(None, s) for s in (0, 1, 2)]
    out = seed_summary([r.summary() for r in results])
    assert out["seeds"] == [0, 1, 2] and out["failed"] == []
    acc = [r.checkpoints["selected"]["target_acc"] for r in results]
    assert len(set(acc)) > 1  # the seeds really differ
    row = next(r for r in out["table"] if r["role"] == "target" and r["checkpoint"] == "selected")
    assert row["metric"] == "accuracy" and row["n"] == 3
    assert row["mean"] == pytest.approx(np.mean(acc)) and row["std"] == pytest.approx(np.std(acc, ddof=1))
    src = next(r for r in out["table"] if r["role"] == "source")
    assert src["values"] == pytest.approx([r.checkpoints["selected"]["source_acc"] for r in results])
    assert out["wall_time_s"]["values"] == pytest.approx([round(r.wall_time_s, 3) for r in results])


def test_repeat_key_ignores_only_the_seed():
    a = RunConfig("digits", "digits-rotated", "dann", seed=0).to_dict()
    assert repeat_key(a) == repeat_key({**a, "seed": 7})
    assert repeat_key(a) != repeat_key({**a, "epochs": 3})
    assert repeat_key(a) != repeat_key({**a, "hparams": {**a["hparams"], "trade_off": 0.5}})


def test_seed_groups_pair_runs_that_differ_only_in_seed(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb")
    r0, r1 = _run(kb, 0), _run(kb, 1)
    _run(kb, 2, epochs=2)  # another budget: not a repeat of the two above
    _run(kb, 0, method="dann")  # one seed alone: no group
    again = _run(kb, 1)  # a rerun of seed 1: the newest counts
    g = seed_groups(kb)
    assert len(g) == 1
    row = g.iloc[0]
    assert (row["method"], row["seeds"], row["n"], row["duplicates"]) == ("source-only", "0, 1", 2, 1)
    assert row["run_ids"] == [r0.run_id, again.run_id] and r1.run_id not in row["run_ids"]
    acc = [r0.checkpoints["selected"]["target_acc"], again.checkpoints["selected"]["target_acc"]]
    assert row["target_acc_mean"] == pytest.approx(np.mean(acc))
    assert row["target_acc_std"] == pytest.approx(np.std(acc, ddof=1))
    assert row["target_acc_text"] == f"{100 * np.mean(acc):.1f} ± {100 * np.std(acc, ddof=1):.1f} (2)"
    assert seed_groups(kb, min_seeds=3).empty


def test_cli_seeds_trains_once_per_seed_and_reports_mean_std(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "kb"))
    code = main(["train", "--source", "digits", "--target", "digits-rotated", "--epochs", "1", "--batch-size", "128",
                 "--seeds", "0", "1", "--json", "--quiet"])
    out, _ = capsys.readouterr()
    assert code == 0
    res = json.loads(out)
    assert res["seeds"] == [0, 1] and [r["config"]["seed"] for r in res["runs"]] == [0, 1]
    stored = KnowledgeBase(tmp_path / "kb").list_runs()
    assert sorted(stored["seed"]) == [0, 1] and set(stored["run_id"]) == {r["run_id"] for r in res["runs"]}
    row = next(r for r in res["mean_std"]["table"] if r["role"] == "target" and r["checkpoint"] == "selected")
    assert row["mean"] == pytest.approx(stored["target_acc"].mean())
    code = main(["train", "--source", "digits", "--target", "digits-rotated", "--epochs", "1", "--seeds", "0", "1", "--quiet"])
    out, _ = capsys.readouterr()
    assert code == 0 and "mean ± std over 2 seed(s) (0, 1" in out and out.count("run id:") == 2


@pytest.mark.parametrize("argv, says", [(["--seeds", "0", "1", "0"], "seed 0 more than once"),
                                        (["--seeds", "0", "--seed", "1"], "not allowed with argument --seeds")])
def test_cli_seeds_bad_input_is_one_line(capsys, argv, says):
    try:  # argparse's own refusals exit; Lepton's return the status
        code = main(["train", "--source", "digits", "--target", "digits-rotated", "--no-store"] + argv)
    except SystemExit as e:
        code = e.code
    _, err = capsys.readouterr()
    lines = [x for x in err.strip().splitlines() if x.startswith("lepton: error")]
    assert code == 2 and len(lines) == 1 and says in lines[0] and "Traceback" not in err
