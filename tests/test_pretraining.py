"""Self-supervised pretraining (``ssl``): objectives, modality checks, every domain used, learning on digits."""
import math

import numpy as np
import pytest
import torch

from lepton.methods import METHODS
from lepton.pipeline import run_pipeline

from toydata import make_domain



def _batch(shape, bs=6, bt=4, k=3):
    g = torch.Generator().manual_seed(0)
    return {"xs": torch.rand(bs, *shape, generator=g), "ys": torch.arange(bs) % k,
            "xt": torch.rand(bt, *shape, generator=g)}


@pytest.mark.parametrize("objective", ["autoencoder", "rotation", "simclr"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 12, 12)])
def test_objectives_step_with_finite_losses(objective, shape):
    m = METHODS.get("ssl")(shape, 3, {"objective": objective}, total_steps=3)
    names = {"autoencoder": "reconstruction", "rotation": "rotation", "simclr": "nt_xent"}
    for _ in range(3):
        out = m.update(_batch(shape))
        assert set(out) == {names[objective], "probe"} and all(np.isfinite(v) for v in out.values())
    assert m.features(torch.rand(5, *shape)).shape == (5, m.net.feature_dim)


@pytest.mark.parametrize("objective", ["rotation", "simclr"])
def test_image_objectives_refuse_feature_vectors(objective):
    with pytest.raises(ValueError, match=f"ssl objective '{objective}' needs images .* feature vectors of shape "
                                         f"\\(12,\\); use objective=autoencoder"):
        METHODS.get("ssl")((12,), 3, {"objective": objective})
    METHODS.get("ssl")((12,), 3, {"objective": "autoencoder"}).update(_batch((12,)))


def test_rotation_refuses_non_square_images():
    with pytest.raises(ValueError, match="needs square images; got 8x10"):
        METHODS.get("ssl")((1, 8, 10), 3, {"objective": "rotation"})


def test_every_attached_domain_and_the_target_feed_each_step(monkeypatch):
    doms = [make_domain(f"d{i}", n=40, seed=i) for i in range(3)]
    m = METHODS.get("ssl")((1, 8, 8), 3, {"objective": "autoencoder"})
    m.attach_domains(doms, batch_size=5, seed=0)
    seen = []
    real = m._ssl_loss
    monkeypatch.setattr(m, "_ssl_loss", lambda x: (seen.append(len(x)), real(x))[1])
    m.update(_batch((1, 8, 8), bs=6, bt=4))
    assert seen == [6 + 5 + 5 + 4]  # loop source batch + one batch per extra domain + target batch


def test_attach_rejects_a_domain_of_another_shape():
    m = METHODS.get("ssl")((1, 8, 8), 3, {})
    with pytest.raises(ValueError, match="domain 'd1' has inputs \\(1, 6, 6\\)"):
        m.attach_domains([make_domain("d0"), make_domain("d1", shape=(1, 6, 6))])


def test_online_probe_leaves_the_encoder_alone():
    m = METHODS.get("ssl")((1, 8, 8), 3, {"objective": "rotation"})
    b = _batch((1, 8, 8))
    m.modules.zero_grad()
    with torch.no_grad():
        fs = m.net.features(b["xs"])
    torch.nn.functional.cross_entropy(m.net.head(fs.detach()), b["ys"]).backward()
    assert all(p.grad is None for p in m.net.encoder.parameters())  # the probe loss reaches only the head


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
