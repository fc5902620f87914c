"""The losses of the methods that lead the field (CDAN, MCC, MDD, AFN, BSP, SHOT) against hand computations."""
import math

import numpy as np
import pytest
import torch

from lepton import losses


def test_multilinear_map_is_the_flattened_outer_product():
    f = torch.tensor([[1.0, 2.0]])
    g = torch.tensor([[0.25, 0.75]])
    assert losses.multilinear_map(f, g).tolist() == [[0.25, 0.5, 0.75, 1.5]]
    with pytest.raises(ValueError, match="same B"):
        losses.multilinear_map(f, torch.ones(2, 2))


def test_conditional_adversarial_loss_by_hand():
    ls, lt = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    ps = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    pt = torch.tensor([[0.5, 0.5]])
    bce1 = lambda z: math.log(1 + math.exp(-z))  # noqa: E731  BCE with label 1
    bce0 = lambda z: math.log(1 + math.exp(z))  # noqa: E731  label 0
    plain = 0.5 * ((bce1(0.0) + bce1(2.0)) / 2 + bce0(-1.0))
    assert losses.conditional_adversarial_loss(ls, lt, ps, pt, False).item() == pytest.approx(plain, rel=1e-5)
    assert losses.conditional_adversarial_loss(ls, lt, ps, pt, False).item() == pytest.approx(
        losses.domain_adversarial_loss(ls, lt).item(), rel=1e-6)
    # entropy weights: H = 0 -> 2, H = ln 2 -> 1.5; normalised to mean 1 within the source
    w = np.array([2.0, 1.5]) / 1.75
    ent = 0.5 * ((w[0] * bce1(0.0) + w[1] * bce1(2.0)) / 2 + bce0(-1.0))
    assert losses.conditional_adversarial_loss(ls, lt, ps, pt, True).item() == pytest.approx(ent, rel=1e-5)


def test_minimum_class_confusion_by_hand():
    # one-hot predictions of different classes: no confusion at all
    sharp = torch.tensor([[20.0, -20.0], [-20.0, 20.0]])
    assert losses.minimum_class_confusion(sharp, temperature=1.0).item() == pytest.approx(0.0, abs=1e-6)
    # two identical uniform predictions: every weight 1, C = [[.5,.5],[.5,.5]], columns normalised -> .5 each
    flat = torch.zeros(2, 2)
    assert losses.minimum_class_confusion(flat).item() == pytest.approx((2.0 - 1.0) / 2, rel=1e-6)
    # a hand case with unequal weights at T = 1
    p = np.array([[0.9, 0.1], [0.5, 0.5]])
    h = -(p * np.log(p)).sum(1)
    w = 1 + np.exp(-h)
    w = 2 * w / w.sum()
    c = (p * w[:, None]).T @ p
    c = c / c.sum(0, keepdims=True)
    want = (c.sum() - np.trace(c)) / 2
    got = losses.minimum_class_confusion(torch.log(torch.tensor(p, dtype=torch.float64)), temperature=1.0).item()
    assert got == pytest.approx(want, rel=1e-9)


def test_margin_disparity_discrepancy_by_hand():
    y_s = torch.tensor([[2.0, 0.0]])  # the classifier says class 0 on the source
    y_t = torch.tensor([[0.0, 3.0]])  # and class 1 on the target
    y_s_adv = torch.tensor([[0.0, 0.0]])
    y_t_adv = torch.tensor([[math.log(3.0), 0.0]])  # adversary: p = (.75, .25), so p[h_t] = .25
    want = 4.0 * math.log(2.0) - math.log(0.75)
    assert losses.margin_disparity_discrepancy(y_s, y_s_adv, y_t, y_t_adv, 4.0).item() == pytest.approx(want, rel=1e-6)


def test_stepwise_feature_norm_pushes_every_norm_up_by_delta():
    f = torch.tensor([[3.0, 4.0], [0.0, 1.0]], requires_grad=True)
    loss = losses.stepwise_feature_norm(f, delta=1.0)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    # d/df mean_i (|f_i| - |f_i|' - 1)^2 = -2 * 1 * f_i / |f_i| / n: along each row, towards a larger norm
    assert torch.allclose(f.grad, torch.tensor([[-0.6, -0.8], [0.0, -1.0]]))


def test_batch_spectral_penalty_is_the_top_squared_singular_values():
    fs = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    ft = torch.tensor([[0.0, 2.0], [0.0, 0.0], [1.0, 0.0]])
    assert losses.batch_spectral_penalty(fs, ft, k=1).item() == pytest.approx(9.0 + 4.0)
    assert losses.batch_spectral_penalty(fs, ft, k=2).item() == pytest.approx(10.0 + 5.0)


def test_cluster_pseudo_labels_recover_two_clusters_the_classifier_half_gets_wrong():
    # two tight clusters; the classifier calls one point of cluster B class 0
    f = torch.tensor([[1.0, 0.0], [1.1, 0.0], [0.0, 1.0], [0.0, 1.2], [0.05, 1.1]])
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]])
    labels, cent = losses.cluster_pseudo_labels(f, probs)
    assert labels.tolist() == [0, 0, 1, 1, 1]
    assert cent.shape == (2, 3) and torch.allclose(cent.norm(dim=1), torch.ones(2))
    assert losses.nearest_centroid(torch.tensor([[2.0, 0.1]]), cent).tolist() == [0]
    # a class the model never predicts gets no centroid and no example
    probs3 = torch.cat([probs, torch.zeros(5, 1)], 1)
    labels3, cent3 = losses.cluster_pseudo_labels(f, probs3)
    assert labels3.max().item() <= 1 and cent3[2].abs().sum().item() == 0
