"""The :class:`Domain`: one data distribution with fixed train/test splits."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Tuple

import numpy as np


#: The kinds of input a domain can hold.
MODALITIES = ("image", "features", "text", "tokens", "audio", "interactions")  # tokens: padded token ids of texts (a trainable
# encoder's input); audio: log-mel spectrograms (N, 1, n_mels, frames) of clips (lepton.data.audio);
# interactions: (user, item) rows for recommendation (lepton.data.interactions)


class DataError(ValueError):
    """Bad or missing data: the message names the problem and what to do."""


@dataclass
class Domain:
    """One domain: fixed train/test splits, class names and an input shape.

    Parameters
    ----------
    name : str
        The domain's name as given to the CLI (``"digits"``, ``"mnist"``, ``"digits:rotate=30"``).
    modality : str
        One of :data:`MODALITIES`: ``"image"``, ``"features"``, ``"text"``, ``"tokens"`` or ``"audio"``.
    x_train, x_test : np.ndarray
        Images: float32 ``(N, C, H, W)`` with values in [0, 1]; feature vectors: float32 ``(N, D)``;
        audio: float32 ``(N, 1, n_mels, frames)`` log-mel spectrograms in [0, 1]
        (:mod:`lepton.data.audio`);
        raw text: an object array ``(N,)`` of str (a list or a str array is converted), turned
        into features when a pair is harmonised (:func:`lepton.data.pairing.harmonise`).
    y_train, y_test : np.ndarray
        int64 ``(N,)`` class indices into ``class_names``; ``-1`` throughout for an unlabelled
        domain (see :attr:`labelled`).
    class_names : list of str
        Names of the classes; index ``i`` is label ``i``.
    source : str
        Where the data comes from (a citation, a file path, "scikit-learn bundled").
    content_fraction : float
        For images: the fraction of the frame the object spans (MNIST digits sit in a 20x20 box
        inside 28x28, so 20/28; USPS digits fill the frame, so 1.0). Used when pairing domains.
    notes : dict
        Free-form provenance (label convention assumed, split seed, shift parameters).
    meta_train, meta_test : dict of str to np.ndarray
        Optional per-row columns of each split, each a str array ``(N,)`` aligned with the split's
        rows (an audio clip's ``path``, ``speaker``, ``accent``); empty for most domains. Kept
        aligned when pairing drops rows; see :meth:`meta`.
    """

    name: str
    modality: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: List[str]
    source: str = ""
    content_fraction: float = 1.0
    notes: Dict[str, object] = field(default_factory=dict)
    meta_train: Dict[str, np.ndarray] = field(default_factory=dict)
    meta_test: Dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise DataError(f"domain {self.name!r}: modality must be one of {', '.join(map(repr, MODALITIES))}, "
                            f"got {self.modality!r}")
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            if self.modality == "text":
                setattr(self, f"x_{split}", _text_array(x, self.name, split))
            elif isinstance(x, np.ndarray) and x.strides != _c_strides(x):
                # one memory layout for the same values: a (N, 1, H, W) array with odd strides is both
                # contiguous and channels-last to torch, whose convolutions then round differently, so a
                # freshly prepared domain and its cached copy would train to different last bits
                setattr(self, f"x_{split}", x.copy(order="C"))
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise DataError(f"domain {self.name!r}: {split} has {len(x)} inputs but {len(y)} labels")
            meta = {str(k): np.asarray(v, dtype=str) for k, v in (getattr(self, f"meta_{split}") or {}).items()}
            for k, v in meta.items():
                if v.shape != (len(y),):
                    raise DataError(f"domain {self.name!r}: {split} column {k!r} has shape {v.shape}, "
                                    f"not ({len(y)},)")
            setattr(self, f"meta_{split}", meta)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Shape of one input: ``(C, H, W)`` for images, ``(D,)`` for feature vectors, ``()`` for text."""
        x = self.x_train if len(self.x_train) else self.x_test
        return tuple(int(s) for s in x.shape[1:])

    @property
    def labelled(self) -> bool:
        """False for an unlabelled domain (every label ``-1``): usable as an adaptation target, with
        no accuracy to report."""
        return not (np.any(self.y_train < 0) or np.any(self.y_test < 0))

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def sizes(self) -> Dict[str, int]:
        """Number of examples per split, ``{"train": N_train, "test": N_test}``."""
        return {"train": int(len(self.y_train)), "test": int(len(self.y_test))}

    def split(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """Return ``(x, y)`` of split ``"train"`` or ``"test"``.

        Raises
        ------
        DataError
            For another split name.
        """
        return getattr(self, f"x_{_split_name(name)}"), getattr(self, f"y_{name}")

    def meta(self, split: str) -> Dict[str, np.ndarray]:
        """The per-row columns of split ``"train"`` or ``"test"``: name -> str ``(N,)`` (may be empty).

        Raises
        ------
        DataError
            For another split name.
        """
        return getattr(self, f"meta_{_split_name(split)}")

    def with_arrays(self, **changes) -> "Domain":
        """A copy with some fields replaced (arrays are not copied)."""
        return replace(self, **changes)

    def class_counts(self, split: str = "train") -> Dict[str, int]:
        """Examples per class name in a split."""
        _, y = self.split(split)
        if not self.labelled:
            return {}
        counts = np.bincount(y, minlength=self.n_classes)
        return {c: int(n) for c, n in zip(self.class_names, counts)}


def _text_array(x, name: str, split: str) -> np.ndarray:
    """``x`` as a 1-D object array of str (a copy only when ``x`` is not one already)."""
    arr = np.asarray(x, dtype=object) if not (isinstance(x, np.ndarray) and x.dtype == object) else x
    if arr.ndim != 1:
        raise DataError(f"text domain {name!r}: {split} texts must be one-dimensional (N,), got shape {arr.shape}")
    if not all(isinstance(t, str) for t in arr):
        bad = next(type(t).__name__ for t in arr if not isinstance(t, str))
        raise DataError(f"text domain {name!r}: every {split} input must be a str, found a {bad}")
    return arr


def _c_strides(a: np.ndarray) -> Tuple[int, ...]:
    """The strides of a fresh C-ordered array of ``a``'s shape and dtype."""
    out, step = [], a.itemsize
    for n in reversed(a.shape):
        out.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(out))


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded class-stratified train/test index split (scikit-learn ``train_test_split``).

    Parameters
    ----------
    y : np.ndarray
        int ``(N,)`` labels.
    test_fraction : float
        Fraction of examples in the test split, in (0, 1).
    seed : int
        Split seed; the same seed always gives the same split.

    Returns
    -------
    train_idx, test_idx : np.ndarray
        int64 index arrays, sorted.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y) if len(y) else np.array([])
    strat = y if len(counts) and counts[counts > 0].min() >= 2 else None
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(te)


def _split_name(name: str) -> str:
    if name not in ("train", "test"):
        raise DataError(f"unknown split {name!r}; use 'train' or 'test'")
    return name
