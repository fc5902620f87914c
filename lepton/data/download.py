"""Download benchmark files: canonical URLs, SHA-256 checks, atomic writes, progress.

Every benchmark file has one row in :data:`BENCHMARK_FILES`: its path relative to the data folder
(the same layout as the canonical public distribution), its canonical public URL and its SHA-256.

* A hash is checked **on download only**; a file already present in the data folder is never
  rejected for its hash (the test-data copies hold a 5,000-image MNIST train subset, for example).
* ``LEPTON_DOWNLOAD_BASE`` names a mirror root holding the same relative paths
  (``$LEPTON_DOWNLOAD_BASE/mnist/train-images-idx3-ubyte.gz``); it replaces every canonical URL,
  including for files without one (MNIST-M).
* ``LEPTON_OFFLINE=1`` turns every download into a :class:`DataError` that says where to get the file.
* SVHN's official site publishes MD5 sums only, so its SHA-256 is ``None`` here: an SVHN download
  is checked for being a readable MATLAB file when loaded, not for its digest.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .domain import DataError

Progress = Callable[[int, Optional[int]], None]
CHUNK = 1 << 16  # bytes per read
TIMEOUT_S = 30.0  # seconds without data before a download gives up


class DownloadError(DataError):
    """A download failed for a network reason (no route, refused, timeout, HTTP error)."""


@dataclass(frozen=True)
class RemoteFile:
    """One benchmark file: where it lives in the data folder and where it comes from.

    Parameters
    ----------
    relpath : str
        POSIX path relative to the data folder, e.g. ``"usps/usps.bz2"``.
    url : str or None
        Canonical public URL; ``None`` when there is no canonical one (see ``where``).
    sha256 : str or None
        Hex digest checked after download; ``None`` when unknown.
    where : str
        Where to get the file by hand, used in messages when ``url`` is ``None``.
    """

    relpath: str
    url: Optional[str]
    sha256: Optional[str]
    where: str = ""


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_USPS = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"

#: domain name -> the files its loader reads. MNIST hashes are those of the official files
#: (the shared test copy of the *train* files is a subset and differs; it still loads).
BENCHMARK_FILES: Dict[str, Tuple[RemoteFile, ...]] = {
    "mnist": (
        RemoteFile("mnist/train-images-idx3-ubyte.gz", _MNIST + "train-images-idx3-ubyte.gz",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        RemoteFile("mnist/train-labels-idx1-ubyte.gz", _MNIST + "train-labels-idx1-ubyte.gz",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        RemoteFile("mnist/t10k-images-idx3-ubyte.gz", _MNIST + "t10k-images-idx3-ubyte.gz",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        RemoteFile("mnist/t10k-labels-idx1-ubyte.gz", _MNIST + "t10k-labels-idx1-ubyte.gz",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    "usps": (
        RemoteFile("usps/usps.bz2", _USPS + "usps.bz2",
                   "2abd1c59b2a6081769270393641fea427879d5e8163542eaaac8699f7460c17f"),
        RemoteFile("usps/usps.t.bz2", _USPS + "usps.t.bz2",
                   "6eacd7c0251c2460aad93c45b86414936ae0b1f40577fa2de76ee9879f7bf8ae"),
    ),
    "mnist-m": (
        RemoteFile("mnist_m/mnist_m_test.zip", None,
                   "c1884612f154ded9cb3f213f575df7d9ccdd47e0337a218ce8ba74b6ba874fb9",
                   where="the MNIST-M authors' page (Ganin & Lempitsky 2015, "
                         "http://sites.skoltech.ru/compvision/projects/grl/; no canonical file URL) "
                         "or a mirror given as LEPTON_DOWNLOAD_BASE"),
    ),
    "svhn": (
        RemoteFile("svhn/train_32x32.mat", _SVHN + "train_32x32.mat", None),
        RemoteFile("svhn/test_32x32.mat", _SVHN + "test_32x32.mat", None),
    ),
}


def offline() -> bool:
    """True when ``$LEPTON_OFFLINE`` is set to ``1``/``true``/``yes`` (no downloads)."""
    return os.environ.get("LEPTON_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def file_url(entry: RemoteFile) -> Optional[str]:
    """URL to fetch ``entry`` from: ``$LEPTON_DOWNLOAD_BASE/<relpath>`` if set, else its canonical URL."""
    base = os.environ.get("LEPTON_DOWNLOAD_BASE", "").strip()
    if base:
        return base.rstrip("/") + "/" + urllib.parse.quote(entry.relpath)
    return entry.url


def stderr_progress(label: str) -> Progress:
    """A progress callback that redraws one line on stderr: ``label  1.2 / 9.9 MB  12%``.

    Parameters
    ----------
    label : str
        Shown at the start of the line (usually the file name).
    """
    last = [0.0]

    def report(done: int, total: Optional[int]) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if not final and now - last[0] < 0.2:
            return
        last[0] = now
        mb = f"{done / 1e6:.1f}"
        line = f"{mb} / {total / 1e6:.1f} MB  {100 * done // max(total, 1):3d}%" if total else f"{mb} MB"
        sys.stderr.write(f"\rdownloading {label}  {line}" + ("\n" if final else ""))
        sys.stderr.flush()

    return report


def download(url: str, dest: Path, sha256: Optional[str] = None, progress: Optional[Progress] = None,
             timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its SHA-256.

    The bytes go to a temporary file in ``dest``'s folder that is renamed onto ``dest`` only after
    the whole body arrived and the digest matched, so an interrupted download never leaves a
    partial file under the final name.

    Parameters
    ----------
    url : str
        ``http(s)://`` or ``file://`` URL.
    dest : pathlib.Path
        Final path; parent folders are created.
    sha256 : str, optional
        Expected hex digest; ``None`` skips the check.
    progress : callable, optional
        ``progress(bytes_done: int, bytes_total: int | None)`` after every chunk (total is ``None``
        when the server sends no length). Default: :func:`stderr_progress`.
    timeout : float
        Seconds to wait for the connection and for each read.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DownloadError
        Network failure, HTTP error status or a body shorter than announced.
    DataError
        Digest mismatch (the message names the file and both digests) or ``dest``'s folder is not
        writable. No file is left behind in either case.
    """
    dest = Path(dest)
    report = progress if progress is not None else stderr_progress(dest.name)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DataError(f"cannot write {dest.name} into {dest.parent}: {e.strerror or e}") from None
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            done, total = _fetch(url, out, digest, report, timeout)
        if total is not None and done != total:
            raise DownloadError(f"download of {url} stopped at {done} of {total} bytes")
        actual = digest.hexdigest()
        if sha256 is not None and actual.lower() != sha256.lower():
            raise DataError(f"checksum mismatch for {dest.name} from {url}: expected sha256 {sha256}, "
                            f"got {actual}; the file was not kept")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _fetch(url: str, out, digest, report: Progress, timeout: float) -> Tuple[int, Optional[int]]:
    """Stream ``url`` into the open file ``out``; return ``(bytes_done, bytes_total)``."""
    req = urllib.request.Request(url, headers={"User-Agent": "lepton-data/1"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            report(0, total)
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                _write(out, chunk)
                digest.update(chunk)
                done += len(chunk)
                report(done, total)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"HTTP {e.code} {e.reason} for {url}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"cannot reach {url}: {e.reason}") from None
    except (socket.timeout, TimeoutError):
        raise DownloadError(f"timed out after {timeout:g} s reading {url}") from None
    except (OSError, http.client.HTTPException) as e:
        raise DownloadError(f"network error reading {url}: {e!r}") from None
    return done, total


def _write(out, chunk: bytes) -> None:
    """Write a chunk; a local disk problem is a DataError, never mistaken for a network error."""
    try:
        out.write(chunk)
    except OSError as e:
        raise DataError(f"cannot write a download to disk: {e.strerror or e}") from None


def missing_message(domain: str, entry: RemoteFile, data_dir: Path, reason: str = "") -> str:
    """The one-line 'missing file' message: names the file, where to get it and where to put it."""
    url = file_url(entry)
    src = url if url else entry.where
    dest = (Path(data_dir) / entry.relpath).parent
    tail = f" ({reason})" if reason else ""
    return (f"missing {Path(entry.relpath).name} for domain {domain}: download it from {src} "
            f"and put it in {dest}{tail}")


def ensure_files(domain_name: str, data_dir, progress: Optional[Progress] = None) -> List[Path]:
    """Download every missing file of benchmark domain ``domain_name`` into ``data_dir``.

    Files already present are left alone (never re-checked against a hash).

    Parameters
    ----------
    domain_name : str
        A key of :data:`BENCHMARK_FILES` (``"mnist"``, ``"usps"``, ``"mnist-m"``, ``"svhn"``).
    data_dir : path-like
        The data folder (see :func:`lepton.data.resolve_data_dir`).
    progress : callable, optional
        ``progress(bytes_done, bytes_total)``, passed to :func:`download` for each file.

    Returns
    -------
    list of pathlib.Path
        All the domain's file paths, now present.

    Raises
    ------
    KeyError
        ``domain_name`` is not a benchmark domain.
    DataError
        A file is missing and ``LEPTON_OFFLINE`` is set, it has no URL, or its download failed for
        a network reason: one line naming the file, where to get it and the folder to put it in.
        Also a checksum mismatch or an unwritable folder (from :func:`download`).
    """
    if domain_name not in BENCHMARK_FILES:
        raise KeyError(f"{domain_name!r} is not a benchmark domain; valid: {', '.join(BENCHMARK_FILES)}")
    data_dir = Path(data_dir).expanduser()
    paths = []
    for entry in BENCHMARK_FILES[domain_name]:
        path = data_dir / entry.relpath
        paths.append(path)
        if path.exists():
            continue
        url = file_url(entry)
        if offline() or url is None:
            reason = "LEPTON_OFFLINE is set" if offline() and url else ""
            raise DataError(missing_message(domain_name, entry, data_dir, reason))
        try:
            download(url, path, entry.sha256, progress)
        except DownloadError as e:
            raise DataError(missing_message(domain_name, entry, data_dir, str(e))) from None
    return paths
