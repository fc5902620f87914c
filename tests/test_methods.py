"""Contract test over the method registry: a few updates on tiny data, finite losses, right shapes."""
import numpy as np
import pytest
import torch

from lepton.methods import METHODS, Batch, Method, build_method, dann_lambda, method_names


def _batch(shape=(1, 8, 8), k=3, bs=5, bt=3, n_sources=1):
    g = torch.Generator().manual_seed(0)
    sources = [(f"s{i}", torch.rand(bs, *shape, generator=g), torch.arange(bs) % k) for i in range(n_sources)]
    return Batch(sources, torch.rand(bt, *shape, generator=g), (torch.rand(k, *shape, generator=g), torch.arange(k)))


@pytest.mark.parametrize("name", method_names())
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 28, 28), (12,)])
def test_contract(name, shape):
    m = build_method(name, shape, 3, {}, total_steps=4)
    assert isinstance(m, torch.nn.Module) and m.name == name
    for step in range(4):
        out = m.update(_batch(shape), step)
        assert out and all(np.isfinite(v) for v in out.values()), out
    x = torch.rand(7, *shape)
    assert m.predict(x).shape == (7, 3)
    assert m.features(x).shape == (7, m.net.feature_dim)
    # return types do not depend on mode
    m.train()
    assert m.predict(x).shape == (7, 3)


@pytest.mark.parametrize("name", method_names())
def test_batch_of_one_and_unequal_sizes(name):
    m = build_method(name, (1, 8, 8), 3, {}, total_steps=2)
    out = m.update(_batch(bs=1, bt=1), 1)
    assert all(np.isfinite(v) for v in out.values())


@pytest.mark.parametrize("name", method_names())
def test_several_sources_in_one_batch(name):
    m = build_method(name, (12,), 3, {}, total_steps=2)
    b = _batch((12,), bs=30, n_sources=3)  # 10 per class: enough for the meta-learners' episodes
    m.on_data(b.sources)  # the loop hands over the whole source splits first
    out = m.update(b, 0)
    assert all(np.isfinite(v) for v in out.values())


def test_batch_pools_sources_and_refuses_undeclared_streams():
    b = _batch((4,), bs=2, n_sources=2)
    assert b.xs.shape == (4, 4) and b.ys.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="'target'"):
        Batch(b.sources).xt


@pytest.mark.parametrize("name", METHODS.names())
def test_hparams_declared_with_range_and_help(name):
    cls = METHODS.get(name)
    for k, h in cls.all_hparams().items():
        assert h.help, k
        assert h.validate(k, h.default) == h.default
        if h.kind in ("int", "float"):
            with pytest.raises(ValueError, match=k):
                cls.validate_hparams({k: h.high * 10 + 1})


def test_hparam_errors_name_the_method():
    with pytest.raises(ValueError, match="method 'dann'"):
        METHODS.get("dann").validate_hparams({"nope": 1})
    with pytest.raises(ValueError, match="method 'deep-coral'"):
        METHODS.get("deep-coral").validate_hparams({"trade_off": -1})


def test_registry_sets_each_name():
    for name in METHODS.names():
        assert METHODS.get(name).name == name


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
    assert METHODS.get("target-only").oracle and METHODS.get("target-only").target_labels() == "all"
    assert all(not METHODS.get(n).oracle for n in METHODS.names() if n != "target-only")
    assert all(METHODS.get(n).target_labels() != "all" for n in METHODS.names() if n != "target-only")


def test_fresh_instances_do_not_share_state():
    a = build_method("dann", (1, 8, 8), 3, {}, seed=0)
    b = build_method("dann", (1, 8, 8), 3, {}, seed=0)
    assert all(pa is not pb for pa, pb in zip(a.parameters(), b.parameters()))
    assert a.optimizer is not b.optimizer
    before = {k: v.clone() for k, v in b.state_dict().items()}
    for k, v in a.state_dict().items():  # same seed: the same initialisation
        assert torch.equal(v, before[k]), k
    a.update(_batch(), 0)
    assert not torch.equal(a.net.head.weight, b.net.head.weight)  # a trained, b did not move
    for k, v in b.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_seed_sets_the_initialisation():
    a, b = (build_method("source-only", (12,), 3, {}, seed=s) for s in (1, 2))
    assert not torch.equal(a.net.head.weight, b.net.head.weight)


def test_a_method_is_a_module_around_an_injected_net():
    from lepton.models import TransferNet
    net = TransferNet((12,), 3)
    m = METHODS.get("dann")(net, {})
    assert m.net is net and isinstance(m, Method)
    assert set(k.split(".")[0] for k in m.state_dict()) == {"net", "discriminator"}


def test_transfer_module_starts_as_identity():
    m = build_method("source-only", (1, 8, 8), 3, {})
    f = torch.randn(4, m.net.feature_dim)
    assert torch.equal(m.net.transfer(f), f)
