"""User domains: uploads stored under the lepton home and remembered across restarts.

An upload is *data, never code*. This module checks every upload before it touches the domain
registry:

* a size limit on the upload and on a zip's uncompressed contents (default 200 MB, environment
  variable ``LEPTON_UPLOAD_LIMIT_MB``);
* zip entries with an absolute path, a drive letter, a ``..`` component, or that are links
  (symlinks) are refused, and nothing is extracted outside the domain's folder;
* tables are read without pickle (``np.load(..., allow_pickle=False)`` in
  :mod:`lepton.data.custom`);
* only the formats :mod:`lepton.data.custom` reads are accepted: ``.zip`` of an image or audio
  folder laid out ``root/<class>/<image or clip>``, ``.csv``/``.tsv``, ``.npz``, ``.mat``.

Layout on disk::

    <home>/domains/registry.json        {"name": {"path": "name/images", "label": null, ...}}
    <home>/domains/<name>/images/...    an extracted image folder, or
    <home>/domains/<name>/<file>.csv    a feature table

:func:`load_user_domains` registers every stored domain (called by the app at start and by
:mod:`lepton.training.jobs`), so an uploaded domain joins every domain picker and survives a restart.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Dict, List, Optional, Sequence, Union

from ..paths import default_home
from .catalog import DOMAINS, DomainSpec
from .domain import DataError

DEFAULT_LIMIT_MB = 200
REGISTRY_FILE = "registry.json"
TABLE_SUFFIXES = (".csv", ".tsv", ".npz", ".mat", ".jsonl")
UPLOAD_SUFFIXES = (".zip",) + TABLE_SUFFIXES
MAX_ZIP_ENTRIES = 200_000
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class UploadError(DataError):
    """An upload was refused; the message says why and what to do."""


def lepton_home(home: Optional[os.PathLike] = None) -> Path:
    """The lepton home folder (not created): ``home``, else the knowledge base's default
    (``$LEPTON_HOME``, else the platform's user data folder; see :func:`lepton.paths.default_home`)."""
    if home is not None:
        return Path(home).expanduser()
    return default_home()


def domains_dir(home: Optional[os.PathLike] = None) -> Path:
    """``<home>/domains``, where uploads live."""
    return lepton_home(home) / "domains"


def upload_limit_bytes() -> int:
    """Upload size limit in bytes: ``$LEPTON_UPLOAD_LIMIT_MB`` megabytes (default 200).

    Raises
    ------
    UploadError
        If the variable is set to something that is not a positive number.
    """
    raw = os.environ.get("LEPTON_UPLOAD_LIMIT_MB", "").strip()
    if not raw:
        return DEFAULT_LIMIT_MB * 1_000_000
    try:
        mb = float(raw)
    except ValueError:
        mb = -1
    if not mb > 0:
        raise UploadError(f"LEPTON_UPLOAD_LIMIT_MB={raw!r} is not a positive number of megabytes")
    return int(mb * 1_000_000)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def check_name(name: str) -> str:
    """Return the stripped name if it can be a new user domain.

    Raises
    ------
    UploadError
        Empty, too long, characters other than letters, digits, ``-``, ``_``, ``.``, or a name
        already taken by a built-in or benchmark domain.
    """
    name = (name or "").strip()
    if not name:
        raise UploadError("give the new domain a name, e.g. 'my-photos'")
    if len(name) > 64 or not set(name) <= _NAME_OK or name.startswith("."):
        raise UploadError(f"domain name {name!r}: use up to 64 letters, digits, '-', '_' or '.' "
                          "(no spaces, slashes or ':'; not starting with '.')")
    if name in DOMAINS and name not in _custom_names():
        raise UploadError(f"{name!r} is already a built-in domain; choose another name")
    return name


def check_size(n_bytes: int, what: str = "the upload") -> None:
    """Raise :class:`UploadError` if ``n_bytes`` exceeds :func:`upload_limit_bytes`."""
    limit = upload_limit_bytes()
    if n_bytes > limit:
        raise UploadError(f"{what} is {_mb(n_bytes)}, over the {_mb(limit)} limit; upload less data "
                          "or raise LEPTON_UPLOAD_LIMIT_MB")


def check_zip(zf: zipfile.ZipFile) -> List[zipfile.ZipInfo]:
    """Check every entry of a zip archive before anything is extracted.

    Returns
    -------
    list of zipfile.ZipInfo
        The file entries (directories left out).

    Raises
    ------
    UploadError
        An absolute path, a drive letter, a ``..`` component, a link or other special file, an
        encrypted entry, too many entries, or more uncompressed data than the size limit.
    """
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise UploadError(f"the zip has {len(infos)} entries, more than {MAX_ZIP_ENTRIES}; split it")
    files, total = [], 0
    for info in infos:
        name = info.filename
        if "\x00" in name:
            raise UploadError(f"zip entry {name!r} has a NUL character in its name; refused")
        pure = PurePosixPath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise UploadError(f"zip entry {name!r} has an absolute path; refused (zip the folder with "
                              "relative paths, e.g. `cd parent && zip -r data.zip root`)")
        if ".." in pure.parts:
            raise UploadError(f"zip entry {name!r} contains '..'; refused (entries must stay inside the folder)")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadError(f"zip entry {name!r} is a symbolic link; refused (zip the files themselves)")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded (Windows zips)
            raise UploadError(f"zip entry {name!r} is not a regular file or folder; refused")
        if info.flag_bits & 0x1:
            raise UploadError(f"zip entry {name!r} is encrypted; upload an unencrypted zip")
        if info.is_dir():
            continue
        total += info.file_size
        files.append(info)
    check_size(total, "the zip's uncompressed contents")
    if not files:
        raise UploadError("the zip holds no files; zip a folder laid out root/<class>/<image>")
    return files


def safe_extract(source: Union[os.PathLike, BinaryIO], dest: os.PathLike) -> Path:
    """Extract a checked zip into ``dest`` (created) and return the image-folder root.

    The root is ``dest`` itself, or the single top-level folder when the zip holds one folder
    (``data.zip: root/<class>/<image>``). Bytes written are counted while extracting, so a zip
    that lies about its sizes is stopped at the limit.

    Raises
    ------
    UploadError
        For anything :func:`check_zip` refuses, a corrupt zip, or a path escaping ``dest``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    limit, written = upload_limit_bytes(), 0
    try:
        with zipfile.ZipFile(source) as zf:
            for info in check_zip(zf):
                target = (root / info.filename.replace("\\", "/")).resolve()
                if root not in target.parents:
                    raise UploadError(f"zip entry {info.filename!r} would be written outside the folder; refused")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(1 << 16)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > limit:
                            raise UploadError(f"the zip's contents exceed the {_mb(limit)} limit; refused")
                        out.write(chunk)
    except zipfile.BadZipFile as e:
        raise UploadError(f"the upload is not a readable zip file ({e})") from None
    except RuntimeError as e:  # e.g. encrypted entries
        raise UploadError(f"cannot extract the zip: {e}") from None
    return _image_root(root)


def _image_root(root: Path) -> Path:
    """Descend through single-folder wrappers (and skip ``__MACOSX``) to the class folders."""
    for _ in range(3):
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) == 1 and len(entries) == 1:
            sub = dirs[0]
            inner = [p for p in sub.iterdir() if p.is_dir() and not p.name.startswith(".")]
            if inner:
                root = sub
                continue
        break
    return root


# ----------------------------------------------------------------------------- registry

def _registry_path(home: Optional[os.PathLike]) -> Path:
    return domains_dir(home) / REGISTRY_FILE


def _read_registry(home: Optional[os.PathLike], quiet: bool = False) -> Dict[str, dict]:
    path = _registry_path(home)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError) as e:
        if not quiet:
            warnings.warn(f"cannot read {path} ({e}); user domains are not loaded")
        return {}


def _write_registry(reg: Dict[str, dict], home: Optional[os.PathLike]) -> None:
    path = _registry_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".registry-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(reg, f, indent=2, sort_keys=True)
    os.replace(tmp, path)  # atomic: a crash never leaves half a registry


def list_user_domains(home: Optional[os.PathLike] = None) -> Dict[str, dict]:
    """Stored user domains: ``{name: {"path", "label", "kind", "filename", "added", "bytes"}}``."""
    return _read_registry(home)


def load_user_domains(home: Optional[os.PathLike] = None) -> List[str]:
    """Register every stored user domain (lazily: data is read when a domain is first loaded).

    A stored domain whose files disappeared is skipped with a warning.

    Returns
    -------
    list of str
        Names registered.
    """
    from .custom import register_custom

    base, names = domains_dir(home), []
    for name, entry in _read_registry(home).items():
        if name in DOMAINS and name not in _custom_names():
            continue  # never shadow a built-in
        path = base / entry.get("path", "")
        try:
            register_custom(name, path, entry.get("label"), validate=False)
            names.append(name)
            for part, value in (entry.get("parts") or {}).items():
                register_custom(part, path, entry.get("label"), validate=False, domain=value)
                names.append(part)
        except DataError as e:
            warnings.warn(f"user domain {name!r} skipped: {e}")
    return names


def _custom_names():
    from .custom import _CUSTOM_NAMES
    return _CUSTOM_NAMES


def add_user_domain(name: str, filename: str, data: Union[bytes, BinaryIO], label: Optional[str] = None,
                    home: Optional[os.PathLike] = None, replace: bool = False) -> DomainSpec:
    """Store an upload under ``<home>/domains/<name>/``, validate it, register it and remember it.

    Parameters
    ----------
    name : str
        New domain name (see :func:`check_name`); an existing user domain of that name is refused
        unless ``replace`` (stored runs name their domains: silently swapping the data behind a name
        would change what those runs mean).
    filename : str
        The uploaded file's name; its suffix picks the format (``.zip``, ``.csv``, ``.tsv``,
        ``.npz``, ``.mat``).
    data : bytes or binary file
        The upload.
    label : str, optional
        Label column / key of a table (default: ``label``, ``y``, ``target``, ... any case).
    replace : bool
        Replace an existing user domain of that name.

    Returns
    -------
    DomainSpec
        The registered spec; ``lepton.data.load_domain(name)`` loads it.

    Raises
    ------
    UploadError
        A refused upload (size, zip safety, format, a name already taken).
    DataError
        Data that cannot form a domain (from :mod:`lepton.data.custom`); nothing is kept then.
    """
    from .custom import register_custom

    name = check_name(name)
    suffix = Path(filename or "").suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadError(f"{filename!r}: upload a .zip of an image folder (root/<class>/<image>) or a "
                          f"feature table ({', '.join(TABLE_SUFFIXES)}); got {suffix or 'no extension'!r}")
    reg = _read_registry(home)
    owner = next((n for n, e in reg.items() if name in (e.get("parts") or {})), None)
    if owner is not None:
        raise UploadError(f"the name {name!r} is already taken: it is one of the domains of the upload {owner!r} "
                          "(one per value of its domain column); pick another name")
    existing = reg.get(name)
    if existing is not None and not replace:
        raise UploadError(f"a domain named {name!r} already exists ({existing.get('filename', 'an upload')}, added "
                          f"{existing.get('added', '?')}); stored runs refer to it by name, so pick another name or "
                          "choose to replace it")
    raw = data if isinstance(data, bytes) else data.read()
    check_size(len(raw))
    base = domains_dir(home)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        if suffix == ".zip":
            import io
            root = safe_extract(io.BytesIO(raw), staging / "images")
        else:
            stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem).strip("_") or "table"
            root = staging / f"{stem[:80]}{suffix}"  # the user's file name, so messages name it
            root.write_bytes(raw)
        rel_inside = root.relative_to(staging)
        spec = register_custom(name, root, label, validate=True)  # reads the data once: bad data fails here
        parts = _interaction_parts(name, root, home, replace) if spec.modality == "interactions" else {}
        for part, value in parts.items():
            register_custom(part, root, label, validate=True, domain=value)
        final = base / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a refused upload leaves nothing behind
        raise
    spec = register_custom(name, final / rel_inside, label, validate=False)  # point at the final path
    for part, value in parts.items():
        register_custom(part, final / rel_inside, label, validate=False, domain=value)
    reg = _read_registry(home)
    for old in (reg.get(name) or {}).get("parts", {}):  # a replaced upload's domains that are gone now
        if old not in parts:
            _unregister(old)
    reg[name] = {"path": (Path(name) / rel_inside).as_posix(), "label": label, "parts": parts,
                 "kind": f"{spec.modality or 'image'} folder" if suffix == ".zip" else
                 "interactions file" if spec.modality == "interactions" else "feature table",
                 "filename": Path(filename).name, "added": time.strftime("%Y-%m-%d %H:%M:%S"), "bytes": len(raw),
                 "sha256": hashlib.sha256(raw).hexdigest()}
    _write_registry(reg, home)
    return spec


def upload_parts(name: str, home: Optional[os.PathLike] = None) -> List[str]:
    """The domains an uploaded interactions file with a ``domain`` column added beside ``name``
    (one per value, ``<name>-<value>``); ``[]`` for other uploads."""
    return list((_read_registry(home).get(name) or {}).get("parts") or {})


def remove_user_domain(name: str, home: Optional[os.PathLike] = None) -> None:
    """Forget a user domain and delete its files.

    Raises
    ------
    UploadError
        If ``name`` is not a stored user domain.
    """
    reg = _read_registry(home)
    if name not in reg:
        raise UploadError(f"{name!r} is not an uploaded domain")
    parts = list((reg.pop(name) or {}).get("parts") or {})
    _write_registry(reg, home)
    shutil.rmtree(domains_dir(home) / name, ignore_errors=True)
    for n in [name, *parts]:
        _unregister(n)


def rename_user_domain(old: str, new: str, home: Optional[os.PathLike] = None) -> DomainSpec:
    """Give an uploaded domain another name: its folder moves to ``<home>/domains/<new>/`` and the
    old name is forgotten. Stored runs keep their record under the old name (and then say its data is
    gone).

    Raises
    ------
    UploadError
        ``old`` is not an uploaded domain, ``new`` is not a valid name or is taken (a built-in or
        another upload), or the upload holds interactions split by a domain column (its part
        domains are named after it: delete it and upload it again under the new name).
    """
    from .custom import register_custom

    reg = _read_registry(home)
    if old not in reg:
        raise UploadError(f"{old!r} is not an uploaded domain")
    new = check_name(new)
    if new == old:
        return DOMAINS.get(old)
    if new in reg or new in DOMAINS:
        raise UploadError(f"a domain named {new!r} already exists; pick another name")
    entry = dict(reg[old])
    if entry.get("parts"):
        raise UploadError(f"{old!r} holds interactions split by its domain column into {', '.join(entry['parts'])}; "
                          "those names follow the upload's, so delete it and upload it again under the new name")
    base = domains_dir(home)
    os.replace(base / old, base / new)
    rel = PurePosixPath(entry["path"]).relative_to(old)
    entry["path"] = (PurePosixPath(new) / rel).as_posix()
    del reg[old]
    reg[new] = entry
    _write_registry(reg, home)
    _unregister(old)
    return register_custom(new, base / new / rel, entry.get("label"), validate=False)


def data_versions(names: Sequence[str], home: Optional[os.PathLike] = None) -> Dict[str, str]:
    """The content hash (first 16 hex digits of the upload's SHA-256) of each of ``names`` that is an
    uploaded domain, or a part domain of an upload of interactions, from one read of the registry;
    built-in and benchmark domains (their files do not change) and uploads stored before hashes were
    kept are left out."""
    by_name = {}
    for n, entry in _read_registry(home, quiet=True).items():
        v = (entry.get("sha256") or "")[:16]
        for m in (n, *(entry.get("parts") or {})):
            if v:
                by_name[m] = v
    return {n: by_name[n] for n in names if n in by_name}


def stale_domains(versions: Dict[str, str], home: Optional[os.PathLike] = None) -> Dict[str, str]:
    """Which uploaded domains a stored run used have changed since: ``{name: "replaced" | "gone"}``.

    Parameters
    ----------
    versions : dict of str to str
        The run's ``harmonisation["data_versions"]`` (:func:`data_versions` when it trained).
    """
    now = data_versions(list(versions or {}), home)
    return {n: "gone" if n not in now else "replaced" for n, v in (versions or {}).items() if now.get(n) != v}


def _unregister(name: str) -> None:
    if name in DOMAINS._items and name in _custom_names():
        del DOMAINS._items[name]
        _custom_names().discard(name)
    from . import catalog
    for key in [k for k in catalog._CACHE if k[0] == name or k[0].startswith(name + ":")]:
        del catalog._CACHE[key]


def _interaction_parts(name: str, path: Path, home, replace: bool) -> Dict[str, str]:
    """``{"<name>-<value>": value}`` for each value of an interactions file's ``domain`` column: one
    user domain per kind of item, so a file of books and movies pairs ``mine-books`` with
    ``mine-movies``. Raises :class:`UploadError` for a part name that is taken or not allowed."""
    from .interactions import domain_values
    reg = _read_registry(home)
    own = set((reg.get(name) or {}).get("parts") or {}) if replace else set()
    parts = {}
    for v in domain_values(path):
        part = f"{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', v).strip('-').lower() or 'domain'}"
        if part in parts:
            raise UploadError(f"the domain values {parts[part]!r} and {v!r} both become the domain name {part!r}; "
                              "rename one in the file's domain column")
        if (part in reg or (part in DOMAINS and part not in _custom_names())) and part not in own:
            raise UploadError(f"the file's domain {v!r} would become {part!r}, a name already taken; pick another "
                              "name for the upload")
        check_name(part)
        parts[part] = v
    return parts
