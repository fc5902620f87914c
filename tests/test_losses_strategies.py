"""The strategy losses and update rules against hand computations."""
import math

import pytest
import torch

from lepton import losses
from lepton.methods.meta import reptile_interpolate, sgd_step
from lepton.methods.pretraining import augment_images, rotate_images
from toydata import assert_seeded_transform



def _nt_xent_by_definition(z1, z2, tau):
    """SimCLR eq. 1, written out with loops."""
    z = [[a / math.sqrt(sum(b * b for b in v)) for a in v] for v in z1 + z2]
    n = len(z1)
    sim = lambda i, j: sum(a * b for a, b in zip(z[i], z[j])) / tau  # noqa: E731
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denom = sum(math.exp(sim(i, k)) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(sim(i, j)) / denom)
    return total / (2 * n)


def test_nt_xent_orthogonal_pairs_by_hand():
    # views of image 1 are e1, of image 2 are e2: each anchor sees its positive (cos 1) and two
    # negatives (cos 0): l = -log(e / (e + 2)) for all four anchors.
    e = torch.eye(2)
    assert losses.nt_xent_loss(e, e.clone(), 1.0).item() == pytest.approx(math.log((math.e + 2) / math.e), rel=1e-6)


def test_nt_xent_matches_definition_on_a_general_case():
    z1 = [[1.0, 0.0, 2.0], [1.0, 1.0, 0.0], [0.0, -1.0, 1.0]]
    z2 = [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [2.0, 1.0, -1.0]]
    got = losses.nt_xent_loss(torch.tensor(z1), torch.tensor(z2), 0.5).item()
    assert got == pytest.approx(_nt_xent_by_definition(z1, z2, 0.5), rel=1e-5)


def test_nt_xent_single_pair_is_zero_and_bad_input_errors():
    assert losses.nt_xent_loss(torch.randn(1, 4), torch.randn(1, 4)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same 2-D shape"):
        losses.nt_xent_loss(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        losses.nt_xent_loss(torch.randn(3, 4), torch.randn(3, 4), 0.0)
    with pytest.raises(ValueError, match="at least one pair"):
        losses.nt_xent_loss(torch.zeros(0, 4), torch.zeros(0, 4))


def test_uncertainty_weighted_sum_by_hand():
    L = torch.tensor([2.0, 0.5])
    s = torch.tensor([0.0, math.log(2.0)])
    # classification: exp(-s) L + s/2  ->  2 + 0.25 + ln(2)/2
    assert losses.uncertainty_weighted_sum(L, s).item() == pytest.approx(2 + 0.25 + math.log(2) / 2, rel=1e-6)
    # second task a regression: 1/2 exp(-s) L + s/2  ->  2 + 0.125 + ln(2)/2
    reg = torch.tensor([False, True])
    assert losses.uncertainty_weighted_sum(L, s, reg).item() == pytest.approx(2 + 0.125 + math.log(2) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="same length"):
        losses.uncertainty_weighted_sum(L, torch.zeros(3))


def test_uncertainty_weight_optimum_is_one_over_twice_the_loss():
    # d/ds [exp(-s) L + s/2] = 0  at  s = ln(2L), i.e. the weight exp(-s) = 1 / (2L)
    L = torch.tensor([0.8])
    s = torch.tensor([math.log(1.6)], requires_grad=True)
    losses.uncertainty_weighted_sum(L, s).backward()
    assert s.grad.item() == pytest.approx(0.0, abs=1e-6)


def test_sgd_step_and_reptile_interpolation_by_hand():
    theta = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.5)}
    new = sgd_step(theta, [torch.tensor([0.5, -1.0]), torch.tensor(2.0)], 0.1)
    assert torch.allclose(new["w"], torch.tensor([0.95, 2.1])) and new["b"].item() == pytest.approx(0.3)
    assert new["w"].requires_grad and new["w"].grad_fn is None  # first order: a fresh leaf
    t0 = {"w": torch.tensor([0.0, 0.0])}
    out = reptile_interpolate(t0, [{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 4.0])}], 0.5)
    assert torch.allclose(out["w"], torch.tensor([1.0, 1.5]))  # 0 + 0.5 * ([2, 3] - 0)
    with pytest.raises(ValueError):
        reptile_interpolate(t0, [], 0.5)


def test_rotate_images_by_hand():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]).repeat(4, 1, 1, 1)  # (4, 1, 2, 2)
    out = rotate_images(x, torch.tensor([0, 1, 2, 3]))
    assert out[0, 0].tolist() == [[1, 2], [3, 4]]
    assert out[1, 0].tolist() == [[2, 4], [1, 3]]  # 90 degrees counter-clockwise
    assert out[2, 0].tolist() == [[4, 3], [2, 1]]
    assert out[3, 0].tolist() == [[3, 1], [4, 2]]


def test_augment_images_is_seeded_and_in_range():
    a = assert_seeded_transform(augment_images, torch.rand(6, 3, 12, 12))
    assert a.min() >= 0 and a.max() <= 1
