"""Custom domains: image folders and feature tables (CSV, NPZ, MATLAB v5 and v7.3)."""
from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lepton.data import DOMAINS, DataError, load_domain
from lepton.data.custom import load_custom, parse_custom_name, register_custom, unregister_custom


def _png(path: Path, size, mode: str, value: int = 128) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    if mode == "L":
        a = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    else:
        a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    a[0, 0] = value
    Image.fromarray(a, mode).save(path)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    root = tmp_path / "imgs"
    for i in range(5):
        _png(root / "cat" / f"c{i}.png", (20, 10), "L")
        _png(root / "ant" / f"a{i}.png", (20, 10) if i < 3 else (33, 17), "RGB")
    (root / "ant" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_mixed_gray_rgb_and_sizes(mixed_folder):
    d = load_custom(str(mixed_folder))
    assert d.modality == "image" and d.class_names == ["ant", "cat"]
    assert d.input_shape == (3, 10, 20)  # any colour -> RGB; most common size (W 20, H 10)
    assert d.sizes() == {"train": 8, "test": 2}
    assert d.class_counts("test") == {"ant": 1, "cat": 1}
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert d.notes["non_image_files_skipped"] == 1
    gray = d.x_train[d.y_train == 1]
    assert np.array_equal(gray[:, 0], gray[:, 1])  # gray images are replicated into RGB


def test_image_folder_all_gray_is_one_channel(tmp_path):
    from PIL import Image
    root = tmp_path / "g"
    for c in ("a", "b"):
        for i in range(3):
            _png(root / c / f"{i}.png", (8, 8), "L")
    g = np.full((8, 8, 3), 77, np.uint8)  # an RGB file holding a gray picture
    Image.fromarray(g, "RGB").save(root / "a" / "rgbgray.png")
    d = load_custom(str(root))
    assert d.input_shape == (1, 8, 8)
    assert any(np.allclose(x, 77 / 255) for x in np.concatenate([d.x_train, d.x_test]))


def test_image_folder_large_images_capped_at_64(tmp_path):
    root = tmp_path / "big"
    for c in ("x", "y"):
        for i in range(3):
            _png(root / c / f"{i}.jpg", (200, 100), "RGB")
    d = load_custom(str(root))
    assert d.input_shape == (3, 32, 64)


def test_image_folder_unreadable_files_listed(mixed_folder):
    for i in range(7):
        (mixed_folder / "cat" / f"broken{i}.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError) as e:
        load_custom(str(mixed_folder))
    msg = str(e.value)
    assert msg.startswith("7 unreadable image file(s)")
    assert msg.count("broken") == 5 and "cat/broken0.png" in msg


def test_image_folder_needs_class_folders(tmp_path):
    _png(tmp_path / "flat" / "a.png", (8, 8), "L")
    with pytest.raises(DataError, match="no class folders"):
        load_custom(str(tmp_path / "flat"))


def _csv(tmp_path, df, name="t.csv") -> Path:
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def _table(n=20, labels=None, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 3)) + 5, columns=["f1", "f2", "f3"])
    df["Target"] = labels if labels is not None else ["pos", "neg"] * (n // 2)
    return df


def test_csv_string_labels(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # string labels need no guess, so no warning
        d = load_custom(str(_csv(tmp_path, _table())))
    assert d.modality == "features" and d.input_shape == (3,)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.class_names == ["neg", "pos"] and d.sizes() == {"train": 16, "test": 4}
    assert d.notes["label_column"] == "Target" and "strings" in d.notes["labels"]


def test_csv_one_based_int_labels_warn_and_note(tmp_path):
    p = _csv(tmp_path, _table(labels=[1, 2, 3, 4] * 5))
    with pytest.warns(UserWarning, match="1-based"):
        d = load_custom(str(p))
    assert "1-based" in d.notes["labels"]
    # aligned by value after the base: 1-based 1..4 are classes "0".."3", as a 0-based domain names them
    assert sorted(set(d.y_train.tolist())) == [0, 1, 2, 3] and d.class_names == ["0", "1", "2", "3"]
    assert d.notes["label_base"] == 1


def test_csv_zero_based_int_labels(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = load_custom(str(_csv(tmp_path, _table(labels=[0, 1] * 10))))
    assert "0-based" in d.notes["labels"]


def test_csv_label_column_by_name_and_via_load_domain(tmp_path):
    df = _table()
    df["group"] = ["a", "b", "c", "d"] * 5
    df = df.drop(columns=["Target"])
    p = _csv(tmp_path, df)
    d = load_domain(f"{p}#label=group", cache=False)
    assert d.class_names == ["a", "b", "c", "d"] and d.input_shape == (3,)
    assert parse_custom_name(f"{p}#label=group") == (p, {"label": "group"})


def test_csv_without_label_column(tmp_path):
    """A string column under an unknown name: named, with how to mark it as the labels. Without any
    label column the table is an unlabelled domain, and the warning says how to name one."""
    df = _table().rename(columns={"Target": "outcome"})
    with pytest.raises(DataError, match=r"outcome are not numeric.*no label column found.*#label=COLUMN"):
        load_custom(str(_csv(tmp_path, df)))
    with pytest.warns(UserWarning, match=r"taken as unlabelled.*#label=COLUMN"):
        d = load_custom(str(_csv(tmp_path, df.drop(columns=["outcome"]))))
    assert not d.labelled and d.class_names == [] and set(d.y_train.tolist()) == {-1}
    assert d.sizes() == {"train": 16, "test": 4} and "random (no labels)" in d.notes["split"]


def test_csv_nan_rows(tmp_path):
    df = _table()
    df.loc[[3, 11], "f2"] = np.nan
    with pytest.raises(DataError, match=r"2 row\(s\) contain NaN.*rows 3, 11.*drop or impute"):
        load_custom(str(_csv(tmp_path, df)))


def test_csv_all_zero_rows(tmp_path):
    df = _table()
    df.loc[7, ["f1", "f2", "f3"]] = 0.0
    with pytest.raises(DataError, match=r"1 row\(s\) are all zeros.*rows 7"):
        load_custom(str(_csv(tmp_path, df)))


def test_csv_non_numeric_feature_column(tmp_path):
    df = _table()
    df["colour"] = ["red", "blue"] * 10
    with pytest.raises(DataError, match=r"colour.*not numeric"):
        load_custom(str(_csv(tmp_path, df)))


def test_single_class_and_too_few_rows(tmp_path):
    with pytest.raises(DataError, match="same label"):
        load_custom(str(_csv(tmp_path, _table(labels=["a"] * 20))))
    with pytest.raises(DataError, match="at least 2"):
        load_custom(str(_csv(tmp_path, _table(n=20).iloc[:1], name="one.csv")))


def test_npz(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "d.npz"
    np.savez(p, features=rng.normal(size=(30, 4)), labels=np.repeat([0, 1, 2], 10))
    d = load_custom(str(p))
    assert d.input_shape == (4,) and d.n_classes == 3 and sum(d.sizes().values()) == 30
    np.savez(tmp_path / "bad.npz", X=rng.normal(size=(4, 2)), y=np.array([1, "a", None, 2], dtype=object))
    with pytest.raises(DataError, match="pickle"):
        load_custom(str(tmp_path / "bad.npz"))


def test_mat_v5(tmp_path):
    from scipy.io import savemat
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 5))
    savemat(str(tmp_path / "a.mat"), {"X": X, "y": np.array([[1], [2], [3]] * 4)})
    with pytest.warns(UserWarning, match="1-based"):
        d = load_custom(str(tmp_path / "a.mat"))
    assert d.input_shape == (5,) and d.class_names == ["0", "1", "2"] and d.notes["format"] == "MATLAB v5"
    assert np.allclose(np.sort(np.concatenate([d.x_train, d.x_test])[:, 0]), np.sort(X[:, 0]).astype(np.float32))
    cells = np.empty((12, 1), dtype=object)
    cells[:, 0] = ["dog", "cat", "emu"] * 4
    savemat(str(tmp_path / "s.mat"), {"data": X, "labels": cells})
    assert load_custom(str(tmp_path / "s.mat")).class_names == ["cat", "dog", "emu"]


def _write_mat73(path: Path, arrays: dict) -> None:
    """What MATLAB's ``save -v7.3`` writes: HDF5 with a 512-byte MAT header, arrays transposed."""
    import h5py
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in arrays.items():
            ds = f.create_dataset(k, data=np.asarray(v).T)  # MATLAB is column-major
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


def test_mat_v73_hdf5(tmp_path):
    import h5py
    from scipy.io import loadmat
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10, 10))  # square: only the HDF5 transpose can get the rows right
    y = np.array([[0], [1]] * 5, dtype=np.float64)
    p = tmp_path / "v73.mat"
    _write_mat73(p, {"X": X, "y": y})
    assert h5py.is_hdf5(str(p)) and p.read_bytes().startswith(b"MATLAB 7.3 MAT-file")
    with pytest.raises(NotImplementedError):
        loadmat(str(p))  # scipy refuses v7.3, so the h5py path is what reads it
    d = load_custom(str(p))
    assert d.input_shape == (10,) and d.notes["format"] == "MATLAB v7.3 (HDF5)"
    assert sum(d.sizes().values()) == 10 and d.class_names == ["0", "1"]
    allx = np.concatenate([d.x_train, d.x_test])
    ally = np.concatenate([d.y_train, d.y_test])
    order = np.argsort(allx[:, 0])
    assert np.allclose(allx[order], X[np.argsort(X[:, 0])].astype(np.float32), atol=1e-6)
    assert np.array_equal(ally[order], y[np.argsort(X[:, 0]), 0].astype(np.int64))


@pytest.fixture
def cleanup_names():
    names = []
    yield names
    for n in names:
        if n in DOMAINS:
            unregister_custom(n)


def test_register_custom_and_load_by_name(tmp_path, cleanup_names):
    cleanup_names += ["my-upload", "bad-data"]
    p = _csv(tmp_path, _table())
    spec = register_custom("my-upload", p)
    assert "my-upload" in DOMAINS and spec.modality == "features" and spec.files(None) == [p.resolve()]
    d = load_domain("my-upload")
    assert d.name == "my-upload" and d.class_names == ["neg", "pos"]
    p2 = _csv(tmp_path, _table(labels=["u", "v", "w", "z"] * 5), name="t2.csv")
    register_custom("my-upload", p2)  # re-registering a custom name replaces it
    assert load_domain("my-upload").class_names == ["u", "v", "w", "z"]
    with pytest.raises(DataError, match="already a registered domain"):
        register_custom("mnist", p)
    with pytest.raises(DataError, match="must be non-empty"):
        register_custom("bad:name", p)
    with pytest.raises(DataError, match="same label"):
        register_custom("bad-data", _csv(tmp_path, _table(labels=["a"] * 20), name="one_class.csv"))
    assert "bad-data" not in DOMAINS
    unregister_custom("my-upload")
    assert "my-upload" not in DOMAINS
    with pytest.raises(DataError, match="not a custom domain"):
        unregister_custom("mnist")


def test_mat_v73_cell_string_labels(tmp_path):
    import h5py
    p = tmp_path / "cells.mat"
    names = ["dog", "cat", "emu", "dog", "cat", "emu"]
    _write_mat73(p, {"X": np.arange(1, 25, dtype=float).reshape(6, 4)})
    with h5py.File(p, "a") as f:  # a MATLAB cell array: a (1, N) array of references to char arrays
        refs = f.create_group("#refs#")
        r = [refs.create_dataset(f"s{i}", data=np.array([[ord(c)] for c in s], np.uint16)).ref
             for i, s in enumerate(names)]
        f.create_dataset("labels", data=np.array([r], dtype=h5py.ref_dtype))
    d = load_custom(str(p))
    assert d.class_names == ["cat", "dog", "emu"] and sum(d.sizes().values()) == 6
    ally = np.concatenate([d.y_train, d.y_test])
    allx = np.concatenate([d.x_train, d.x_test])
    assert [d.class_names[k] for k in ally[np.argsort(allx[:, 0])]] == names
