"""Custom domains: a folder of images or audio clips in class sub-folders, or a feature table.

``load_custom("PATH")`` or ``load_custom("PATH#label=COLUMN,x=KEY,base=1")`` (every option optional):

* **Image folder** laid out ``root/<class>/<image>`` (the torchvision ``ImageFolder`` layout; PNG,
  JPEG, BMP, GIF, TIFF, WebP; any size, gray or colour). Classes are the folder names, sorted.
  If every image is gray (a one-channel mode, or RGB with equal channels) the domain has 1
  channel, otherwise all images are read as RGB. All images are resized (bilinear, PIL) to the most
  common size in the folder; if that size's longer side exceeds 64 pixels it is scaled down,
  keeping the aspect ratio, so that side is 64.
* **Audio folder** laid out ``root/<class>/<clip>`` (WAV, FLAC, OGG, AIFF; any sample rate, mono or
  stereo): read when its class folders hold more audio clips than images; see
  :func:`lepton.data.audio.load_audio_folder` (``modality="audio"``, log-mel spectrograms).
* **Text table**: a ``.csv``/``.tsv`` with a text column (``#text=COL``, or a non-numeric column
  named ``text``, ``review``, ``sentence`` or ``document``) or a JSON-lines ``.jsonl`` file (one
  object per line, the same column names), and a label column as below (none: unlabelled).
  Quoted fields with commas and newlines work; bytes are read as UTF-8 (a BOM is dropped), else as
  Latin-1 (stated in ``notes["encoding"]``); a file of binary bytes is refused. The domain has
  ``modality="text"`` and is featurised when paired (:func:`lepton.data.text.featurise_text`).
* **Feature table**: ``.csv``/``.tsv`` (pandas; a header row, the label column is ``#label=COL``
  or the first of ``label``, ``labels``, ``target``, ``class``, ``y``, any case), ``.npz``
  or ``.mat`` (MATLAB v5 via scipy, v7.3 = HDF5 via h5py; v7.3 arrays are stored transposed and
  are transposed back). In ``.npz``/``.mat`` the feature key is ``#x=KEY`` or the first of
  :data:`X_KEYS` (``X``, ``features``, ``fts``, ``feas``, ...), the label key ``#label=KEY`` or
  the first of :data:`Y_KEYS` (``y``, ``labels``, ``gnd``, ...); a file holding two domains
  (``Xs``/``Ys`` and ``Xt``/``Yt``) is read one domain at a time, ``PATH#x=Xs,label=Ys``. When no
  key fits, the error lists the keys found.
* **Flattened images in a table**: ``#shape=HxW`` (or ``CxHxW``, C 1 or 3) reads each feature row
  as an image of that shape, row-major (C order, as NumPy's and MATLAB-exported ``reshape`` of
  PyTorch-style arrays lay them out), so the domain is ``modality="image"`` and trains a
  convolutional encoder: the 256 columns of a 16x16 USPS table, say. Pixel values in [0, 1] are
  kept, values in [0, 255] are divided by 255; others are refused. A table whose column count is
  a square (or three times one) and whose values look like pixels, read without ``#shape``, gets a
  warning that suggests it.

Labels may be strings (classes = sorted unique strings) or integers. Integer labels are aligned by
value after their base is applied: ``#base=0`` or ``#base=1`` states it; otherwise ``0..K-1`` is
taken as 0-based and ``1..K`` as 1-based (a guess, warned), so that 1-based ``1..K`` labels become
classes ``"0".."K-1"`` and match a 0-based domain by meaning. Other integers are mapped in sorted
order and keep their values (minus a stated base) as class names. The assumption is recorded in
``Domain.notes["labels"]`` (and ``label_base``) and stored with every run.

A table without a label column (none named and none of the usual names present) is an
**unlabelled** domain: its labels are ``-1`` (:attr:`Domain.labelled` is False), it can be the
target of unsupervised adaptation, and accuracy on it is reported as "no labels", never as 0.

Labelled domains get a seeded (seed 0) class-stratified 80/20 train/test split, unlabelled ones a
seeded random one.
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from .catalog import DOMAINS, DomainSpec
from .domain import DataError, Domain, stratified_split

SPLIT_SEED = 0
TEST_FRACTION = 0.2
MAX_SIDE = 64  # pixels; longer side of the common image size is capped at this
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TABLE_EXTS = {".csv", ".tsv", ".npz", ".mat", ".jsonl"}
TEXT_COLUMNS = ("text", "review", "sentence", "document")  # a text table's text column, in the order tried
LABEL_COLUMNS = ("label", "labels", "target", "class", "y")  # "y" last: it may be a coordinate
# Feature / label keys of .npz and .mat files, in the order tried (any case); the field's public feature
# releases use several (Office-31/Caltech SURF and DeCAF ``fts``/``feas``, ``gnd`` for ground truth).
X_KEYS = ("X", "x", "features", "feature", "feats", "feat", "fts", "feas", "data")
Y_KEYS = ("y", "labels", "label", "gnd", "targets", "target", "classes", "class")
OPTION_KEYS = ("label", "x", "base", "text", "shape", "domain", "scale")
_GRAY_MODES = {"1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
_CUSTOM_NAMES: Set[str] = set()


def parse_custom_name(name: str) -> Tuple[Path, Dict[str, str]]:
    """Split ``"PATH#label=COL,x=KEY,base=1"`` into ``(Path("PATH"), {"label": "COL", ...})``.

    A path that exists as written (even with ``#`` in it) has no options. Options are
    comma-separated ``KEY=VALUE`` pairs: ``label`` (label column / key), ``x`` (feature key of an
    ``.npz``/``.mat`` file), ``base`` (``0`` or ``1``: where integer labels start), ``text`` (the
    text column), ``shape`` (``HxW`` or ``CxHxW``: the rows are flattened images), ``domain`` and
    ``scale`` (an interactions file: the rows of one domain, the rating scale ``LOW-HIGH``).

    Returns
    -------
    path : pathlib.Path
    options : dict of str
        Only the options given.

    Raises
    ------
    DataError
        An unknown option, an empty value, a ``base`` other than 0 or 1 or a ``shape`` that is not
        ``HxW``/``CxHxW`` (C 1 or 3).
    """
    path, sep, frag = name.rpartition("#")
    if not sep or Path(name).expanduser().exists():
        return Path(name).expanduser(), {}
    opts: Dict[str, str] = {}
    for part in frag.split(","):
        k, eq, v = part.partition("=")
        k, v = k.strip(), v.strip()
        if not eq or k not in OPTION_KEYS or not v:
            raise DataError(f"{name!r}: after '#' give KEY=VALUE pairs separated by commas, KEY one of "
                            f"{', '.join(OPTION_KEYS)} (e.g. {Path(path).name}#label=y,base=1); got {part!r}")
        opts[k] = v
    if "base" in opts and opts["base"] not in ("0", "1"):
        raise DataError(f"{name!r}: base={opts['base']} is not understood; integer labels start at 0 or 1")
    if "shape" in opts:
        image_shape(opts["shape"], name)
    return Path(path).expanduser(), opts


def load_custom(name: str, domain_name: Optional[str] = None) -> Domain:
    """Load a custom domain from an image folder or a feature table.

    Parameters
    ----------
    name : str
        ``PATH`` or ``PATH#label=COL,x=KEY,base=0|1`` (see the module docstring for layouts and formats).
    domain_name : str, optional
        Name of the returned domain (default: ``name``).

    Returns
    -------
    Domain
        Image folder: ``modality="image"``, ``x`` float32 ``(N, C, H, W)`` in [0, 1], C 1 or 3.
        Audio folder: ``modality="audio"``, ``x`` float32 ``(N, 1, 40, 94)`` in [0, 1].
        Table: ``modality="features"``, ``x`` float32 ``(N, D)``. Labels int64 ``(N,)``; a seeded
        (seed 0) stratified 80/20 split; ``notes`` record the label convention and the split. A
        table without labels gives labels ``-1`` and no class names (``Domain.labelled`` False).

    Raises
    ------
    DataError
        Missing path, unknown format or option, unreadable images (up to 5 named, with the count), a
        named label column or key that is absent, no feature key (listing the keys found), no feature
        columns, non-numeric feature columns, rows with NaN or all zeros (count and first indices),
        fewer than 2 rows or a single class.

    Warns
    -----
    UserWarning
        When an integer label convention was guessed (1-based, or values that are not 0..K-1).
    """
    path, opts = parse_custom_name(name)
    dname = domain_name or name
    if not path.exists():
        raise DataError(f"custom domain {name!r}: {path} does not exist")
    if path.is_dir():
        if opts:
            raise DataError(f"{name!r}: '#{','.join(opts)}=' applies to tables, not to image or audio folders")
        from .audio import folder_kind, load_audio_folder
        if folder_kind(path) == "audio":
            return load_audio_folder(path, dname)
        return _load_image_folder(path, dname)
    ext = path.suffix.lower()
    if ext not in TABLE_EXTS:
        raise DataError(f"{path.name}: unknown format {ext!r}; use an image folder root/<class>/<image> "
                        f"or a table ({', '.join(sorted(TABLE_EXTS))})")
    if ext in (".csv", ".tsv", ".jsonl"):
        _refuse_binary(path)
    from .interactions import is_interaction_table, load_interaction_table
    if is_interaction_table(path):
        return load_interaction_table(path, opts, dname)
    if "domain" in opts or "scale" in opts:
        raise DataError(f"{name!r}: '#domain=' and '#scale=' apply to an interactions file (a CSV with user and "
                        "item columns)")
    if ext == ".jsonl" or ("x" not in opts and ext in (".csv", ".tsv") and _text_column(path, opts) is not None):
        return _load_text_table(path, opts, dname)
    if "text" in opts:
        raise DataError(f"{name!r}: '#text=' names the text column of a .csv, .tsv or .jsonl file")
    if "x" in opts and ext in (".csv", ".tsv"):
        raise DataError(f"{name!r}: '#x=' names an array of a .npz/.mat file; in a CSV every column but the "
                        "label is a feature")
    reader = {".csv": _read_csv, ".tsv": _read_csv, ".npz": _read_npz, ".mat": _read_mat}[ext]
    x, labels, notes = reader(path, opts)
    base = int(opts["base"]) if "base" in opts else None
    return _table_domain(x, labels, path, dname, notes, base, opts.get("shape"))


def image_shape(text: str, name: str = "") -> Tuple[int, int, int]:
    """``"16x16"`` -> ``(1, 16, 16)``; ``"3x32x32"`` -> ``(3, 32, 32)``.

    Raises
    ------
    DataError
        Not two or three positive whole numbers joined by ``x``, or a channel count other than 1 or 3.
    """
    try:
        dims = tuple(int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or min(dims) < 1 or dims[0] not in (1, 3):
        raise DataError(f"{name!r}: shape={text} is not understood; give HxW (gray) or CxHxW with C 1 or 3, "
                        "e.g. #shape=16x16")
    return dims


def _looks_like_pixels(x: np.ndarray) -> Optional[str]:
    """``"16x16"`` when a 2-D table's columns could be a flattened square gray (or RGB) image with
    pixel-like values (all in [0, 1], or whole numbers in [0, 255]); else ``None``."""
    d = x.shape[1]
    for c in (1, 3):
        side = int(round((d / c) ** 0.5))
        if side >= 8 and c * side * side == d:
            lo, hi = float(x.min()), float(x.max())
            if lo >= 0 and (hi <= 1 or (hi <= 255 and bool(np.all(x == np.round(x))))):
                return f"{side}x{side}" if c == 1 else f"3x{side}x{side}"
    return None


def _as_images(x: np.ndarray, shape: Tuple[int, int, int], path: Path, notes: Dict[str, object]) -> np.ndarray:
    """Rows ``(N, C*H*W)`` as images ``(N, C, H, W)`` in [0, 1] (see the module docstring)."""
    if x.shape[1] != int(np.prod(shape)):
        raise DataError(f"{path.name}: shape={'x'.join(map(str, shape))} needs {int(np.prod(shape))} feature "
                        f"columns, the table has {x.shape[1]}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise DataError(f"{path.name}: pixel values run from {lo:g} to {hi:g}; as images (#shape=) they must lie "
                        "in [0, 1] or [0, 255]")
    scale = 255.0 if hi > 1 else 1.0
    notes["image_shape"] = list(shape)
    notes["pixels"] = "divided by 255 (values up to 255)" if scale > 1 else "kept (values in [0, 1])"
    return (x / scale).astype(np.float32).reshape(len(x), *shape)


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


def _scan_folder(root: Path, exts=IMAGE_EXTS, item: str = "image") -> Tuple[List[str], List[Tuple[Path, int]],
                                                                         List[str], int]:
    """Class names, (file, class index) pairs of files with one of ``exts``, empty class folders and
    the count of skipped files of a ``root/<class>/<item>`` folder (images, or audio clips)."""
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise DataError(f"{root} has no class folders; lay it out as {root.name}/<class>/<{item}>")
    classes, items, empty, skipped = [], [], [], 0
    for d in dirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
        imgs = [p for p in files if p.suffix.lower() in exts]
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

def _pick(keys: List[str], wanted: Optional[str], defaults: Tuple[str, ...], what: str, path: Path,
          required: bool = True) -> Optional[str]:
    """Find a column / key: ``wanted`` (exact, then any case) or the first default (any case).

    Returns ``None`` when nothing fits, nothing was asked for by name and ``required`` is False (an
    unlabelled table); otherwise raises naming the keys found.
    """
    lower = {str(k).lower(): k for k in keys}
    for cand in ([wanted] if wanted else list(defaults)):
        if cand in keys:
            return cand
        if cand.lower() in lower:
            return lower[cand.lower()]
    if not wanted and not required:
        return None
    hint = f" ({wanted!r} not found)" if wanted else f"; name it one of {', '.join(defaults)}"
    opt = "label" if what == "label" else "x"
    fix = f" or give it as {path.name}#{opt}=NAME"
    pairs = _domain_pairs(keys)
    if pairs and not wanted:
        fix += (f"; this file seems to hold {len(pairs)} domains: read one at a time, e.g. "
                + " and ".join(f"{path.name}#x={xk}" + (f",label={yk}" if yk else "") for xk, yk in pairs[:2]))
    raise DataError(f"{path.name}: no {what} column/key{hint}{fix}; found: {', '.join(map(str, keys))}")


def _domain_pairs(keys: List[str]) -> List[Tuple[str, Optional[str]]]:
    """``(feature key, label key)`` pairs of a file holding several domains (``Xs``/``Ys``, ``Xt``/``Yt``)."""
    out = []
    for k in keys:
        k = str(k)
        if len(k) >= 2 and k[0] in "Xx" and k[1:].lower() not in ("", "_") and k.lower() not in {
                x.lower() for x in X_KEYS}:
            suffix = k[1:]
            yk = next((str(c) for c in keys if str(c).lower() in ("y" + suffix.lower(), "label" + suffix.lower(),
                                                                   "labels" + suffix.lower())), None)
            out.append((k, yk))
    return out


def _read_csv(path: Path, opts: Dict[str, str]):
    import pandas as pd

    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        header = list(pd.read_csv(path, sep=sep, nrows=0).columns)
        col = _pick(header, opts.get("label"), LABEL_COLUMNS, "label", path, required=False)
        try:  # features parsed straight to float32: no float64 copy of a large table
            df = pd.read_csv(path, sep=sep, dtype={c: np.float32 for c in header if c != col})
        except ValueError:  # a non-numeric feature column: read as is, to name it below
            df = pd.read_csv(path, sep=sep)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name} is empty; give a table with a header row and one example per line") from None
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not text in UTF-8 or Latin-1; save the table as UTF-8 CSV") from None
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"cannot read {path.name} as a table: {e}") from None
    if len(df) == 0:
        raise DataError(f"{path.name} has a header but no rows; add examples, one per line")
    feats = df.drop(columns=[col]) if col is not None else df
    if feats.shape[1] == 0:
        raise DataError(f"{path.name}: no feature columns (only the label column {col!r}); a table needs at "
                        "least one numeric feature column beside its labels")
    bad = [str(c) for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    if bad:
        where = f"label column: {col!r}" if col is not None else (
            f"no label column found among {', '.join(LABEL_COLUMNS)}; name it as {path.name}#label=COLUMN")
        raise DataError(f"{path.name}: feature column(s) {', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''} "
                        f"are not numeric; encode them as numbers or drop them ({where})")
    notes = {"label_column": str(col)} if col is not None else {}
    return feats.to_numpy(dtype=np.float32), (df[col].to_numpy() if col is not None else None), notes


def _keys_xy(keys: List[str], opts: Dict[str, str], path: Path) -> Tuple[str, Optional[str]]:
    xk = _pick(keys, opts.get("x"), X_KEYS, "feature", path)
    yk = _pick([k for k in keys if k != xk], opts.get("label"), Y_KEYS, "label", path, required=False)
    if yk is None and "x" in opts:  # Xs -> Ys
        yk = next((p[1] for p in _domain_pairs(keys) if p[0] == xk and p[1]), None)
    return xk, yk


def _read_npz(path: Path, opts: Dict[str, str]):
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            xk, yk = _keys_xy(keys, opts, path)
            return z[xk], (z[yk] if yk else None), {"keys": [xk, yk]}
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path.name}: cannot read without pickle ({e}); save numeric or string arrays") from None
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path.name} as .npz: {e}") from None


def _read_mat(path: Path, opts: Dict[str, str]):
    import h5py
    from scipy.io import loadmat

    if h5py.is_hdf5(str(path)):
        return _read_mat73(path, opts)
    try:
        m = loadmat(str(path))
    except NotImplementedError:  # v7.3 that h5py did not recognise
        return _read_mat73(path, opts)
    except (ValueError, OSError, TypeError, EOFError) as e:
        raise DataError(f"cannot read {path.name} as a MATLAB file: {e}") from None
    keys = [k for k in m if not k.startswith("__")]
    xk, yk = _keys_xy(keys, opts, path)
    y = m[yk] if yk else None
    if y is not None and y.dtype == object:  # cell array of strings
        y = np.array([str(np.asarray(e).ravel()[0]) if np.asarray(e).size else "" for e in y.ravel()])
    return m[xk], y, {"keys": [xk, yk], "format": "MATLAB v5"}


def _read_mat73(path: Path, opts: Dict[str, str]):
    """MATLAB v7.3 (HDF5): arrays are stored transposed; char data is uint16 code points."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = [k for k in f.keys() if not k.startswith("#")]
            xk, yk = _keys_xy(keys, opts, path)
            x = np.asarray(f[xk][()]).T
            yd = f[yk] if yk else None
            if yd is None:
                y = None
            elif yd.dtype == h5py.ref_dtype:  # cell array: one reference per element
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


def encode_labels(raw: np.ndarray, base: Optional[int] = None) -> Tuple[np.ndarray, List[str], str, bool]:
    """Turn raw labels (strings or integers) into class indices, integers aligned by value.

    Parameters
    ----------
    raw : np.ndarray
        ``(N,)`` strings, integers or integral floats (no missing values).
    base : {0, 1}, optional
        Where integer labels start, as stated by the user; ``None`` guesses it (``0..K-1`` is
        0-based, ``1..K`` is 1-based, anything else keeps its values).

    Returns
    -------
    y : np.ndarray
        int64 ``(N,)`` in ``0..K-1``.
    class_names : list of str
        Strings: sorted unique values. Integers: the values minus the base, so 1-based ``1..K``
        labels are named ``"0".."K-1"`` and pair by meaning with a 0-based domain.
    convention : str
        The convention assumed, for ``Domain.notes["labels"]``.
    guessed : bool
        True when the base is a guess that changed the values (1-based, or remapped integers).

    Raises
    ------
    DataError
        Non-integer numeric labels; labels below a stated base.
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
    stated = base is not None
    if base is None:
        base = 1 if (u[0] == 1 and u[-1] == len(u)) else 0
    if u[0] < base:
        raise DataError(f"labels start at {u[0]}, below the stated base {base}; state base=0 or fix the labels")
    w, uw = v - base, u - base
    names = [str(i) for i in uw]
    how = "stated" if stated else "assumed"
    if uw[0] == 0 and uw[-1] == len(uw) - 1:
        if base == 0:
            return w, names, f"0-based integers 0..{len(u) - 1} ({how})", False
        return (w, names, f"1-based integers 1..{len(u)} ({how}); shifted to classes 0..{len(u) - 1}",
                not stated)
    return (np.searchsorted(uw, w).astype(np.int64), names,
            f"integers {u[0]}..{u[-1]} with gaps (base {base}, {how}); classes named by value "
            f"{names[0]}..{names[-1]}", not stated)


def _first(idx: np.ndarray) -> str:
    return ", ".join(str(int(i)) for i in idx[:5]) + (" ..." if len(idx) > 5 else "")


def _table_domain(x, labels, path: Path, name: str, notes: Dict[str, object], base: Optional[int] = None,
                  shape: Optional[str] = None) -> Domain:
    try:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError
        big = x.dtype.kind == "f" and np.isfinite(x).all() and x.size and np.abs(x).max() > np.finfo(np.float32).max
        x = x.astype(np.float32, copy=False)  # float32 throughout: no float64 copy of a large table
    except (ValueError, TypeError):
        raise DataError(f"{path.name}: the features are not numeric") from None
    if big:
        raise DataError(f"{path.name}: feature values exceed float32's range (3.4e38); rescale them")
    unlabelled = labels is None
    labels = np.full(len(x), -1, np.int64) if unlabelled else np.asarray(labels).ravel()
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 2 and x.shape[0] != len(labels) and x.shape[1] == len(labels) and not unlabelled:
        x, notes["transposed"] = x.T, True
    if x.ndim > 2:
        notes["flattened_from"] = list(x.shape[1:])
        x = x.reshape(len(x), -1)
    if len(x) != len(labels):
        raise DataError(f"{path.name}: {len(x)} feature rows but {len(labels)} labels")
    if len(x) < 2:
        raise DataError(f"{path.name}: {len(x)} row(s); a domain needs at least 2")
    if x.shape[1] == 0:
        raise DataError(f"{path.name}: no feature columns; a table needs at least one numeric feature")
    if not unlabelled:
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
    y, names = _label_domain(None if unlabelled else labels, len(x), path, notes, base,
                             LABEL_COLUMNS if path.suffix.lower() in (".csv", ".tsv") else Y_KEYS)
    if shape is not None:
        return _split_domain(name, "image", _as_images(x, image_shape(shape, path.name), path, notes), y, names,
                             str(path), notes)
    guess = _looks_like_pixels(x)
    if guess:
        warnings.warn(f"{path.name}: its {x.shape[1]} columns hold pixel-like values and could be {guess} images; "
                      f"if they are, read it as {path.name}#shape={guess} to train a convolutional encoder on it "
                      "(a table trains a multi-layer perceptron, which ignores which pixels are neighbours)",
                      UserWarning, stacklevel=3)
    return _split_domain(name, "features", x, y, names, str(path), notes)


def _label_domain(labels: Optional[np.ndarray], n: int, path: Path, notes: Dict[str, object], base: Optional[int],
                  looked_for: Sequence[str]) -> Tuple[np.ndarray, List[str]]:
    """Class indices and names of a table's labels (``None``: an unlabelled domain, labels ``-1``),
    with the convention recorded in ``notes`` and warned when it is a guess (tables and texts)."""
    if labels is None:
        notes["labels"] = (f"none: no label column or key was found (looked for {', '.join(looked_for)}); "
                           "an unlabelled domain, usable as the target of unsupervised adaptation")
        notes["label_base"] = None
        warnings.warn(f"{path.name}: no label column found, so it is taken as unlabelled (accuracy on it is shown "
                      f"as 'no labels'); if it has labels, name them as {path.name}#label=COLUMN",
                      UserWarning, stacklevel=4)
        return np.full(n, -1, np.int64), []
    if base is not None and labels.dtype.kind in "USO":
        raise DataError(f"{path.name}: base={base} applies to integer labels; these are strings")
    y, names, convention, guessed = encode_labels(labels, base)
    if len(names) < 2:
        raise DataError(f"{path.name}: all {len(y)} rows have the same label {names[0]!r}; a domain needs 2+ classes")
    notes["labels"] = convention
    notes["label_base"] = None if labels.dtype.kind in "USO" else (
        base if base is not None else (1 if "1-based" in convention else 0))
    if guessed:
        warnings.warn(f"{path.name}: labels taken as {convention}; state the base as {path.name}#base=0 or "
                      "#base=1 if that is wrong", UserWarning, stacklevel=4)
    return y, names


def _split_domain(name, modality, x, y, class_names, source, notes) -> Domain:
    try:
        if not class_names:
            raise ValueError("unlabelled")
        tr, te = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
        how = "class-stratified"
    except ValueError:  # too few examples per class for a stratified split, or no labels
        from sklearn.model_selection import train_test_split
        tr, te = map(np.sort, train_test_split(np.arange(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED))
        how = "random (no labels)" if not class_names else "random (too few examples per class to stratify)"
    notes["split"] = f"{how} 80/20, seed {SPLIT_SEED}"
    return Domain(name, modality, x[tr], y[tr], x[te], y[te], list(class_names), source=source,
                  content_fraction=1.0, notes=notes)


# ----------------------------------------------------------------------------- text tables

def _refuse_binary(path: Path) -> None:
    """Raise :class:`DataError` for a .csv/.tsv/.jsonl whose first 64 KiB hold a NUL byte (an image, an archive)."""
    with open(path, "rb") as f:
        head = f.read(65536)
    if b"\x00" in head:
        raise DataError(f"{path.name} is not a text file (it holds binary bytes, as an image or an archive does); "
                        "give a .csv/.tsv table or a .jsonl file of texts")


def _decode(path: Path) -> Tuple[str, str]:
    """A file's text and the encoding read: UTF-8 (a BOM is dropped), else Latin-1."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "Latin-1 (the file is not valid UTF-8)"


def _text_frame(path: Path):
    import io

    import pandas as pd
    text, enc = _decode(path)
    try:
        if path.suffix.lower() == ".jsonl":
            df = pd.read_json(io.StringIO(text), lines=True, dtype=False)
        else:
            df = pd.read_csv(io.StringIO(text), sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                             keep_default_na=False)
    except ValueError as e:
        raise DataError(f"cannot read {path.name} as a table of texts: {str(e).splitlines()[0]}") from None
    return df, enc


def _text_column(path: Path, opts: Dict[str, str]) -> Optional[str]:
    """The text column of a CSV/TSV (``#text=`` or a non-numeric column named like one), else ``None``."""
    import pandas as pd
    if "text" in opts:
        return opts["text"]
    try:
        head = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", nrows=50, encoding="latin-1")
    except (ValueError, OSError, pd.errors.ParserError):
        return None
    col = _pick([str(c) for c in head.columns], None, TEXT_COLUMNS, "text", path, required=False)
    return col if col is not None and not pd.api.types.is_numeric_dtype(head[col]) else None


def _load_text_table(path: Path, opts: Dict[str, str], name: str) -> Domain:
    """A text domain from a CSV, TSV or JSON-lines file: a text column and (optionally) a label column."""
    df, enc = _text_frame(path)
    cols = [str(c) for c in df.columns]
    df.columns = cols
    tcol = _pick(cols, opts.get("text"), TEXT_COLUMNS, "text", path)
    lcol = _pick([c for c in cols if c != tcol], opts.get("label"), LABEL_COLUMNS, "label", path, required=False)
    if len(df) < 2:
        raise DataError(f"{path.name}: {len(df)} text(s); a domain needs at least 2")
    texts = df[tcol].astype(str).str.strip()
    empty = np.flatnonzero((texts == "").to_numpy())
    if len(empty):
        raise DataError(f"{path.name}: {len(empty)} row(s) have an empty text (rows {_first(empty)}, 0-based); "
                        "drop them or fill them in")
    x = np.array(texts.tolist(), dtype=object)
    notes: Dict[str, object] = {"text_column": tcol, "encoding": enc,
                                "other_columns_ignored": [c for c in cols if c not in (tcol, lcol)]}
    if lcol is None:
        y, names = _label_domain(None, len(x), path, notes, None, LABEL_COLUMNS)
        return _split_domain(name, "text", x, y, names, str(path), notes)
    raw = df[lcol]
    if raw.astype(str).str.strip().eq("").any():
        bad = np.flatnonzero(raw.astype(str).str.strip().eq("").to_numpy())
        raise DataError(f"{path.name}: {len(bad)} row(s) have no label (rows {_first(bad)}, 0-based); drop them or "
                        "fill in their labels")
    vals = raw.to_numpy()
    if vals.dtype == object:  # numbers read as strings (CSV with dtype=str): integers if they all are
        try:
            as_num = np.array([float(v) for v in vals])
            vals = as_num if np.all(as_num == np.round(as_num)) else vals
        except (TypeError, ValueError):
            vals = np.array([str(v).strip() for v in vals])
    notes["label_column"] = lcol
    y, names = _label_domain(vals, len(x), path, notes, int(opts["base"]) if "base" in opts else None, LABEL_COLUMNS)
    return _split_domain(name, "text", x, y, names, str(path), notes)


# ----------------------------------------------------------------------------- registration

def register_custom(name: str, path, label: Optional[str] = None, validate: bool = True,
                    domain: Optional[str] = None) -> DomainSpec:
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
    domain : str, optional
        An interactions file: only the rows of this value of its ``domain`` column.

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
    opts = [f"{k}={v}" for k, v in (("label", label), ("domain", domain)) if v]
    ref = f"{p}#{','.join(opts)}" if opts else str(p)

    def loader(data_dir: Path = None) -> Domain:
        return load_custom(ref, domain_name=name)

    from .interactions import is_interaction_table
    inter = not p.is_dir() and p.suffix.lower() in (".csv", ".tsv") and is_interaction_table(p)
    text = not p.is_dir() and not inter and (p.suffix.lower() == ".jsonl" or (
        p.suffix.lower() in (".csv", ".tsv") and _text_column(p, {}) is not None))
    from .audio import folder_kind
    folder = folder_kind(p) if p.is_dir() else None
    kind, modality = ((f"{folder} folder", folder) if folder else ("interactions file", "interactions") if inter
                      else ("text table", "text") if text else ("feature table", "features"))
    spec = DomainSpec(name, modality, f"custom {kind} {p.name}", loader, files=lambda data_dir: [p])
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
