"""Downloads against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import threading
from functools import partial
from pathlib import Path

import pytest

from lepton.data import DataError, load_domain
from lepton.data.download import BENCHMARK_FILES, DownloadError, download, ensure_files, file_url


# `data_dir` (the shared benchmark folder) comes from tests/conftest.py.


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.requests.append(self.path)
        if self.path == "/short":  # announces more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(root folder served, base URL); LEPTON_DOWNLOAD_BASE points at it."""
    root = tmp_path / "mirror"
    root.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("LEPTON_DOWNLOAD_BASE", base)
    monkeypatch.delenv("LEPTON_OFFLINE", raising=False)
    yield root, base
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder: Path):
    return [p.name for p in folder.iterdir()] if folder.exists() else []


def test_download_success_with_progress(server, tmp_path):
    root, base = server
    body = os.urandom(300_000)
    (root / "blob.bin").write_bytes(body)
    calls = []
    dest = tmp_path / "out" / "blob.bin"
    got = download(f"{base}/blob.bin", dest, hashlib.sha256(body).hexdigest(), lambda d, t: calls.append((d, t)))
    assert got == dest and dest.read_bytes() == body
    assert calls[0] == (0, len(body)) and calls[-1] == (len(body), len(body))
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    assert _leftovers(dest.parent) == ["blob.bin"]


def test_default_progress_line_on_stderr(server, tmp_path, capsys):
    root, base = server
    (root / "b.bin").write_bytes(b"y" * 5000)
    download(f"{base}/b.bin", tmp_path / "b.bin")
    err = capsys.readouterr().err
    assert "downloading b.bin" in err and "100%" in err


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    root, base = server
    (root / "blob.bin").write_bytes(b"abc")
    dest = tmp_path / "out" / "blob.bin"
    with pytest.raises(DataError) as e:
        download(f"{base}/blob.bin", dest, "0" * 64, progress=lambda d, t: None)
    msg = str(e.value)
    assert "blob.bin" in msg and "0" * 64 in msg and hashlib.sha256(b"abc").hexdigest() in msg
    assert _leftovers(dest.parent) == []


def test_http_404_is_download_error(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="404"):
        download(f"{base}/nope.bin", tmp_path / "out" / "nope.bin", progress=lambda d, t: None)
    assert _leftovers(tmp_path / "out") == []


def test_short_body_is_download_error(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError):
        download(f"{base}/short", tmp_path / "out" / "short.bin", progress=lambda d, t: None)
    assert _leftovers(tmp_path / "out") == []


def test_unreachable_host_is_download_error(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    with pytest.raises(DownloadError, match="cannot reach"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", progress=lambda d, t: None, timeout=5)


def test_file_url_uses_mirror_base(monkeypatch):
    entry = BENCHMARK_FILES["usps"][0]
    monkeypatch.delenv("LEPTON_DOWNLOAD_BASE", raising=False)
    assert file_url(entry) == entry.url
    monkeypatch.setenv("LEPTON_DOWNLOAD_BASE", "http://mirror.example/data/")
    assert file_url(entry) == "http://mirror.example/data/usps/usps.bz2"
    assert file_url(BENCHMARK_FILES["mnist-m"][0]) == "http://mirror.example/data/mnist_m/mnist_m_test.zip"


def test_loader_downloads_missing_files_from_mirror(server, data_dir, tmp_path):
    root, _ = server
    shutil.copytree(data_dir / "usps", root / "usps")
    target = tmp_path / "data"
    calls = []
    paths = ensure_files("usps", target, progress=lambda d, t: calls.append((d, t)))
    assert [p.name for p in paths] == ["usps.bz2", "usps.t.bz2"]
    assert (target / "usps" / "usps.bz2").read_bytes() == (data_dir / "usps" / "usps.bz2").read_bytes()
    assert calls and calls[-1][0] == (data_dir / "usps" / "usps.t.bz2").stat().st_size
    (target / "usps" / "usps.t.bz2").unlink()  # now load_domain must fetch it by itself
    d = load_domain("usps", target, cache=False)
    assert d.sizes() == {"train": 7291, "test": 2007}
    assert _Handler.requests.count("/usps/usps.t.bz2") == 2 and _Handler.requests.count("/usps/usps.bz2") == 1


def test_present_files_are_not_fetched_or_hash_checked(server, tmp_path):
    (tmp_path / "usps").mkdir()
    for name in ("usps.bz2", "usps.t.bz2"):
        (tmp_path / "usps" / name).write_bytes(b"local copy")
    ensure_files("usps", tmp_path)
    assert _Handler.requests == []


def test_mirror_missing_file_gives_clear_message(server, tmp_path):
    _, base = server
    with pytest.raises(DataError) as e:
        load_domain("usps", tmp_path, cache=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"missing usps.bz2 for domain usps: download it from {base}/usps/usps.bz2 "
                          f"and put it in {tmp_path / 'usps'}")
    assert "404" in msg
    assert _leftovers(tmp_path / "usps") == []


def test_mirror_with_wrong_hash_rejected(server, data_dir, tmp_path):
    root, _ = server  # the shared MNIST train files are a subset: not the official SHA-256
    shutil.copytree(data_dir / "mnist", root / "mnist")
    with pytest.raises(DataError, match=r"checksum mismatch for train-images-idx3-ubyte\.gz.*expected sha256 440fcabf"):
        ensure_files("mnist", tmp_path / "data", progress=lambda d, t: None)
    assert not (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert _leftovers(tmp_path / "data" / "mnist") == []


def test_offline_makes_no_request(server, tmp_path, monkeypatch):
    _, base = server
    monkeypatch.setenv("LEPTON_OFFLINE", "1")
    with pytest.raises(DataError, match=rf"missing train_32x32\.mat for domain svhn: download it from {base}/svhn/"
                                        rf"train_32x32\.mat and put it in .*svhn.*LEPTON_OFFLINE"):
        ensure_files("svhn", tmp_path)
    assert _Handler.requests == []


def test_ensure_files_unknown_domain(tmp_path):
    with pytest.raises(KeyError, match="digits"):
        ensure_files("digits", tmp_path)
