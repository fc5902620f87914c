"""The pipeline: stage parsing and order, every bad input before training, KB records, progress, stop, CLI."""
import threading

import numpy as np
import pytest

from lepton.cli import main
from lepton.data.catalog import DOMAINS, DomainSpec
from lepton.kb import KnowledgeBase
from lepton.cli.pipeline import format_result
from lepton.pipeline import PipelineResult, run_pipeline
from lepton.strategies.stages import parse_stage, parse_stages, valid_stages

from toydata import make_domain



@pytest.fixture
def toy():
    """Register small seeded domains; returns ``add(name, **make_domain kwargs) -> name``."""
    added = []

    def add(name, **kw):
        d = make_domain(name, **kw)
        DOMAINS.add(name, DomainSpec(name, d.modality, "test domain", lambda _dir, d=d: d), replace=True)
        added.append(name)
        return name
    yield add
    for n in added:
        DOMAINS._items.pop(n, None)


@pytest.fixture
def three(toy):
    return [toy(f"pl-{i}", n=60, seed=i) for i in range(3)]


# ----------------------------------------------------------------------------- parsing and order
def test_stage_kinds_and_settings():
    specs = parse_stages(["ssl:objective=rotation:epochs=3", "multitask:weighting=uncertainty", "reptile",
                          "finetune:k=2", "evaluate:ks=1,5:draws=3"])
    assert [s.kind for s in specs] == ["ssl", "multitask", "meta", "transfer", "evaluate"]
    assert specs[0].hparams["objective"] == "rotation" and specs[0].epochs == 3 and "epochs" not in specs[0].hparams
    assert specs[3].hparams["k"] == 2 and specs[4].hparams["ks"] == [1, 5] and specs[4].hparams["draws"] == 3
    assert specs[0].label() == "ssl:objective=rotation:epochs=3"
    v = valid_stages()
    assert v["meta"] == ["maml", "reptile"] and "dann" in v["transfer"] and "ssl" not in v["transfer"]


def test_unknown_stage_lists_valid_stages():
    with pytest.raises(KeyError, match="unknown stage 'pretrain'.*valid stages: ssl: ssl; multitask: multitask; "
                                       "meta: maml, reptile; transfer: source-only"):
        parse_stages(["pretrain", "evaluate"])


@pytest.mark.parametrize("stages, msg", [
    (["finetune", "ssl"], "stage 'ssl' \\(ssl\\) cannot come after 'finetune' \\(transfer\\)"),
    (["evaluate", "dann"], "cannot come after 'evaluate'"),
    (["multitask", "ssl"], "cannot come after 'multitask'"),
    (["maml", "reptile"], "'maml' and 'reptile' are both meta stages"),
    (["dann", "finetune"], "both transfer stages"),
    ([], "at least one stage"),
])
def test_misordered_or_repeated_stages(stages, msg):
    with pytest.raises(ValueError, match=msg):
        parse_stages(stages)


@pytest.mark.parametrize("text, msg", [
    ("ssl:objective=jigsaw", "objective='jigsaw' is not one of autoencoder, rotation, simclr"),
    ("ssl:objective", "expected KEY=VALUE"),
    ("ssl:epochs=0", "epochs must be a whole number"),
    ("multitask:weights=equal", "unknown hyper-parameter weights"),
    ("evaluate:ks=0", "every k in ks must be >= 1"),
    ("evaluate:ks=a,b", "ks must be whole numbers"),
    ("evaluate:steps=3", "unknown setting steps for stage evaluate"),
    ("maml:inner_lr=100", "inner_lr=100 is out of range"),
])
def test_bad_stage_settings_are_named(text, msg):
    with pytest.raises(ValueError, match=msg):
        parse_stage(text)


# ----------------------------------------------------------------------------- bad input, before training
def _no_runs():
    return len(KnowledgeBase().list_runs()) == 0


def test_pretraining_on_a_single_domain_is_refused(three):
    for stage in ("ssl", "multitask"):
        with pytest.raises(ValueError, match=f"stage '{stage}' .*pretraining on a single domain is not supported"):
            run_pipeline([three[0]], three[1], [stage, "evaluate"], 1)
    assert _no_runs()


def test_target_among_sources_and_repeated_sources(three):
    with pytest.raises(ValueError, match="target 'pl-1' is also listed as a source"):
        run_pipeline(three[:2], three[1], ["ssl"], 1)
    with pytest.raises(ValueError, match="listed twice: pl-0"):
        run_pipeline([three[0], three[0]], three[1], ["ssl"], 1)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        run_pipeline(three[:2], three[2], ["evaluate"], 1)


def test_k_above_a_target_class_is_named_before_training(three):
    # pl-2 has 30 training examples over 3 classes: 10 per class
    with pytest.raises(ValueError, match="k=11 labelled target examples per class asked for, but class '0' has only 10"):
        run_pipeline(three[:2], three[2], ["ssl", "finetune", "evaluate"], 1, k=11)
    with pytest.raises(ValueError, match="k=50 .* has only 10"):
        run_pipeline(three[:2], three[2], ["ssl", "evaluate"], 1, k=2, eval_ks=[1, 50])
    assert _no_runs()


def test_meta_episodes_larger_than_a_class_are_named(three):
    with pytest.raises(ValueError, match="stage maml: meta-learning episodes need k_shot \\+ query = 20 examples per "
                                         "class, but class 0 of domain 'pl-0' has only 10"):
        run_pipeline(three[:2], three[2], ["maml:k_shot=15", "evaluate"], 1)
    assert _no_runs()


@pytest.mark.parametrize("objective", ["rotation", "simclr"])
def test_image_objective_on_feature_vectors_is_refused(toy, objective):
    a, b, c = (toy(f"pl-f{i}", n=60, seed=i, shape=(12,), modality="features") for i in range(3))
    with pytest.raises(ValueError, match=f"stage ssl: ssl objective '{objective}' needs images .* feature vectors"):
        run_pipeline([a, b], c, [f"ssl:objective={objective}", "evaluate"], 1)
    assert _no_runs()
    res = run_pipeline([a, b], c, ["ssl:objective=autoencoder", "evaluate"], 1, k=2, draws=2, record=False)
    assert res.status == "completed"


# ----------------------------------------------------------------------------- running
def test_end_to_end_records_each_stage_with_its_parent(three):
    events = []
    res = run_pipeline(three[:2], three[2], ["ssl:objective=rotation", "multitask:weighting=uncertainty",
                                             "maml:k_shot=2:query=2", "finetune", "evaluate:ks=1,3"],
                       1, seed=3, k=3, progress=events.append, batch_size=8, draws=2)
    assert isinstance(res, PipelineResult) and res.status == "completed", res.error
    assert [s.name for s in res.stages] == ["ssl", "multitask", "maml", "finetune", "evaluate"]
    kb = KnowledgeBase()
    ids = [s.run_id for s in res.stages[:4]]
    assert all(ids) and len(set(ids)) == 4
    assert [s.parent for s in res.stages] == [None, *ids]
    for s in res.stages[:4]:
        run = kb.get_run(s.run_id)
        assert run["status"] == "completed" and run["parent"] == s.parent
        assert run["config"]["method"] == s.name and run["config"]["source"] == list(three[:2])
        assert run["roles"] == ["source", "source", "target"]  # every source is a source, not "eval"
        assert (run["run_dir"] / "stage.json").exists()
        assert 0.0 <= s.metrics["probe"]["mean"] <= 1.0 and len(s.metrics["probe"]["values"]) == 2
        kb.load_state(s.run_id, "last")  # each stage's encoder is stored and reusable
    assert kb.get_run(ids[3])["config"]["hparams"]["k"] == 3  # the pipeline's k reaches finetune
    assert (kb.get_run(ids[3])["run_dir"] / "evaluation.json").exists()
    assert set(res.stages[1].metrics["task_weights"][0]) == {f"{three[0]}/cls", f"{three[1]}/cls"}
    rows = {(r["protocol"], r["k"]): r for r in res.evaluation["rows"]}
    assert set(rows) == {("no target labels", 0), ("linear-probe", 1), ("fine-tune", 1), ("linear-probe", 3),
                         ("fine-tune", 3)}
    assert rows[("fine-tune", 3)]["draws"] == 2 and res.evaluation["seeds"] == [3, 4]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "stage_start" and kinds[-1] == "done" and kinds.count("stage_end") == 5
    assert kinds.count("epoch") == 4 and "step" in kinds
    run_events = [e for e in events if e["event"] == "stage_run"]
    assert [e["run_id"] for e in run_events] == ids
    text = format_result(res)
    assert "fine-tune" in text and ids[0] in text


def test_stop_between_steps_stops_the_pipeline(three):
    ev = threading.Event()

    def progress(e):
        if e["event"] == "step" and e["index"] == 1:
            ev.set()
    res = run_pipeline(three[:2], three[2], ["ssl", "multitask", "finetune", "evaluate"], 2, progress=progress,
                       stop_event=ev, batch_size=8, draws=2, k=2)
    assert res.status == "stopped"
    assert [s.status for s in res.stages] == ["completed", "stopped"]
    assert KnowledgeBase().get_run(res.stages[1].run_id)["status"] == "stopped"


def test_evaluate_a_stored_encoder_with_init_from(three):
    first = run_pipeline(three[:2], three[2], ["source-only"], 1, k=2, batch_size=8, draws=2)
    rid = first.stages[0].run_id
    res = run_pipeline(three[:2], three[2], ["evaluate:ks=2"], 1, k=2, draws=2, init_from=rid)
    assert res.status == "completed" and res.stages[0].parent == rid
    zero = res.evaluation["rows"][0]["mean"]
    assert zero == pytest.approx(first.stages[0].metrics["target_acc"])  # the stored head predicts the same
    again = run_pipeline(three[:2], three[2], ["finetune:pretrain_fraction=0", "evaluate"], 1, k=2, draws=2,
                         init_from=rid, batch_size=8)
    assert again.stages[0].parent == rid and KnowledgeBase().get_run(again.stages[0].run_id)["parent"] == rid


def test_same_seed_same_numbers(three):
    kw = dict(k=2, draws=2, batch_size=8, record=False)
    a = run_pipeline(three[:2], three[2], ["reptile:k_shot=2:query=2", "evaluate"], 1, **kw)
    b = run_pipeline(three[:2], three[2], ["reptile:k_shot=2:query=2", "evaluate"], 1, **kw)
    assert a.evaluation["rows"] == b.evaluation["rows"]
    assert np.isfinite(a.stages[0].metrics["probe"]["mean"])


def test_cli_pipeline_and_its_errors(three, capsys):
    rc = main(["pipeline", "--domains", *three[:2], "--target", three[2], "--stages", "ssl", "evaluate",
               "--epochs", "1", "--k", "2", "--draws", "2", "--batch-size", "8", "--quiet", "--no-kb"])
    out = capsys.readouterr().out
    assert rc == 0 and "linear-probe" in out and "fine-tune" in out
    assert main(["pipeline", "--domains", *three[:2], "--target", three[2], "--stages", "jigsaw"]) == 2
    assert "unknown stage 'jigsaw'" in capsys.readouterr().err
    assert main(["pipeline", "--domains", three[0], "--target", three[2], "--stages", "ssl", "evaluate"]) == 2
    assert "single domain" in capsys.readouterr().err
    assert main(["pipeline", "--domains", *three[:2], "--target", three[2], "--stages", "evaluate", "finetune"]) == 2
    assert "cannot come after 'evaluate'" in capsys.readouterr().err
