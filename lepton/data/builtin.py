"""Built-in offline domains: scikit-learn's bundled 8x8 digits and named shifts of it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .catalog import DOMAINS, DomainSpec
from .domain import Domain, stratified_split

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.3

# Named shifted domains available out of the box: name -> shift spec applied to ``digits``.
NAMED_SHIFTS = {
    "digits-rotated": ("rotate=45", "digits rotated by 45 degrees"),
    "digits-inverted": ("invert", "digits with inverted intensities (white background)"),
    "digits-noisy": ("noise=0.3", "digits with Gaussian pixel noise (std 0.3)"),
    "digits-blurred": ("blur=0.8", "digits blurred (Gaussian, std 0.8 px)"),
    "digits-colored": ("color", "RGB digits on random coloured backgrounds (MNIST-M-like)"),
    "digits-small": ("scale=0.7", "digits shrunk to 70 % about the centre"),
}


def load_digits_domain(data_dir: Path = None) -> Domain:
    """scikit-learn's bundled handwritten digits (UCI optdigits test set), 1,797 images of 8x8.

    Pixels 0..16 are scaled to [0, 1]; a seeded (seed 0) class-stratified 70/30 train/test split.

    Returns
    -------
    Domain
        ``x`` float32 ``(N, 1, 8, 8)``; 1,257 train and 540 test images; classes ``"0"``..``"9"``.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return Domain(
        name="digits", modality="image", x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
        class_names=[str(i) for i in range(10)],
        source="scikit-learn bundled digits (UCI optdigits; Alpaydin & Kaynak 1998)",
        content_fraction=1.0,
        notes={"split": f"stratified 70/30, seed {DIGITS_SPLIT_SEED}"},
    )


def digits_files(data_dir: Path = None) -> list:
    """The file scikit-learn's ``load_digits`` reads (found without importing scikit-learn), so that the
    preparation cache can key built-in domains on it like any benchmark file."""
    import importlib.util
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return [Path("sklearn/datasets/data/digits.csv.gz")]  # reported missing: install scikit-learn
    return [Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"]


def _register() -> None:
    if "digits" in DOMAINS:
        return
    DOMAINS.add("digits", DomainSpec("digits", "image", "scikit-learn's bundled 8x8 handwritten digits",
                                     load_digits_domain, digits_files))
    for name, (spec, desc) in NAMED_SHIFTS.items():
        DOMAINS.add(name, DomainSpec(name, "image", f"{desc} (= digits:{spec})", _named_loader(name, spec),
                                     digits_files))


def _named_loader(name: str, spec: str):
    def load(data_dir: Path) -> Domain:
        from .shifts import apply_shifts, parse_name
        _, ops = parse_name("digits:" + spec)
        return apply_shifts(load_digits_domain(), ops, name=name)
    return load


_register()
