"""Deterministic shift operators that make new image domains from any image domain (and audio
domains from any audio domain: see :data:`lepton.data.audio.AUDIO_SHIFTS`).

Syntax: ``BASE:OP[=VALUE]:OP[=VALUE]...``, applied left to right, e.g. ``digits:rotate=30``,
``mnist:invert``, ``usps:noise=0.3:blur=1``. Every operator is deterministic: its random draws
(noise, colours, offsets) are seeded from the domain name and split, so a name always denotes the
same images.

=============  ========  =======================================================================
operator       default   effect
=============  ========  =======================================================================
rotate=DEG     30        rotate every image by DEG degrees (counter-clockwise, bilinear)
invert         -         ``1 - x``
noise=SIGMA    0.3       add Gaussian noise of std SIGMA, clip to [0, 1]
blur=SIGMA     1.0       Gaussian blur of std SIGMA pixels
scale=S        0.75      zoom about the centre by factor S (S < 1 shrinks)
translate=PX   2         shift each image by a random whole offset in [-PX, PX] on each axis
color          -         RGB: random coloured background, digit drawn as ``|bg - x|`` (MNIST-M-like)
thickness=K    1         grey dilation (K > 0) or erosion (K < 0) with a (|K|+1)-pixel square
resize=N       -         bilinear resize to N x N pixels
=============  ========  =======================================================================

Each modality has its own operators (:func:`operators`); an audio domain takes ``noise=SNR_DB``,
``speed=F``, ``pitch=SEMITONES``, ``gain=DB`` and ``telephone`` (:mod:`lepton.data.audio`), which act
on the waveform before it is featurised. An operator of another modality (``fsdd-george:rotate=30``,
``digits:telephone``) is refused with a :class:`DataError` that names the domain's own operators.
"""
from __future__ import annotations

import zlib
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .domain import DataError, Domain

Op = Tuple[str, Optional[float]]


def _rng(name: str, split: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{name}|{split}".encode()))


def _per_image(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[i, c] = fn(x[i, c])
    return out


def _rotate(x, v, rng):
    from scipy.ndimage import rotate
    return np.clip(_per_image(x, lambda im: rotate(im, v, reshape=False, order=1, mode="constant")), 0, 1)


def _invert(x, v, rng):
    return 1.0 - x


def _noise(x, v, rng):
    return np.clip(x + rng.normal(0.0, v, size=x.shape).astype(np.float32), 0, 1)


def _blur(x, v, rng):
    from scipy.ndimage import gaussian_filter
    return _per_image(x, lambda im: gaussian_filter(im, v))


def _scale(x, v, rng):
    from scipy.ndimage import affine_transform
    h, w = x.shape[2:]
    c = np.array([(h - 1) / 2, (w - 1) / 2])
    m = np.eye(2) / v
    off = c - m @ c
    return np.clip(_per_image(x, lambda im: affine_transform(im, m, offset=off, order=1)), 0, 1)


def _translate(x, v, rng):
    t = int(round(v))
    out = np.zeros_like(x)
    offs = rng.integers(-t, t + 1, size=(x.shape[0], 2))
    for i, (dy, dx) in enumerate(offs):
        out[i] = np.roll(np.roll(x[i], dy, axis=1), dx, axis=2)
        if dy > 0: out[i, :, :dy] = 0
        if dy < 0: out[i, :, dy:] = 0
        if dx > 0: out[i, :, :, :dx] = 0
        if dx < 0: out[i, :, :, dx:] = 0
    return out


def _color(x, v, rng):
    from scipy.ndimage import zoom
    n, c, h, w = x.shape
    gray = x.mean(axis=1, keepdims=True)  # (N, 1, H, W)
    coarse = rng.uniform(0, 1, size=(n, 3, 3, 3)).astype(np.float32)  # low-frequency texture
    bg = np.stack([zoom(coarse[i], (1, h / 3, w / 3), order=1)[:, :h, :w] for i in range(n)])
    return np.abs(bg - gray).astype(np.float32)


def _thickness(x, v, rng):
    from scipy.ndimage import grey_dilation, grey_erosion
    k = int(round(v))
    size = abs(k) + 1
    fn = grey_dilation if k > 0 else grey_erosion
    return x if k == 0 else _per_image(x, lambda im: fn(im, size=(size, size)))


def _resize(x, v, rng):
    return resize_images(x, int(round(v)))


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of ``(N, C, H, W)`` float32 images to ``(N, C, size, size)`` (torch)."""
    import torch
    import torch.nn.functional as F
    if x.shape[2] == size and x.shape[3] == size:
        return x
    t = torch.from_numpy(np.ascontiguousarray(x))
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[2])
    return out.clamp(0, 1).numpy().astype(np.float32)


# name -> (function, default value or None for flag operators, valid range)
SHIFTS: Dict[str, Tuple[Callable, Optional[float], Tuple[float, float]]] = {
    "rotate": (_rotate, 30.0, (-360.0, 360.0)),
    "invert": (_invert, None, (0, 0)),
    "noise": (_noise, 0.3, (0.0, 5.0)),
    "blur": (_blur, 1.0, (0.0, 10.0)),
    "scale": (_scale, 0.75, (0.1, 4.0)),
    "translate": (_translate, 2.0, (0.0, 64.0)),
    "color": (_color, None, (0, 0)),
    "thickness": (_thickness, 1.0, (-4.0, 4.0)),
    "resize": (_resize, None, (4.0, 512.0)),
}


#: Modalities that have shift operators.
SHIFT_MODALITIES = ("image", "audio")


def operators(modality: str) -> Dict[str, Tuple[Callable, Optional[float], Tuple[float, float]]]:
    """The shift operators of a modality: name -> (function, default value or ``None``, range);
    empty for a modality without shifts (features, text)."""
    if modality == "audio":
        from .audio import AUDIO_SHIFTS
        return AUDIO_SHIFTS
    return SHIFTS if modality == "image" else {}


def _base_modality(base: str) -> str:
    """The registered modality of domain ``base``; ``image`` for a name not (yet) registered."""
    from .catalog import DOMAINS
    return DOMAINS.get(base).modality if base in DOMAINS else "image"


def _check_op(op: str, name: str, base: str, modality: str) -> None:
    """Raise :class:`DataError` unless ``op`` is a shift of ``modality``."""
    table = operators(modality)
    if op in table:
        return
    if not table:
        raise DataError(f"shift operators apply to image domains and to audio domains; {base!r} holds "
                        f"{modality} (in {name!r}); use {base!r} without ':{op}'")
    other = next((m for m in SHIFT_MODALITIES if m != modality and op in operators(m)), None)
    if other is not None:
        raise DataError(f"shift {op!r} in {name!r} applies to {other} domains; {base!r} is an {modality} domain, "
                        f"whose shifts are: {', '.join(table)}")
    raise DataError(f"unknown shift {op!r} in domain {name!r}; valid shifts: {', '.join(table)}")


def parse_name(name: str, modality: Optional[str] = None) -> Tuple[str, List[Op]]:
    """Split ``"digits:rotate=30:invert"`` into ``("digits", [("rotate", 30.0), ("invert", None)])``.

    Parameters
    ----------
    name : str
        ``BASE[:OP[=VALUE]]...``.
    modality : str, optional
        Whose operators to accept (:func:`operators`); default the registered modality of
        ``BASE`` (``image`` when it is not registered).

    Raises
    ------
    DataError
        Unknown operator, an operator of another modality, a value that is not a number or is
        out of range.
    """
    parts = name.split(":")
    base, ops = parts[0], []
    if len(parts) > 1 and modality is None:
        modality = _base_modality(base)
    table = operators(modality or "image")
    for p in parts[1:]:
        op, _, val = p.partition("=")
        _check_op(op, name, base, modality or "image")
        fn, default, (lo, hi) = table[op]
        if val == "":
            if default is None and op == "resize":
                raise DataError(f"shift 'resize' needs a size, e.g. {base}:resize=28")
            ops.append((op, default))
            continue
        if default is None and op != "resize":
            raise DataError(f"shift {op!r} takes no value (got {val!r} in {name!r})")
        try:
            v = float(val)
        except ValueError:
            raise DataError(f"shift {op!r} in {name!r}: {val!r} is not a number") from None
        if not (lo <= v <= hi):
            raise DataError(f"shift {op!r}={v:g} in {name!r} is out of range [{lo:g}, {hi:g}]")
        ops.append((op, v))
    return base, ops


def apply_shifts(domain: Domain, ops: List[Op], name: str) -> Domain:
    """Apply shift operators to both splits of an image or audio domain.

    Parameters
    ----------
    domain : Domain
        An image domain, ``x`` of shape ``(N, C, H, W)`` in [0, 1], or an audio domain (its
        clips are read again, shifted as waveforms and featurised:
        :func:`lepton.data.audio.shift_audio_domain`).
    ops : list of (str, float or None)
        From :func:`parse_name`.
    name : str
        The new domain's name (also seeds the random draws).

    Returns
    -------
    Domain
        The shifted domain; labels and class names are unchanged.

    Raises
    ------
    DataError
        If ``domain`` is neither an image nor an audio domain, or an operator is not one of its
        modality's.
    """
    for op, _ in ops:
        _check_op(op, name, domain.name, domain.modality)
    if domain.modality == "audio":
        from .audio import shift_audio_domain
        return shift_audio_domain(domain, ops, name)
    out = {}
    for split in ("train", "test"):
        x, _ = domain.split(split)
        rng = _rng(name, split)
        for op, v in ops:
            x = SHIFTS[op][0](x, v, rng).astype(np.float32)
        out[f"x_{split}"] = x
    frac = domain.content_fraction
    for op, v in ops:
        if op == "scale":
            frac = min(1.0, frac * v)
    notes = dict(domain.notes, shifts=[[op, v] for op, v in ops], base=domain.name)
    return domain.with_arrays(name=name, content_fraction=frac, notes=notes, **out)
