"""Benchmark loaders (MNIST, USPS, MNIST-M, SVHN) on the real files in the shared data folder."""
from __future__ import annotations

import bz2
import gzip
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lepton.data import DOMAINS, DataError, list_domains, load_domain
from lepton.data.benchmarks import BENCHMARKS, read_libsvm_bz2
from lepton.data.download import BENCHMARK_FILES


# `data_dir` (the shared benchmark folder) comes from tests/conftest.py.


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setenv("LEPTON_OFFLINE", "1")
    monkeypatch.delenv("LEPTON_DOWNLOAD_BASE", raising=False)


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_registered_with_its_files(name, tmp_path):
    spec = DOMAINS.get(name)
    assert spec.modality == "image"
    assert [p.relative_to(tmp_path).as_posix() for p in spec.files(tmp_path)] == \
        [e.relpath for e in BENCHMARK_FILES[name]]
    for e in BENCHMARK_FILES[name]:
        assert e.url or e.where, f"{e.relpath} has neither a URL nor a hint where to get it"
    assert spec.missing_files(tmp_path) == spec.files(tmp_path)


def test_mnist_shapes_and_balance(data_dir):
    d = load_domain("mnist", data_dir, cache=False)
    assert d.sizes() == {"train": 5000, "test": 10000}
    assert d.input_shape == (1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert set(d.class_counts("train").values()) == {500}
    assert sorted(np.unique(d.y_test).tolist()) == list(range(10))
    assert 0.10 < d.x_test.mean() < 0.16  # MNIST's mean intensity is ~0.13
    assert d.content_fraction == pytest.approx(20 / 28)
    assert d.class_names == [str(i) for i in range(10)]


def test_usps_shapes_values_and_labels(data_dir):
    d = load_domain("usps", data_dir, cache=False)
    assert d.sizes() == {"train": 7291, "test": 2007}
    assert d.input_shape == (1, 16, 16)
    assert d.x_train.dtype == np.float32
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert d.y_train[0] == 6 and d.y_test[0] == 9  # file labels 7 and 10 are digit + 1
    assert d.x_test[0, 0, 0, 5] == pytest.approx((1 - 0.948) / 2)  # "6:-0.948000" in usps.t line 1
    assert sorted(np.unique(d.y_train).tolist()) == list(range(10))
    assert d.content_fraction == 1.0


def test_mnist_m_split_and_shape(data_dir):
    d = load_domain("mnist-m", data_dir, cache=False)
    n_tr, n_te = d.sizes()["train"], d.sizes()["test"]
    assert n_tr + n_te == 9001 and abs(n_te - 0.2 * 9001) <= 1
    assert d.input_shape == (3, 32, 32) and d.x_train.dtype == np.float32
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    p_tr = np.bincount(d.y_train, minlength=10) / n_tr
    p_te = np.bincount(d.y_test, minlength=10) / n_te
    assert np.abs(p_tr - p_te).max() < 0.01  # stratified
    assert "seed 0" in d.notes["split"] and "test split" in d.notes["split"]
    again = load_domain("mnist-m", data_dir, cache=False)
    assert np.array_equal(again.y_test, d.y_test) and np.array_equal(again.x_test[:5], d.x_test[:5])


def _write_svhn(path: Path, X: np.ndarray, y: np.ndarray) -> None:
    from scipy.io import savemat
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"X": X, "y": y})


def test_svhn_official_layout(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(32, 32, 3, 6), dtype=np.uint8)
    y = np.array([[10], [1], [2], [10], [9], [5]], dtype=np.uint8)
    _write_svhn(tmp_path / "svhn" / "train_32x32.mat", X, y)
    _write_svhn(tmp_path / "svhn" / "test_32x32.mat", X[..., :3], y[:3])
    d = load_domain("svhn", tmp_path, cache=False)
    assert d.sizes() == {"train": 6, "test": 3}
    assert d.input_shape == (3, 32, 32) and d.x_train.dtype == np.float32
    assert d.y_train.tolist() == [0, 1, 2, 0, 9, 5]
    assert d.x_train[4, 2, 7, 11] == pytest.approx(X[7, 11, 2, 4] / 255.0)  # x[n, c, h, w] = X[h, w, c, n]


def test_svhn_bad_file_is_dataerror(tmp_path):
    _write_svhn(tmp_path / "svhn" / "train_32x32.mat", np.zeros((32, 32, 3, 2), np.uint8), np.ones((3, 1)))
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match="train_32x32.mat"):
        load_domain("svhn", tmp_path, cache=False)


@pytest.fixture
def mnist_copy(data_dir, tmp_path) -> Path:
    shutil.copytree(data_dir / "mnist", tmp_path / "mnist")
    for p in (tmp_path / "mnist").iterdir():
        p.chmod(0o644)
    return tmp_path


def test_truncated_gz_is_dataerror(mnist_copy):
    p = mnist_copy / "mnist" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*delete it and download it again"):
        load_domain("mnist", mnist_copy, cache=False)


def test_wrong_magic_is_dataerror(mnist_copy):
    p = mnist_copy / "mnist" / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(struct.pack(">II", 2049, 3) + b"\x01\x02\x03"))
    with pytest.raises(DataError, match=r"t10k-images.*magic 2051 \(found 2049\)"):
        load_domain("mnist", mnist_copy, cache=False)


def test_header_size_mismatch_is_dataerror(mnist_copy):
    p = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(struct.pack(">II", 2049, 10000) + bytes(9999)))
    with pytest.raises(DataError, match=r"t10k-labels.*header says 10008"):
        load_domain("mnist", mnist_copy, cache=False)


def test_corrupt_usps_is_dataerror(data_dir, tmp_path):
    (tmp_path / "usps").mkdir()
    shutil.copy(data_dir / "usps" / "usps.t.bz2", tmp_path / "usps" / "usps.t.bz2")
    (tmp_path / "usps" / "usps.bz2").write_bytes(bz2.compress(b"3 1:0.5 2:x\n"))
    with pytest.raises(DataError, match=r"usps\.bz2"):
        load_domain("usps", tmp_path, cache=False)


def test_libsvm_sparse_lines(tmp_path):
    p = tmp_path / "s.bz2"
    p.write_bytes(bz2.compress(b"2 1:-1 3:1\n\n1 2:0.5\n"))
    x, labels = read_libsvm_bz2(p, 4)
    assert labels.tolist() == [2.0, 1.0]
    assert x.tolist() == [[-1, 0, 1, 0], [0, 0.5, 0, 0]]


def test_mnist_m_missing_png_is_dataerror(tmp_path):
    (tmp_path / "mnist_m").mkdir()
    with zipfile.ZipFile(tmp_path / "mnist_m" / "mnist_m_test.zip", "w") as z:
        z.writestr("mnist_m_test_labels.txt", "00000000.png 7\n")
    with pytest.raises(DataError, match=r"mnist_m_test\.zip.*00000000\.png"):
        load_domain("mnist-m", tmp_path, cache=False)


def test_offline_missing_file_message(tmp_path):
    with pytest.raises(DataError) as e:
        load_domain("usps", tmp_path, cache=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("missing usps.bz2 for domain usps: download it from "
                          "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.bz2")
    assert f"put it in {tmp_path / 'usps'}" in msg


def test_mnist_m_missing_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_OFFLINE")  # no URL: must fail without trying the network
    with pytest.raises(DataError, match=r"missing mnist_m_test\.zip for domain mnist-m: download it from .*"
                                        r"Ganin.* and put it in .*mnist_m"):
        load_domain("mnist-m", tmp_path, cache=False)


def test_list_domains_availability(data_dir):
    rows = {r["name"]: r for r in list_domains(data_dir)}
    assert rows["mnist"]["available"] and rows["usps"]["available"] and rows["mnist-m"]["available"]
    assert not rows["svhn"]["available"]
    assert any(m.endswith("train_32x32.mat") for m in rows["svhn"]["missing"])
