"""The training loop: sizes, partial batches, stop, non-finite losses, seeding, k-shot, devices."""
import threading

import numpy as np
import pytest

from lepton.config import RunConfig
from lepton.data import DataError
from lepton.data.catalog import DOMAINS, DomainSpec
from lepton.training import Callback, fit, k_shot_indices, resolve_device

from toydata import make_domain


@pytest.fixture
def toy_domains():
    """Register small seeded domains of different sizes (source 23 train, target 9 train)."""
    added = []

    def add(name, **kw):
        d = make_domain(name, **kw)
        if name not in DOMAINS:
            DOMAINS.add(name, DomainSpec(name, d.modality, "test domain", lambda _dir, d=d: d))
            added.append(name)
        return name
    yield add
    for n in added:
        DOMAINS._items.pop(n, None)


def test_different_sizes_partial_and_single_batches(toy_domains):
    s = toy_domains("toy-s", n=47, seed=0)   # 23 train -> batches 8, 8, 7
    t = toy_domains("toy-t", n=19, seed=1)   # 9 train
    for bs in (8, 1, 22):
        r = fit(RunConfig(s, t, "dann", epochs=2, batch_size=bs))
        assert r.status == "completed", r.error
        assert len(r.history) == 2
        assert {"selected", "last", "oracle"} <= set(r.checkpoints)


class _Stopper(Callback):
    def __init__(self, ev, after):
        self.ev, self.after = ev, after

    def on_step_end(self, run, step, epoch, losses):
        if step >= self.after:
            self.ev.set()


def test_cooperative_stop(toy_domains):
    s, t = toy_domains("toy-s", n=80), toy_domains("toy-t", n=40, seed=1)
    ev = threading.Event()
    r = fit(RunConfig(s, t, "source-only", epochs=50, batch_size=8), [_Stopper(ev, 12)], stop_event=ev)
    assert r.status == "stopped"
    assert 1 <= len(r.history) < 50  # 5 steps per epoch, stopped during epoch 3
    assert r.checkpoints["last"]["epoch"] == len(r.history)


def test_non_finite_loss_stops_with_name_and_step(toy_domains):
    from lepton.methods import METHODS
    from lepton.methods.supervised import SourceOnly

    class Exploding(SourceOnly):
        name = "exploding"

        def update(self, batch, step):
            out = super().update(batch, step)
            return {"cls": out["cls"] * (float("inf") if step >= 6 else 1.0)}

    METHODS.add("exploding", Exploding)
    try:
        s, t = toy_domains("toy-s", n=40), toy_domains("toy-t", n=40, seed=1)
        r = fit(RunConfig(s, t, "exploding", epochs=3, batch_size=4))
    finally:
        METHODS._items.pop("exploding")
    assert r.status == "failed"
    assert "loss 'cls' became inf at step 7 (epoch 2)" in r.error
    assert len(r.history) == 1  # epoch 1 finished and is kept


def test_same_seed_same_result_different_seed_differs(toy_domains):
    s, t = toy_domains("toy-s", n=60), toy_domains("toy-t", n=40, seed=1)
    a = fit(RunConfig(s, t, "dann", epochs=2, batch_size=8, seed=3))
    b = fit(RunConfig(s, t, "dann", epochs=2, batch_size=8, seed=3))
    c = fit(RunConfig(s, t, "dann", epochs=2, batch_size=8, seed=4))
    la = [h["losses"]["cls"] for h in a.history]
    assert la == [h["losses"]["cls"] for h in b.history]
    assert la != [h["losses"]["cls"] for h in c.history]


def test_k_shot_draw_and_too_large_k():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    idx = k_shot_indices(y, 2, seed=0)
    assert np.bincount(y[idx]).tolist() == [2, 2, 2]
    assert k_shot_indices(y, 2, seed=0).tolist() == idx.tolist()
    with pytest.raises(ValueError, match="class '1' has only 2"):
        k_shot_indices(y, 3, seed=0)


def test_finetune_uses_k_labelled_and_oracle_uses_all(toy_domains):
    s, t = toy_domains("toy-s", n=60), toy_domains("toy-t", n=60, seed=1)
    r = fit(RunConfig(s, t, "finetune", epochs=2, batch_size=8, hparams={"k": 2}))
    assert r.status == "completed"
    with pytest.raises(ValueError, match="lower k"):
        fit(RunConfig(s, t, "finetune", epochs=1, hparams={"k": 50}))


def test_empty_target_is_a_clear_error(toy_domains):
    s = toy_domains("toy-s", n=40)
    d = make_domain("toy-empty", n=40)
    d = d.with_arrays(x_train=d.x_train[:0], y_train=d.y_train[:0])
    DOMAINS.add("toy-empty", DomainSpec("toy-empty", "image", "", lambda _dir: d))
    try:
        with pytest.raises(DataError, match="no training examples"):
            fit(RunConfig(s, "toy-empty", "dann", epochs=1))
    finally:
        DOMAINS._items.pop("toy-empty")


def test_single_class_source_is_a_clear_error(toy_domains):
    t = toy_domains("toy-t", n=40)
    d = make_domain("toy-one", n=40)
    d = d.with_arrays(y_train=np.zeros_like(d.y_train))
    DOMAINS.add("toy-one", DomainSpec("toy-one", "image", "", lambda _dir: d))
    try:
        with pytest.raises(DataError, match="single class"):
            fit(RunConfig("toy-one", t, "source-only", epochs=1))
    finally:
        DOMAINS._items.pop("toy-one")


def test_device_resolution(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setenv("LEPTON_DEVICE", "cpu")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError):
        resolve_device("tpu")


def test_bad_config_values():
    with pytest.raises(ValueError, match="epochs"):
        RunConfig("digits", "digits-rotated", epochs=0).validate()
    with pytest.raises(ValueError, match="select"):
        RunConfig("digits", "digits-rotated", select="oracle").validate()


def test_config_roundtrip():
    c = RunConfig("digits", "digits-rotated", "dann", {"lr": 0.01}, 3, 16, 7, eval_domains=("digits-noisy",))
    assert RunConfig.from_dict(c.to_dict()) == c
