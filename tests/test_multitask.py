"""Multi-task learning: one head per domain, equal or learned weights logged per epoch, learning on digits."""
import numpy as np
import pytest
import torch

from lepton.methods import Batch, build_method
from lepton.pipeline import run_pipeline

from toydata import make_domain


def _sources(doms):
    return [(d.name, torch.from_numpy(d.x_train), torch.from_numpy(d.y_train)) for d in doms]


def _step_batch(doms, bs=5):
    return Batch([(n, x[:bs], y[:bs]) for n, x, y in _sources(doms)], torch.rand(3, 1, 8, 8))



def test_one_head_per_domain_and_weights_in_each_step():
    doms = [make_domain(f"mt{i}", n=40, seed=i) for i in range(3)]
    m = build_method("multitask", (1, 8, 8), 3, {"weighting": "uncertainty"})
    m.on_data(_sources(doms))
    assert len(m.heads) == 2 and m.task_weights.log_vars.shape == (3,)
    out = m.update(_step_batch(doms), 0)
    assert {f"mt{i}/cls" for i in range(3)} | {f"weight:mt{i}/cls" for i in range(3)} <= set(out)
    assert all(np.isfinite(v) for v in out.values())
    # the first source's head is the run's classifier
    assert m._head(0) is m.net.head


def test_equal_weights_are_one_over_n_and_plain_mean():
    doms = [make_domain(f"mt{i}", n=40, seed=i) for i in range(2)]
    m = build_method("multitask", (1, 8, 8), 3, {"weighting": "equal"})
    m.on_data(_sources(doms))
    out = m.update(_step_batch(doms), 0)
    assert out["weight:mt0/cls"] == out["weight:mt1/cls"] == 0.5
    assert out["loss"] == pytest.approx((out["mt0/cls"] + out["mt1/cls"]) / 2, rel=1e-5)


def test_log_variances_get_no_weight_decay():
    m = build_method("multitask", (12,), 3, {"weighting": "uncertainty", "weight_decay": 0.01})
    groups = m.optimizer.param_groups
    tw = m.task_weights.log_vars
    assert [g["weight_decay"] for g in groups if any(p is tw for p in g["params"])] == [0.0]


def test_without_domains_it_trains_the_source_task():
    m = build_method("multitask", (12,), 3, {})
    out = m.update(Batch([("s", torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))], torch.rand(2, 12)), 0)
    assert set(out) == {"loss", "source/cls", "weight:source/cls"}


def test_uncertainty_weights_are_learned_and_logged_per_epoch_on_digits():
    res = run_pipeline(["digits", "digits-inverted"], "digits-rotated", ["multitask:weighting=uncertainty"], 3,
                       k=5, draws=2, record=False)
    st = res.stages[0]
    w = st.metrics["task_weights"]
    assert len(w) == 3 and set(w[0]) == {"digits/cls", "digits-inverted/cls"}
    # weights start at 1 and move each epoch towards their optimum 1 / (2 L_d) (Kendall et al., eq. 10)
    for task in w[0]:
        target = 1.0 / (2.0 * st.metrics["losses"][task])
        steps = [1.0] + [row[task] for row in w]
        assert all((b - a) * (target - a) > 0 for a, b in zip(steps, steps[1:])), (task, steps, target)
    assert st.metrics["source_acc"] > 0.8  # the shared encoder learned the first source
    assert st.metrics["probe"]["mean"] > 0.4
