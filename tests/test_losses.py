"""Each loss against a hand computation."""
import math

import numpy as np
import pytest
import torch

from lepton import losses
from lepton.models import grad_reverse


def test_coral_matches_hand_computation():
    fs = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    ft = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    # covariance by hand (unbiased)
    cs = np.cov(fs.numpy().T)  # [[4, -2], [-2, 4]]
    ct = np.cov(ft.numpy().T)  # [[2, 0], [0, 0]]
    assert np.allclose(cs, [[4, -2], [-2, 4]]) and np.allclose(ct, [[2, 0], [0, 0]])
    expected = ((4 - 2) ** 2 + 2 * (-2) ** 2 + 4 ** 2) / (4 * 2 * 2)  # = 28 / 16
    assert losses.coral_loss(fs, ft).item() == pytest.approx(expected)


def test_coral_batch_of_one_is_zero_not_nan():
    out = losses.coral_loss(torch.ones(1, 4, requires_grad=True), torch.randn(5, 4))
    assert out.item() == 0.0 and torch.isfinite(out)
    out.backward()


def test_coral_rejects_mismatched_dims():
    with pytest.raises(ValueError, match="feature dimensions differ"):
        losses.coral_loss(torch.zeros(3, 2), torch.zeros(3, 4))


def test_mmd_single_kernel_hand_computation():
    fs = torch.tensor([[0.0], [1.0]])
    ft = torch.tensor([[3.0]])
    k = lambda a, b: math.exp(-((a - b) ** 2) / 2.0)  # sigma = 1
    kss = (k(0, 0) + k(0, 1) + k(1, 0) + k(1, 1)) / 4
    ktt = 1.0
    kst = (k(0, 3) + k(1, 3)) / 2
    assert losses.mmd_loss(fs, ft, sigmas=[1.0]).item() == pytest.approx(kss + ktt - 2 * kst, rel=1e-5)


def test_mmd_is_zero_for_identical_sets_and_positive_otherwise():
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    assert losses.mmd_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.mmd_loss(x, x + 3.0).item() > 0.1


def test_linear_mmd():
    assert losses.linear_mmd(torch.tensor([[0.0, 0.0], [2.0, 2.0]]), torch.tensor([[4.0, 1.0]])).item() == pytest.approx(9 + 0)


def test_domain_adversarial_loss_hand_computation():
    ls, lt = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    sig = lambda z: 1 / (1 + math.exp(-z))
    bs = -(math.log(sig(0.0)) + math.log(sig(2.0))) / 2
    bt = -math.log(1 - sig(-1.0))
    assert losses.domain_adversarial_loss(ls, lt).item() == pytest.approx((bs + bt) / 2, rel=1e-6)


def test_gradient_reversal_flips_and_scales_gradient():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = grad_reverse(x, np.float64(0.5))  # NumPy scalar is accepted
    assert torch.equal(y, x)
    (y * torch.tensor([3.0, 4.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-1.5, -2.0]))


def test_entropy_and_information_maximization():
    logits = torch.log(torch.tensor([[0.5, 0.5], [1.0, 1e-12]]))
    h = losses.entropy(logits)
    assert h[0].item() == pytest.approx(math.log(2), rel=1e-5) and h[1].item() == pytest.approx(0.0, abs=1e-6)
    # mean prediction (0.75, 0.25): H = -(.75 ln .75 + .25 ln .25); IM = H(mean) - mean H
    hm = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert losses.information_maximization(logits).item() == pytest.approx(hm - math.log(2) / 2, rel=1e-4)


def test_soft_neighborhood_density_two_points():
    # two samples: each has a single neighbour -> softmax over one element -> entropy 0
    assert losses.soft_neighborhood_density(torch.randn(2, 3)).item() == pytest.approx(0.0, abs=1e-6)
    # three identical predictions: uniform over 2 neighbours -> ln 2
    assert losses.soft_neighborhood_density(torch.zeros(3, 4)).item() == pytest.approx(math.log(2), rel=1e-5)
    with pytest.raises(ValueError):
        losses.soft_neighborhood_density(torch.zeros(1, 4))


def test_reconstruction_loss():
    x = torch.zeros(2, 1, 2, 2)
    xh = torch.ones(2, 1, 2, 2)
    assert losses.reconstruction_loss(x, xh).item() == pytest.approx(0.5 * 4)


def test_relative_coral_is_scale_free_and_bounded():
    """The relative form (issue 12) is unchanged when the features are multiplied by 1,000, where
    the paper form grows by 1,000^4; it lies in [0, 4]."""
    g = torch.Generator().manual_seed(0)
    fs, ft = torch.randn(64, 16, generator=g), 2.0 * torch.randn(48, 16, generator=g) + 1.0
    rel = losses.coral_loss(fs, ft, relative=True)
    assert losses.coral_loss(1000 * fs, 1000 * ft, relative=True).item() == pytest.approx(rel.item(), rel=1e-4)
    assert losses.coral_loss(1000 * fs, 1000 * ft).item() == pytest.approx(1e12 * losses.coral_loss(fs, ft).item(),
                                                                          rel=1e-3)
    assert 0.0 < rel.item() <= 4.0
    assert losses.coral_loss(fs, fs.clone(), relative=True).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.coral_loss(torch.zeros(4, 3), torch.zeros(5, 3), relative=True).item() == 0.0
