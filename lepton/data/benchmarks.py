"""Benchmark digit domains read from their canonical public file formats.

==========  ========================================  ==============================================
domain      files (relative to the data folder)       format
==========  ========================================  ==============================================
``mnist``   ``mnist/{train,t10k}-{images-idx3,        gzipped IDX (magic 2051 images / 2049 labels),
            labels-idx1}-ubyte.gz``                   uint8 28x28 (LeCun et al., Proc. IEEE 1998)
``usps``    ``usps/usps.bz2``, ``usps/usps.t.bz2``    libsvm text, label = digit + 1, 256 values in
                                                      [-1, 1], 16x16 row-major (Hull, TPAMI 1994)
``mnist-m`` ``mnist_m/mnist_m_test.zip``              RGB 32x32 PNGs + ``<file> <digit>`` label list
                                                      (Ganin & Lempitsky, ICML 2015); test split only
``svhn``    ``svhn/{train,test}_32x32.mat``           MATLAB v5: ``X`` (32, 32, 3, N) uint8, ``y``
                                                      (N, 1), label 10 = digit 0 (Netzer et al. 2011)
==========  ========================================  ==============================================

A missing file is downloaded first (see :mod:`lepton.data.download`). MNIST-M's 9,001 PNGs decode
in about a second, so no decoded-array cache is kept.
"""
from __future__ import annotations

import bz2
import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .catalog import DOMAINS, DomainSpec, resolve_data_dir
from .domain import DataError, Domain, stratified_split
from .download import BENCHMARK_FILES, ensure_files

DIGITS = [str(i) for i in range(10)]
MNIST_M_SPLIT_SEED = 0
MNIST_M_TEST_FRACTION = 0.2
IDX_IMAGES, IDX_LABELS = 2051, 2049  # IDX magic numbers: 0x0803 (ubyte, 3 dims), 0x0801


def _corrupt(path: Path, why: object) -> DataError:
    return DataError(f"{path} is truncated or corrupt ({why}); delete it and download it again")


def read_idx_gz(path: Path, magic: int) -> np.ndarray:
    """Read one gzipped IDX file of unsigned bytes (the MNIST format, LeCun et al. 1998).

    Parameters
    ----------
    path : pathlib.Path
        ``*-ubyte.gz`` file.
    magic : int
        Expected magic number: 2051 for images ``(N, H, W)``, 2049 for labels ``(N,)``.

    Returns
    -------
    np.ndarray
        uint8, shape from the header (read-only view of the decompressed bytes).

    Raises
    ------
    DataError
        Wrong magic number, or a truncated / corrupt file (size disagrees with the header, bad
        gzip stream or CRC); the message names the file and says to delete and re-download it.
    """
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, e) from None
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise DataError(f"{path} is not an IDX file with magic {magic} (found {found}); "
                        "delete it and download it again")
    if len(data) < head:
        raise _corrupt(path, f"only {len(data)} bytes")
    dims = struct.unpack(f">{ndim}I", data[4:head])
    expected = head + int(np.prod(dims))
    if len(data) != expected:
        raise _corrupt(path, f"{len(data)} bytes after decompression, the header says {expected}")
    return np.frombuffer(data, np.uint8, offset=head).reshape(dims)


def _mnist_split(images: Path, labels: Path) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = read_idx_gz(images, IDX_IMAGES), read_idx_gz(labels, IDX_LABELS)
    if len(xs) != len(ys):
        raise DataError(f"{images.name} holds {len(xs)} images but {labels.name} {len(ys)} labels; "
                        "delete both and download them again")
    if len(ys) and ys.max() > 9:
        raise _corrupt(labels, f"label {int(ys.max())} is not a digit")
    return (xs.astype(np.float32) / 255.0)[:, None], ys.astype(np.int64)  # (N, 1, 28, 28), (N,)


def load_mnist(data_dir: Optional[Path] = None) -> Domain:
    """MNIST (LeCun, Bottou, Bengio & Haffner, Proc. IEEE 1998) from the four IDX ``.gz`` files.

    Returns
    -------
    Domain
        ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1]; official 60,000 / 10,000 split (or whatever
        the files hold); classes ``"0"``..``"9"``; ``content_fraction`` 20/28.

    Raises
    ------
    DataError
        Missing file that cannot be downloaded, or a corrupt / truncated file.
    """
    ddir = resolve_data_dir(data_dir)
    tri, trl, tei, tel = ensure_files("mnist", ddir)
    x_tr, y_tr = _mnist_split(tri, trl)
    x_te, y_te = _mnist_split(tei, tel)
    notes: Dict[str, object] = {"split": "official train / test files"}
    if len(y_tr) != 60000:
        notes["train_subset"] = f"the train files hold {len(y_tr)} of the official 60,000 images"
    return Domain("mnist", "image", x_tr, y_tr, x_te, y_te, list(DIGITS),
                  source="MNIST (LeCun, Bottou, Bengio & Haffner, Proc. IEEE 1998)",
                  content_fraction=20 / 28, notes=notes)


def read_libsvm_bz2(path: Path, n_features: int) -> Tuple[np.ndarray, np.ndarray]:
    """Parse a bzip2-compressed libsvm text file (``label i:v i:v ...`` a line), vectorised.

    Returns
    -------
    x : np.ndarray
        float32 ``(N, n_features)``; features absent from a line are 0 (libsvm convention).
    labels : np.ndarray
        float64 ``(N,)`` raw labels as written.

    Raises
    ------
    DataError
        Bad bzip2 stream or a malformed line (the message names the file).
    """
    try:
        with bz2.open(path, "rt", encoding="ascii") as f:
            text = f.read()
    except (OSError, EOFError, ValueError) as e:
        raise _corrupt(path, e) from None
    dense = _libsvm_dense(text, n_features)
    if dense is not None:
        return dense
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        parts = [ln.split(None, 1) + [""] for ln in lines]
        labels = np.array([p[0] for p in parts], dtype=np.float64)
        rests = [p[1] for p in parts]
        counts = np.fromiter((r.count(":") for r in rests), dtype=np.int64, count=len(rests))
        pairs = np.array(" ".join(rests).replace(":", " ").split(), dtype=np.float64).reshape(-1, 2)
    except ValueError as e:
        raise _corrupt(path, f"malformed libsvm line: {e}") from None
    idx = pairs[:, 0].astype(np.int64)
    if len(pairs) != counts.sum() or (len(idx) and (idx.min() < 1 or idx.max() > n_features)):
        raise _corrupt(path, f"feature indices must be 1..{n_features}")
    x = np.zeros((len(lines), n_features), dtype=np.float32)
    x[np.repeat(np.arange(len(lines)), counts), idx - 1] = pairs[:, 1]
    return x, labels


def _libsvm_dense(text: str, n_features: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Fast path (pandas C parser) for files where every line lists features 1..n in order."""
    import pandas as pd

    try:
        t = pd.read_csv(io.StringIO(text.replace(":", " ")), sep=r"\s+", header=None,
                        dtype=np.float64, engine="c").to_numpy()
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if t.shape[1] != 1 + 2 * n_features or np.isnan(t).any():
        return None
    if not np.array_equal(t[:, 1::2], np.broadcast_to(np.arange(1, n_features + 1), (len(t), n_features))):
        return None
    return t[:, 2::2].astype(np.float32), t[:, 0]


def _usps_split(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    x, labels = read_libsvm_bz2(path, 256)
    if len(labels) == 0 or labels.min() < 1 or labels.max() > 10 or np.any(labels % 1):
        raise _corrupt(path, "USPS labels must be digit + 1, i.e. 1..10")
    x = np.clip((x + 1.0) / 2.0, 0.0, 1.0).reshape(-1, 1, 16, 16)  # [-1, 1] -> [0, 1]
    return x.astype(np.float32), labels.astype(np.int64) - 1


def load_usps(data_dir: Optional[Path] = None) -> Domain:
    """USPS handwritten digits (Hull, IEEE TPAMI 1994), libsvm ``usps.bz2`` / ``usps.t.bz2``.

    Returns
    -------
    Domain
        ``x`` float32 ``(N, 1, 16, 16)`` in [0, 1] (the file's [-1, 1] mapped linearly);
        7,291 train / 2,007 test; classes ``"0"``..``"9"`` (file label minus 1);
        ``content_fraction`` 1.0.

    Raises
    ------
    DataError
        Missing file that cannot be downloaded, or a corrupt file.
    """
    ddir = resolve_data_dir(data_dir)
    tr, te = ensure_files("usps", ddir)
    x_tr, y_tr = _usps_split(tr)
    x_te, y_te = _usps_split(te)
    return Domain("usps", "image", x_tr, y_tr, x_te, y_te, list(DIGITS),
                  source="USPS (Hull, IEEE TPAMI 1994), libsvm copy", content_fraction=1.0,
                  notes={"split": "official train / test files", "labels": "file label - 1"})


def read_mnist_m_zip(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Decode ``mnist_m_test.zip``: PNGs listed in ``*_labels.txt`` (``<file>.png <digit>``).

    Returns
    -------
    x : np.ndarray
        float32 ``(N, 3, 32, 32)`` in [0, 1], in label-file order.
    y : np.ndarray
        int64 ``(N,)`` digits.

    Raises
    ------
    DataError
        Not a zip, no label list, a listed PNG missing or undecodable, an image not RGB 32x32.
    """
    from PIL import Image

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            lab = [n for n in names if n.endswith("_labels.txt")]
            if not lab:
                raise _corrupt(path, "no *_labels.txt inside")
            by_base = {n.rsplit("/", 1)[-1]: n for n in names if n.lower().endswith(".png")}
            rows = [ln.split() for ln in z.read(lab[0]).decode("ascii").splitlines() if ln.strip()]
            x = np.empty((len(rows), 32, 32, 3), dtype=np.uint8)
            for i, (fname, _) in enumerate(rows):
                img = Image.open(io.BytesIO(z.read(by_base[fname]))).convert("RGB")
                if img.size != (32, 32):
                    raise _corrupt(path, f"{fname} is {img.size[0]}x{img.size[1]}, expected 32x32")
                x[i] = np.asarray(img)
            y = np.array([int(r[1]) for r in rows], dtype=np.int64)
    except DataError:
        raise
    except KeyError as e:
        raise _corrupt(path, f"listed image {e} is not in the archive") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, IndexError) as e:
        raise _corrupt(path, e) from None
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise _corrupt(path, "labels must be digits 0..9")
    return x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, y


def load_mnist_m(data_dir: Optional[Path] = None) -> Domain:
    """MNIST-M (Ganin & Lempitsky, ICML 2015): MNIST digits blended with BSDS500 colour patches.

    Only the official *test* split (9,001 images) is distributed in ``mnist_m_test.zip``; it is
    split here into train / test, class-stratified 80/20 with seed 0 (recorded in ``notes``).

    Returns
    -------
    Domain
        ``x`` float32 ``(N, 3, 32, 32)`` in [0, 1]; 7,200 train / 1,801 test for the full file;
        classes ``"0"``..``"9"``; ``content_fraction`` 20/28 (MNIST digits resized to 32x32).

    Raises
    ------
    DataError
        Missing file (there is no canonical URL; the message says where to get it) or a corrupt file.
    """
    ddir = resolve_data_dir(data_dir)
    (path,) = ensure_files("mnist-m", ddir)
    x, y = read_mnist_m_zip(path)
    tr, te = stratified_split(y, MNIST_M_TEST_FRACTION, MNIST_M_SPLIT_SEED)
    return Domain("mnist-m", "image", x[tr], y[tr], x[te], y[te], list(DIGITS),
                  source="MNIST-M (Ganin & Lempitsky, ICML 2015), official test split",
                  content_fraction=20 / 28,
                  notes={"split": f"only the official test split ({len(y)} images) exists; split here "
                                  f"class-stratified {100 - int(100 * MNIST_M_TEST_FRACTION)}/"
                                  f"{int(100 * MNIST_M_TEST_FRACTION)} with seed {MNIST_M_SPLIT_SEED}"})


def read_svhn_mat(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits ``*_32x32.mat`` file (MATLAB v5, Netzer et al. 2011).

    Returns
    -------
    x : np.ndarray
        float32 ``(N, 3, 32, 32)`` in [0, 1] (from ``X`` of shape ``(32, 32, 3, N)`` uint8).
    y : np.ndarray
        int64 ``(N,)`` digits; the file's label 10 means digit 0.

    Raises
    ------
    DataError
        Unreadable file, missing ``X``/``y``, wrong shapes or labels outside 1..10.
    """
    from scipy.io import loadmat

    try:
        m = loadmat(str(path), variable_names=["X", "y"])
    except NotImplementedError:
        raise DataError(f"{path} is a MATLAB v7.3 file; the official SVHN files are v5: "
                        "delete it and download it again") from None
    except (ValueError, OSError, EOFError, TypeError, struct.error) as e:
        raise _corrupt(path, e) from None
    X, y = m.get("X"), m.get("y")
    if X is None or y is None or X.ndim != 4 or X.shape[:3] != (32, 32, 3) or y.size != X.shape[3]:
        shapes = {k: getattr(v, "shape", None) for k, v in (("X", X), ("y", y))}
        raise _corrupt(path, f"expected X (32, 32, 3, N) and y (N, 1), found {shapes}")
    y = y.ravel().astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise _corrupt(path, "labels must be 1..10 (10 = digit 0)")
    y[y == 10] = 0
    x = np.ascontiguousarray(X.transpose(3, 2, 0, 1), dtype=np.float32)  # (N, 3, 32, 32)
    x /= 255.0
    return x, y


def load_svhn(data_dir: Optional[Path] = None) -> Domain:
    """SVHN cropped digits (Netzer et al., NIPS Workshop 2011), ``train_32x32.mat`` / ``test_32x32.mat``.

    Returns
    -------
    Domain
        ``x`` float32 ``(N, 3, 32, 32)`` in [0, 1]; official 73,257 / 26,032 split (the ``extra``
        set is not used); classes ``"0"``..``"9"``; ``content_fraction`` 0.8.

    Raises
    ------
    DataError
        Missing file that cannot be downloaded, or a corrupt file.
    """
    ddir = resolve_data_dir(data_dir)
    tr, te = ensure_files("svhn", ddir)
    x_tr, y_tr = read_svhn_mat(tr)
    x_te, y_te = read_svhn_mat(te)
    return Domain("svhn", "image", x_tr, y_tr, x_te, y_te, list(DIGITS),
                  source="SVHN cropped digits (Netzer et al., NIPS Workshop 2011)", content_fraction=0.8,
                  notes={"split": "official train / test files", "labels": "file label 10 -> digit 0"})


#: registry name -> (description, loader)
BENCHMARKS: Dict[str, Tuple[str, Callable[[Path], Domain]]] = {
    "mnist": ("MNIST handwritten digits, 28x28 gray (LeCun et al. 1998)", load_mnist),
    "usps": ("USPS handwritten digits, 16x16 gray (Hull 1994)", load_usps),
    "mnist-m": ("MNIST-M: MNIST on colour photo patches, 32x32 RGB (Ganin & Lempitsky 2015)", load_mnist_m),
    "svhn": ("SVHN street-view house-number digits, 32x32 RGB (Netzer et al. 2011)", load_svhn),
}


def _files(name: str) -> Callable[[Path], List[Path]]:
    def files(data_dir: Path) -> List[Path]:
        return [Path(data_dir) / e.relpath for e in BENCHMARK_FILES[name]]
    return files


def _register() -> None:
    for name, (desc, loader) in BENCHMARKS.items():
        if name not in DOMAINS:
            DOMAINS.add(name, DomainSpec(name, "image", desc, loader, _files(name)))


_register()
