"""Self-supervised pretraining (``ssl``): objectives, modality checks, every domain used, learning on digits."""
import math

import numpy as np
import pytest
import torch

from lepton.methods import Batch, build_method
from lepton.pipeline import run_pipeline

from toydata import make_domain



def _batch(shape, bs=6, bt=4, k=3, n_sources=1):
    g = torch.Generator().manual_seed(0)
    return Batch([(f"s{i}", torch.rand(bs, *shape, generator=g), torch.arange(bs) % k) for i in range(n_sources)],
                 torch.rand(bt, *shape, generator=g))


def _ssl(shape, hparams=None, **kw):
    return build_method("ssl", shape, 3, hparams or {}, **kw)


@pytest.mark.parametrize("objective", ["autoencoder", "rotation", "simclr"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 12, 12)])
def test_objectives_step_with_finite_losses(objective, shape):
    m = _ssl(shape, {"objective": objective}, total_steps=3)
    names = {"autoencoder": "reconstruction", "rotation": "rotation", "simclr": "nt_xent"}
    for step in range(3):
        out = m.update(_batch(shape), step)
        assert set(out) == {names[objective], "probe"} and all(np.isfinite(v) for v in out.values())
    assert m.features(torch.rand(5, *shape)).shape == (5, m.net.feature_dim)


@pytest.mark.parametrize("objective", ["rotation", "simclr"])
def test_image_objectives_refuse_feature_vectors(objective):
    with pytest.raises(ValueError, match=f"ssl objective '{objective}' needs images .* feature vectors of shape "
                                         f"\\(12,\\); use objective=autoencoder"):
        _ssl((12,), {"objective": objective})
    _ssl((12,), {"objective": "autoencoder"}).update(_batch((12,)), 0)


def test_rotation_refuses_non_square_images():
    with pytest.raises(ValueError, match="needs square images; got 8x10"):
        _ssl((1, 8, 10), {"objective": "rotation"})


def test_every_source_domain_and_the_target_feed_each_step(monkeypatch):
    m = _ssl((1, 8, 8), {"objective": "autoencoder"})
    seen = []
    real = m._ssl_loss
    monkeypatch.setattr(m, "_ssl_loss", lambda x: (seen.append(len(x)), real(x))[1])
    m.update(_batch((1, 8, 8), bs=5, bt=4, n_sources=3), 0)
    assert seen == [5 + 5 + 5 + 4]  # one batch per source domain + the target batch


def test_on_data_rejects_a_domain_of_another_shape():
    m = _ssl((1, 8, 8))
    d0, d1 = make_domain("d0"), make_domain("d1", shape=(1, 6, 6))
    t = lambda d: (d.name, torch.from_numpy(d.x_train), torch.from_numpy(d.y_train))  # noqa: E731
    with pytest.raises(ValueError, match="domain 'd1' has inputs \\(1, 6, 6\\)"):
        m.on_data([t(d0), t(d1)])


def test_online_probe_leaves_the_encoder_alone(monkeypatch):
    m = _ssl((1, 8, 8), {"objective": "rotation", "weight_decay": 0.0})
    # no self-supervised signal: whatever moves is moved by the probe loss alone
    monkeypatch.setattr(m, "_ssl_loss", lambda x: ("rotation", m.net.features(x).sum() * 0.0))
    enc = {k: v.clone() for k, v in m.net.encoder.state_dict().items()}
    head = m.net.head.weight.detach().clone()
    out = m.update(_batch((1, 8, 8)), 0)
    assert out["probe"] > 0
    assert not torch.equal(m.net.head.weight, head)  # the probe learned
    for k, v in m.net.encoder.state_dict().items():  # the encoder did not
        assert torch.equal(v, enc[k]), k


@pytest.mark.parametrize("objective, key", [("autoencoder", "reconstruction"), ("rotation", "rotation")])
def test_ssl_learns_on_digits(objective, key):
    res = run_pipeline(["digits", "digits-noisy"], "digits-rotated", [f"ssl:objective={objective}"], 3, k=5,
                       draws=3, record=False)
    st = res.stages[0]
    assert st.status == "completed"
    last = st.metrics["losses"][key]  # mean over the last epoch
    # untrained: reconstruction ~5.9 (1/2 sum of squares over 64 pixels), rotation ln 4 = 1.39
    assert last < {"autoencoder": 3.5, "rotation": 0.9 * math.log(4)}[objective]
    assert st.metrics["probe"]["mean"] > 0.4  # chance is 0.1
