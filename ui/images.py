"""Image mosaics for the app: sample grids and selected samples as one picture each (fast to send)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import streamlit as st


def to_hwc(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` float in [0, 1] -> ``(N, H, W, 3)`` uint8."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0, 1)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return (x.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)


def mosaic(x: np.ndarray, cols: int = 10, tile: int = 40, pad: int = 2) -> np.ndarray:
    """Tile images ``(N, C, H, W)`` into one ``(rows*tile, cols*tile, 3)`` uint8 picture.

    Small images are enlarged by whole-pixel repetition (crisp 8x8 digits).
    """
    imgs = to_hwc(x)
    n = len(imgs)
    if n == 0:
        return np.full((tile, tile, 3), 255, np.uint8)
    h, w = imgs.shape[1:3]
    f = max(1, tile // max(h, w))
    imgs = imgs.repeat(f, axis=1).repeat(f, axis=2)
    h, w = imgs.shape[1:3]
    cols = min(cols, n)
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 245, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def domain_grid(name: str, per_class: int = 4, max_classes: int = 10, tile: int = 40) -> Optional[np.ndarray]:
    """A mosaic of ``per_class`` training examples per class (columns = classes) of an image domain,
    or of an audio domain's log-mel spectrograms (low frequencies at the bottom)."""
    from . import state
    d = state.domain(name)
    if d.modality not in ("image", "audio"):
        return None
    k = min(d.n_classes, max_classes)
    rng = np.random.default_rng(0)
    cols = []
    for c in range(k):
        idx = np.flatnonzero(d.y_train == c)
        take = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else []
        cols.append(list(take) + [None] * (per_class - len(take)))
    order = [cols[c][r] for r in range(per_class) for c in range(k)]
    blank = np.ones((1,) + d.input_shape, np.float32)
    x = np.concatenate([d.x_train[[i]] if i is not None else blank for i in order])
    if d.modality == "audio":
        x = x[:, :, ::-1, :]  # (N, 1, mels, frames): frequency rises upwards
    return mosaic(x, cols=k, tile=tile)


def show_grid(name: str, caption: Optional[str] = None, per_class: int = 4, tile: int = 40) -> None:
    """Draw a domain's sample grid (or a few table rows for feature domains)."""
    from . import state
    try:
        img = domain_grid(name, per_class=per_class, tile=tile)
    except Exception as e:  # missing files etc.: the page explains; keep the picker usable
        st.caption(f"No preview: {e}")
        return
    if img is None:
        d = state.domain(name)
        import pandas as pd
        labels = [d.class_names[i] if 0 <= i < len(d.class_names) else "no label" for i in d.y_train[:5]]
        if d.modality == "interactions":
            items = d.notes.get("items", {})
            item = d.meta_train["item"]
            rating = d.x_train[:, 0]
            df = pd.DataFrame({"user": d.meta_train["user"][:5],
                               "item": [items.get(i, {}).get("title", i) for i in item[:5]],
                               "rating": ["–" if np.isnan(v) else f"{v:g}" for v in rating[:5]]})
            st.dataframe(df, hide_index=True, height=210)
            st.caption(f"{len(item):,} interactions of {d.notes.get('n_users', 0):,} users with "
                       f"{d.notes.get('n_items', 0):,} items.")
            return
        if d.modality == "text":
            df = pd.DataFrame({"label": labels, "text": [t[:240] + (" …" if len(t) > 240 else "") for t in d.x_train[:5]]})
            st.dataframe(df, hide_index=True, height=210, column_config={"text": st.column_config.TextColumn(width="large")})
            words = np.array([len(t.split()) for t in d.x_train])
            st.caption(f"{len(words):,} training texts; words per text: median {int(np.median(words))}, "
                       f"10–90 % {int(np.percentile(words, 10))}–{int(np.percentile(words, 90))}.")
            return
        df = pd.DataFrame(d.x_train[:5, :8], columns=[f"x{i}" for i in range(min(8, d.x_train.shape[1]))])
        df.insert(0, "label", labels)
        st.dataframe(df, hide_index=True, height=210)
        return
    st.image(img, caption=caption, width="stretch" if img.shape[1] > 300 else "content")
    d = state.domain(name)
    if d.modality == "audio":
        play_clips(d, "train", list(range(min(3, len(d.y_train)))))


def play_clips(d, split: str, rows) -> None:
    """Players for a few of an audio domain's clips (as the model heard them, shifts applied)."""
    from lepton.data import DataError
    from lepton.data.audio import clip_waveform
    for r in rows:
        try:
            wave, sr = clip_waveform(d, split, r)
        except DataError as e:
            st.caption(f"Cannot play row {r}: {e}")
            continue
        y = d.y_train[r] if split == "train" else d.y_test[r]
        st.audio(wave, sample_rate=sr)
        st.caption(f"label {d.class_names[y] if 0 <= y < len(d.class_names) else 'no label'}"
                   + (f", speaker {d.meta(split)['speaker'][r]}" if "speaker" in d.meta(split) else ""))


