"""Contract test over the method registry: a few updates on tiny data, finite losses, right shapes."""
import numpy as np
import pytest
import torch

from lepton.methods import METHODS, dann_lambda


def _batch(shape=(1, 8, 8), k=3, bs=5, bt=3):
    g = torch.Generator().manual_seed(0)
    return {"xs": torch.rand(bs, *shape, generator=g), "ys": torch.arange(bs) % k,
            "xt": torch.rand(bt, *shape, generator=g), "xl": torch.rand(k, *shape, generator=g),
            "yl": torch.arange(k)}


@pytest.mark.parametrize("name", METHODS.names())
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 28, 28), (12,)])
def test_contract(name, shape):
    cls = METHODS.get(name)
    m = cls(shape, 3, {}, total_steps=4)
    for step in range(4):
        m.step = step
        out = m.update(_batch(shape))
        assert out and all(np.isfinite(v) for v in out.values()), out
    x = torch.rand(7, *shape)
    assert m.predict(x).shape == (7, 3)
    assert m.features(x).shape == (7, m.net.feature_dim)
    # return types do not depend on mode
    m.train()
    assert m.predict(x).shape == (7, 3)


@pytest.mark.parametrize("name", METHODS.names())
def test_batch_of_one_and_unequal_sizes(name):
    m = METHODS.get(name)((1, 8, 8), 3, {}, total_steps=2)
    m.step = 1
    out = m.update(_batch(bs=1, bt=1))
    assert all(np.isfinite(v) for v in out.values())


@pytest.mark.parametrize("name", METHODS.names())
def test_hparams_declared_with_range_and_help(name):
    cls = METHODS.get(name)
    for k, h in cls.all_hparams().items():
        assert h.help, k
        assert h.validate(k, h.default) == h.default
        if h.kind in ("int", "float"):
            with pytest.raises(ValueError, match=k):
                cls.validate_hparams({k: h.high * 10 + 1})


def test_unknown_hparam_lists_valid():
    with pytest.raises(ValueError, match="valid: lr"):
        METHODS.get("dann").validate_hparams({"nope": 1})


def test_unknown_method_lists_names():
    with pytest.raises(KeyError, match="valid methods: source-only"):
        METHODS.get("adda-x")


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + np.exp(-10)) - 1)
    assert 0.46 < dann_lambda(0.1) < 0.47  # 2/(1+e^-1)-1 = 0.4621


def test_oracle_is_named():
    assert METHODS.get("target-only").oracle and METHODS.get("target-only").target_labels == "all"
    assert all(not METHODS.get(n).oracle for n in METHODS.names() if n != "target-only")


def test_fresh_instances_do_not_share_state():
    a = METHODS.get("dann")((1, 8, 8), 3, {})
    b = METHODS.get("dann")((1, 8, 8), 3, {})
    a.update(_batch())
    assert a.step == b.step == 0
    assert not torch.equal(a.net.head.weight, b.net.head.weight) or a.net.head.weight is not b.net.head.weight


def test_transfer_module_starts_as_identity():
    m = METHODS.get("source-only")((1, 8, 8), 3, {})
    f = torch.randn(4, m.net.feature_dim)
    assert torch.equal(m.net.transfer(f), f)
