"""Augmentation of labelled image batches (RunConfig.augment, lepton.methods.augment)."""
import pytest
import torch

from lepton.config import RunConfig
from lepton.training import fit
from lepton.methods.augment import random_affine, resolve_augment
from toydata import assert_seeded_transform


def test_random_affine_is_seeded_keeps_the_shape_and_is_the_identity_without_a_warp():
    x = torch.rand(6, 1, 16, 16)
    assert_seeded_transform(random_affine, x)
    same = random_affine(x, torch.Generator().manual_seed(3), rotation=0.0, scale=(1.0, 1.0), shift=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    # a dot in the middle stays near the middle: the warp is small (10 degrees, 10 % shift, 0.9-1.1)
    dot = torch.zeros(50, 1, 21, 21)
    dot[:, 0, 9:12, 9:12] = 1.0
    moved = random_affine(dot, torch.Generator().manual_seed(0))
    assert moved[:, 0, 5:16, 5:16].sum() > 0.95 * moved.sum() and moved.sum() > 0.7 * dot.sum()


def test_auto_warps_images_of_16_pixels_or_more_only():
    assert resolve_augment("auto", "image", (1, 28, 28)) == "affine"
    assert resolve_augment("auto", "image", (1, 8, 8)) == "none"  # the built-in digits (lessons)
    assert resolve_augment("auto", "features", (400,)) == "none"
    assert resolve_augment("affine", "image", (1, 8, 8)) == "affine"  # asked for: done
    assert resolve_augment("none", "image", (1, 28, 28)) == "none"
    with pytest.raises(ValueError, match="augment=affine warps images, but these domains are features"):
        resolve_augment("affine", "features", (400,))
    with pytest.raises(ValueError, match="augment must be one of auto, affine, none"):
        RunConfig("digits", "digits-rotated", augment="flip").validate()


def test_a_run_records_what_auto_resolved_to_and_is_reproducible():
    cfg = RunConfig("digits:resize=16", "digits:resize=16:rotate=30", "source-only", steps=40, seed=1)
    a, b = fit(cfg), fit(cfg)
    assert a.config.augment == "affine" and a.harmonisation["augment"]["method"] == "affine"
    assert [(r["target_acc"], r["losses"]) for r in a.history] == [(r["target_acc"], r["losses"]) for r in b.history]
    plain = fit(RunConfig("digits:resize=16", "digits:resize=16:rotate=30", "source-only", steps=40, seed=1,
                          augment="none"))
    assert plain.config.augment == "none"
    assert plain.history[-1]["losses"] != a.history[-1]["losses"]  # the warp changed what was trained on
    small = fit(RunConfig("digits", "digits-rotated", "source-only", steps=20))
    assert small.config.augment == "none" and small.harmonisation["augment"]["method"] == "none"


def test_a_config_stored_before_augmentation_existed_rebuilds_without_it():
    d = RunConfig("mnist", "usps").to_dict()
    assert d["augment"] == "auto"
    del d["augment"]
    assert RunConfig.from_dict(d).augment == "none"
