"""Custom domains: a folder of images in class sub-folders, or a feature table.

``load_custom("PATH")`` or ``load_custom("PATH#label=COLUMN")``:

* **Image folder** laid out ``root/<class>/<image>`` (the torchvision ``ImageFolder`` layout; PNG,
  JPEG, BMP, GIF, TIFF, WebP; any size, gray or colour). Classes are the folder names, sorted.
  If every image is gray (a one-channel mode, or RGB with equal channels) the domain has 1
  channel, otherwise all images are read as RGB. All images are resized (bilinear, PIL) to the most
  common size in the folder; if that size's longer side exceeds 64 pixels it is scaled down,
  keeping the aspect ratio, so that side is 64.
* **Feature table**: ``.csv``/``.tsv`` (pandas; a header row, the label column is ``#label=COL``
  or the first of ``label``, ``labels``, ``target``, ``class``, ``y``, any case), ``.npz``
  (keys ``X``/``x``/``features``/``data`` and ``y``/``labels``/``label``) or ``.mat`` (MATLAB v5
  via scipy, v7.3 = HDF5 via h5py, same keys; v7.3 arrays are stored transposed and are
  transposed back).

Labels may be strings (classes = sorted unique strings) or integers: ``0..K-1`` is taken as is,
``1..K`` is taken as 1-based and shifted, anything else is mapped in sorted order; the assumption
is recorded in ``Domain.notes["labels"]`` and, when it is a guess, also given as a warning.
Both kinds get a seeded (seed 0) class-stratified 80/20 train/test split.
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from .catalog import DOMAINS, DomainSpec
from .domain import DataError, Domain, stratified_split

SPLIT_SEED = 0
TEST_FRACTION = 0.2
MAX_SIDE = 64  # pixels; longer side of the common image size is capped at this
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TABLE_EXTS = {".csv", ".tsv", ".npz", ".mat"}
LABEL_COLUMNS = ("label", "labels", "target", "class", "y")  # "y" last: it may be a coordinate
X_KEYS = ("X", "x", "features", "data")
Y_KEYS = ("y", "labels", "label")
_GRAY_MODES = {"1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
_CUSTOM_NAMES: Set[str] = set()


def parse_custom_name(name: str) -> Tuple[Path, Optional[str]]:
    """Split ``"PATH#label=COL"`` into ``(Path("PATH"), "COL")``; ``"PATH"`` gives ``(PATH, None)``.

    Raises
    ------
    DataError
        A ``#`` fragment other than ``label=COL``.
    """
    path, sep, frag = name.rpartition("#")
    if not sep or Path(name).exists():
        return Path(name).expanduser(), None
    if not frag.startswith("label=") or not frag[len("label="):]:
        raise DataError(f"{name!r}: after '#' only 'label=COLUMN' is understood")
    return Path(path).expanduser(), frag[len("label="):]


def load_custom(name: str, domain_name: Optional[str] = None) -> Domain:
    """Load a custom domain from an image folder or a feature table.

    Parameters
    ----------
    name : str
        ``PATH`` or ``PATH#label=COL`` (see the module docstring for layouts and formats).
    domain_name : str, optional
        Name of the returned domain (default: ``name``).

    Returns
    -------
    Domain
        Image folder: ``modality="image"``, ``x`` float32 ``(N, C, H, W)`` in [0, 1], C 1 or 3.
        Table: ``modality="features"``, ``x`` float32 ``(N, D)``. Labels int64 ``(N,)``; a seeded
        (seed 0) stratified 80/20 split; ``notes`` record the label convention and the split.

    Raises
    ------
    DataError
        Missing path, unknown format, unreadable images (up to 5 named, with the count), no label
        column, non-numeric feature columns, rows with NaN or all zeros (count and first indices),
        fewer than 2 rows or a single class.

    Warns
    -----
    UserWarning
        When an integer label convention was guessed (1-based, or values that are not 0..K-1).
    """
    path, label = parse_custom_name(name)
    dname = domain_name or name
    if not path.exists():
        raise DataError(f"custom domain {name!r}: {path} does not exist")
    if path.is_dir():
        if label is not None:
            raise DataError(f"{name!r}: '#label=' applies to tables, not to image folders")
        return _load_image_folder(path, dname)
    ext = path.suffix.lower()
    if ext not in TABLE_EXTS:
        raise DataError(f"{path.name}: unknown format {ext!r}; use an image folder root/<class>/<image> "
                        f"or a table ({', '.join(sorted(TABLE_EXTS))})")
    reader = {".csv": _read_csv, ".tsv": _read_csv, ".npz": _read_npz, ".mat": _read_mat}[ext]
    x, labels, notes = reader(path, label)
    return _table_domain(x, labels, path, dname, notes)


# ----------------------------------------------------------------------------- image folders

def _to_8bit(img):
    """A PIL image as 8-bit ``L`` (gray modes) or ``RGB``."""
    from PIL import Image

    if img.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(img, dtype=np.float32) / 257.0).round().astype(np.uint8))
    if img.mode in ("I", "F"):
        return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64), 0, 255).astype(np.uint8))
    if img.mode in _GRAY_MODES:
        return img.convert("L")
    rgb = img.convert("RGBA").convert("RGB") if "transparency" in img.info else img.convert("RGB")
    a = np.asarray(rgb)
    if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
        return rgb.convert("L")  # an RGB file holding a gray image
    return rgb


def _common_size(sizes: List[Tuple[int, int]]) -> Tuple[int, int]:
    """Most common (width, height), ties to the larger area; longer side capped at MAX_SIDE."""
    (w, h), _ = max(Counter(sizes).items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1], kv[0]))
    if max(w, h) > MAX_SIDE:
        f = MAX_SIDE / max(w, h)
        w, h = max(1, round(w * f)), max(1, round(h * f))
    return w, h


def _scan_folder(root: Path) -> Tuple[List[str], List[Tuple[Path, int]], List[str], int]:
    """Class names, (file, class index) pairs, empty class folders and the count of skipped files."""
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise DataError(f"{root} has no class folders; lay it out as {root.name}/<class>/<image>")
    classes, items, empty, skipped = [], [], [], 0
    for d in dirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
        imgs = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
        skipped += len(files) - len(imgs)
        if not imgs:
            empty.append(d.name)
            continue
        items += [(p, len(classes)) for p in imgs]
        classes.append(d.name)
    return classes, items, empty, skipped


def _load_image_folder(root: Path, name: str) -> Domain:
    from PIL import Image

    classes, items, empty, skipped = _scan_folder(root)
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s) with images; at least 2 are needed")
    images, bad = [], []
    for p, _ in items:
        try:
            with Image.open(p) as im:
                im.load()
                images.append(_to_8bit(im))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            bad.append(p.relative_to(root).as_posix())
    if bad:
        raise DataError(f"{len(bad)} unreadable image file(s) in {root}: {', '.join(bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}; fix or remove them")
    gray = all(im.mode == "L" for im in images)
    w, h = _common_size([im.size for im in images])
    mode = "L" if gray else "RGB"
    x = np.stack([np.asarray(im.convert(mode).resize((w, h), Image.Resampling.BILINEAR)) for im in images])
    x = x[:, None] if gray else x.transpose(0, 3, 1, 2)  # (N, C, H, W)
    y = np.array([c for _, c in items], dtype=np.int64)
    notes: Dict[str, object] = {"layout": "root/<class>/<image>", "channels": 1 if gray else 3,
                                "size": f"resized to {h}x{w} (most common size, longer side <= {MAX_SIDE})"}
    if empty:
        warnings.warn(f"{root}: class folders without images were left out: {', '.join(empty)}", stacklevel=3)
        notes["empty_classes_left_out"] = empty
    if skipped:
        notes["non_image_files_skipped"] = skipped
    return _split_domain(name, "image", x.astype(np.float32) / 255.0, y, classes, str(root), notes)


# ----------------------------------------------------------------------------- tables

def _pick(keys: List[str], wanted: Optional[str], defaults: Tuple[str, ...], what: str, path: Path) -> str:
    """Find a column / key: ``wanted`` (exact, then any case) or the first default (any case)."""
    lower = {str(k).lower(): k for k in keys}
    for cand in ([wanted] if wanted else list(defaults)):
        if cand in keys:
            return cand
        if cand.lower() in lower:
            return lower[cand.lower()]
    hint = f" ({wanted!r} not found)" if wanted else f"; name it one of {', '.join(defaults)}"
    fix = " or give it as PATH#label=NAME" if what == "label" else ""
    raise DataError(f"{path.name}: no {what} column/key{hint}{fix}; found: {', '.join(map(str, keys))}")


def _read_csv(path: Path, label: Optional[str]):
    import pandas as pd

    try:
        df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path.name} as a table: {e}") from None
    col = _pick(list(df.columns), label, LABEL_COLUMNS, "label", path)
    if len(df) == 0:
        raise DataError(f"{path.name} has a header but no rows; add examples, one per line")
    feats = df.drop(columns=[col])
    bad = [str(c) for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    if bad:
        raise DataError(f"{path.name}: feature column(s) {', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''} "
                        f"are not numeric; encode them as numbers or drop them (label column: {col!r})")
    return feats.to_numpy(dtype=np.float64), df[col].to_numpy(), {"label_column": str(col)}


def _read_npz(path: Path, label: Optional[str]):
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            xk, yk = _pick(keys, None, X_KEYS, "feature", path), _pick(keys, label, Y_KEYS, "label", path)
            return z[xk], z[yk], {"keys": [xk, yk]}
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path.name}: cannot read without pickle ({e}); save numeric or string arrays") from None
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path.name} as .npz: {e}") from None


def _read_mat(path: Path, label: Optional[str]):
    import h5py
    from scipy.io import loadmat

    if h5py.is_hdf5(str(path)):
        return _read_mat73(path, label)
    try:
        m = loadmat(str(path))
    except NotImplementedError:  # v7.3 that h5py did not recognise
        return _read_mat73(path, label)
    except (ValueError, OSError, TypeError, EOFError) as e:
        raise DataError(f"cannot read {path.name} as a MATLAB file: {e}") from None
    keys = [k for k in m if not k.startswith("__")]
    xk, yk = _pick(keys, None, X_KEYS, "feature", path), _pick(keys, label, Y_KEYS, "label", path)
    y = m[yk]
    if y.dtype == object:  # cell array of strings
        y = np.array([str(np.asarray(e).ravel()[0]) if np.asarray(e).size else "" for e in y.ravel()])
    return m[xk], y, {"keys": [xk, yk], "format": "MATLAB v5"}


def _read_mat73(path: Path, label: Optional[str]):
    """MATLAB v7.3 (HDF5): arrays are stored transposed; char data is uint16 code points."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = [k for k in f.keys() if not k.startswith("#")]
            xk, yk = _pick(keys, None, X_KEYS, "feature", path), _pick(keys, label, Y_KEYS, "label", path)
            x = np.asarray(f[xk][()]).T
            yd = f[yk]
            if yd.dtype == h5py.ref_dtype:  # cell array: one reference per element
                y = np.array([_mat_chars(f[r][()]) for r in np.asarray(yd[()]).T.ravel()])
            elif yd.attrs.get("MATLAB_class", b"") in (b"char", "char"):  # char matrix, one row per label
                y = np.array([_mat_chars(row) for row in np.asarray(yd[()]).T])
            else:
                y = np.asarray(yd[()]).T
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"cannot read {path.name} as a MATLAB v7.3 (HDF5) file: {e}") from None
    return x, y, {"keys": [xk, yk], "format": "MATLAB v7.3 (HDF5)"}


def _mat_chars(a) -> str:
    return "".join(chr(int(c)) for c in np.asarray(a).ravel() if int(c)).strip()


def encode_labels(raw: np.ndarray) -> Tuple[np.ndarray, List[str], str, bool]:
    """Turn raw labels (strings or integers) into class indices.

    Parameters
    ----------
    raw : np.ndarray
        ``(N,)`` strings, integers or integral floats (no missing values).

    Returns
    -------
    y : np.ndarray
        int64 ``(N,)`` in ``0..K-1``.
    class_names : list of str
        Strings: sorted unique values. Integers: the values as written (``"1"``..``"K"`` for 1-based).
    convention : str
        The convention assumed, for ``Domain.notes["labels"]``.
    guessed : bool
        True when the convention is a guess (1-based or remapped integers).

    Raises
    ------
    DataError
        Non-integer numeric labels.
    """
    raw = np.asarray(raw).ravel()
    if raw.dtype.kind in "USO":
        vals = np.array([str(v).strip() for v in raw])
        names = sorted(set(vals.tolist()))
        return np.searchsorted(np.array(names), vals).astype(np.int64), names, "strings; classes sorted by name", False
    v = raw.astype(np.float64)
    if np.any(v != np.round(v)):
        raise DataError(f"labels must be integers or strings; found values such as {v[v != np.round(v)][0]:g}")
    v = v.astype(np.int64)
    u = np.unique(v)
    names = [str(i) for i in u]
    if u[0] == 0 and u[-1] == len(u) - 1:
        return v, names, f"0-based integers 0..{len(u) - 1}", False
    if u[0] == 1 and u[-1] == len(u):
        return v - 1, names, f"1-based integers 1..{len(u)} assumed; shifted to 0..{len(u) - 1}", True
    return (np.searchsorted(u, v).astype(np.int64), names,
            f"integers {names[0]}..{names[-1]} (not 0..K-1 or 1..K); mapped in sorted order to 0..{len(u) - 1}", True)


def _first(idx: np.ndarray) -> str:
    return ", ".join(str(int(i)) for i in idx[:5]) + (" ..." if len(idx) > 5 else "")


def _table_domain(x, labels, path: Path, name: str, notes: Dict[str, object]) -> Domain:
    try:
        x = np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(f"{path.name}: the features are not numeric") from None
    labels = np.asarray(labels).ravel()
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 2 and x.shape[0] != len(labels) and x.shape[1] == len(labels):
        x, notes["transposed"] = x.T, True
    if x.ndim > 2:
        notes["flattened_from"] = list(x.shape[1:])
        x = x.reshape(len(x), -1)
    if len(x) != len(labels):
        raise DataError(f"{path.name}: {len(x)} feature rows but {len(labels)} labels")
    if len(x) < 2:
        raise DataError(f"{path.name}: {len(x)} row(s); a domain needs at least 2")
    missing = np.flatnonzero([v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""
                              for v in labels])
    if len(missing):
        raise DataError(f"{path.name}: {len(missing)} row(s) have no label (rows {_first(missing)}, 0-based); "
                        "drop them or fill in their labels")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise DataError(f"{path.name}: {len(bad)} row(s) contain NaN or infinite values (rows {_first(bad)}, "
                        "0-based); drop or impute them")
    zero = np.flatnonzero(~x.any(axis=1))
    if len(zero):
        raise DataError(f"{path.name}: {len(zero)} row(s) are all zeros (rows {_first(zero)}, 0-based); "
                        "drop or impute them")
    y, names, convention, guessed = encode_labels(labels)
    if len(names) < 2:
        raise DataError(f"{path.name}: all {len(y)} rows have the same label {names[0]!r}; a domain needs 2+ classes")
    notes["labels"] = convention
    if guessed:
        warnings.warn(f"{path.name}: labels taken as {convention}", UserWarning, stacklevel=3)
    return _split_domain(name, "features", x.astype(np.float32), y, names, str(path), notes)


def _split_domain(name, modality, x, y, class_names, source, notes) -> Domain:
    try:
        tr, te = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
        how = "class-stratified"
    except ValueError:  # too few examples per class for a stratified split
        from sklearn.model_selection import train_test_split
        tr, te = map(np.sort, train_test_split(np.arange(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED))
        how = "random (too few examples per class to stratify)"
    notes["split"] = f"{how} 80/20, seed {SPLIT_SEED}"
    return Domain(name, modality, x[tr], y[tr], x[te], y[te], list(class_names), source=source,
                  content_fraction=1.0, notes=notes)


# ----------------------------------------------------------------------------- registration

def register_custom(name: str, path, label: Optional[str] = None, validate: bool = True) -> DomainSpec:
    """Register an image folder or table under a user-given domain name (used for uploads).

    Parameters
    ----------
    name : str
        New domain name; no ``:``, ``#`` or path separators. Re-registering a custom name replaces it.
    path : path-like
        Image folder or table, as for :func:`load_custom`.
    label : str, optional
        Label column / key of a table.
    validate : bool
        Load the data once now, so that bad data fails here, not later.

    Returns
    -------
    DomainSpec
        The registered spec; ``load_domain(name)`` then loads it.

    Raises
    ------
    DataError
        Bad name, a name taken by a non-custom domain, a missing path, or (``validate``) bad data.
    """
    if not name or any(c in name for c in ":#/\\") or name != name.strip():
        raise DataError(f"domain name {name!r} must be non-empty without ':', '#', '/', '\\' or outer spaces")
    if name in DOMAINS and name not in _CUSTOM_NAMES:
        raise DataError(f"{name!r} is already a registered domain; choose another name")
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise DataError(f"custom domain {name!r}: {p} does not exist")
    ref = f"{p}#label={label}" if label else str(p)

    def loader(data_dir: Path = None) -> Domain:
        return load_custom(ref, domain_name=name)

    kind = "image folder" if p.is_dir() else "feature table"
    spec = DomainSpec(name, "image" if p.is_dir() else "features", f"custom {kind} {p.name}", loader,
                      files=lambda data_dir: [p])
    if validate:
        loader()
    DOMAINS.add(name, spec, replace=True)
    _CUSTOM_NAMES.add(name)
    _forget(name)
    return spec


def unregister_custom(name: str) -> None:
    """Remove a domain added by :func:`register_custom` (built-in and benchmark names are kept).

    Raises
    ------
    DataError
        ``name`` was not registered by :func:`register_custom`.
    """
    if name not in _CUSTOM_NAMES:
        raise DataError(f"{name!r} is not a custom domain")
    DOMAINS._items.pop(name, None)
    _CUSTOM_NAMES.discard(name)
    _forget(name)


def _forget(name: str) -> None:
    """Drop ``name`` (and its shifted variants) from the in-memory domain cache."""
    from . import catalog

    for key in [k for k in catalog._CACHE if k[0] == name or k[0].startswith(name + ":")]:
        del catalog._CACHE[key]  # a re-registered name must not serve the old data
