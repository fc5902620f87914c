"""CDAN, MCC, MDD, AFN, BSP and source-free SHOT train on real digits, and SHOT refuses what it cannot do."""
import json

import pytest

from lepton.cli import main

NEW = ("cdan", "mcc", "mdd", "afn", "shot")


def test_methods_lists_the_new_methods_with_their_hparams(capsys):
    assert main(["methods", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    names = {m["name"] if isinstance(m, dict) else m for m in (listing if isinstance(listing, list) else listing.keys())}
    assert set(NEW) <= names
    text = json.dumps(listing)
    for hp in ("entropy_conditioning", "temperature", "margin", "radius", "relabel_times", "bsp"):
        assert hp in text


def _train(capsys, *args):
    capsys.readouterr()
    code = main(["train", "--source", "digits", "--target", "digits-rotated", "--steps", "60", "--json", *args])
    out = capsys.readouterr()
    return code, out


def _acc(res, role):
    return next(r["accuracy"] for r in res["table"] if r["role"] == role and r["checkpoint"] == "selected")


@pytest.mark.parametrize("method,hp", [("cdan", {}), ("mcc", {}), ("mdd", {}), ("afn", {}), ("dann", {"bsp": 1e-4})])
def test_each_new_method_trains_on_real_digits(capsys, method, hp):
    code, out = _train(capsys, "--method", method, "--hparams", json.dumps(hp))
    assert code == 0, out.err
    res = json.loads(out.out)
    assert 0.0 <= _acc(res, "target") <= 1.0 and _acc(res, "source") > 0.2  # it learnt the source


def test_shot_adapts_a_stored_source_model_without_source_data(capsys):
    code, out = _train(capsys, "--method", "source-only")
    assert code == 0, out.err
    start = json.loads(out.out)
    code, out = _train(capsys, "--method", "shot", "--init-from", start["run_id"])
    assert code == 0, out.err
    res = json.loads(out.out)
    assert res["status"] == "completed" and 0.0 <= _acc(res, "target") <= 1.0
    # the head is the source's, frozen: source accuracy stays well above chance
    assert _acc(res, "source") > 0.3


def test_shot_refuses_without_a_starting_run(capsys):
    code, out = _train(capsys, "--method", "shot")
    assert code == 2 and "--init-from RUN" in out.err and len(out.err.strip().splitlines()) == 1


def test_shot_refuses_a_starting_run_on_other_classes(capsys, tmp_path):
    table = tmp_path / "three.csv"
    table.write_text("a,b,label\n" + "".join(f"{i % 7 + 1},{i % 5 + 2},{i % 3}\n" for i in range(60)))
    assert main(["train", "--source", str(table), "--target", str(table), "--steps", "5", "--quiet"]) == 0
    capsys.readouterr()
    from lepton.kb import KnowledgeBase
    rid = KnowledgeBase().list_runs()["run_id"].iloc[0]
    code, out = _train(capsys, "--method", "shot", "--init-from", rid)
    assert code == 2 and "classes" in out.err


@pytest.mark.parametrize("method,hp", [("cdan", {"trade_off": -1}), ("mcc", {"temperature": 0}),
                                       ("mdd", {"margin": 1000}), ("afn", {"radius": -1}),
                                       ("shot", {"beta": 11}), ("dann", {"bsp": 2})])
def test_out_of_range_hparams_are_one_line(capsys, method, hp):
    code, out = _train(capsys, "--method", method, "--hparams", json.dumps(hp))
    assert code == 2 and next(iter(hp)) in out.err and method in out.err
