"""Pairing a source with a target domain: explicit, recorded harmonisation."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .domain import DataError, Domain
from .shifts import resize_images


#: Input scaling of feature tables (:func:`scale_features`); images keep pixels in [0, 1].
SCALINGS = ("auto", "standard", "domain-standard", "l2", "l1", "none")


def harmonise(domains: Sequence[Domain], roles: Optional[Sequence[str]] = None, scaling: str = "none",
              text_features: str = "tfidf") -> Tuple[List[Domain], Dict[str, object]]:
    """Make domains comparable: one image size and framing, one channel count, shared classes.

    ``roles`` says what each domain is (``source``, ``target``, ``eval``); by default the first
    domain is the source, the second the target, any others extra evaluation domains. Images get the largest height/width among the domains; each domain's object is
    rescaled so it spans the same fraction of the frame (the smallest ``content_fraction``), so
    a USPS digit filling 16x16 becomes a 20x20 digit centred in 28x28 beside MNIST. Gray images
    are repeated to RGB when any domain is RGB. Only the classes shared (by name) by all labelled
    domains are kept; integer labels were aligned by value when loaded (1-based ``1..K`` is named
    ``"0".."K-1"``), the record keeps each domain's convention (``labels``) and its ``notes`` say
    when bases differ, when classes look shifted by one, and which classes were dropped (no warning
    is raised, so callers in any thread can show them). An unlabelled target (labels ``-1``) keeps
    its labels and takes the shared class names.

    Parameters
    ----------
    domains : sequence of Domain
        ``[source, target, *extra]``, or any order with ``roles``.
    roles : sequence of str, optional
        One per domain; at least one ``source`` and exactly one ``target``.
    scaling : str
        Input scaling of feature tables, one of :data:`SCALINGS` (see :func:`scale_features`;
        ``auto`` is ``standard`` for tables). Image domains accept only ``auto`` and ``none``.
    text_features : str
        How text domains become inputs: ``tfidf`` (:func:`lepton.data.text.featurise_text`) or
        ``tokens`` (:func:`lepton.data.text.tokenise_text`, for the ``embedding-bag`` encoder).
        Text domains are first featurised (:func:`lepton.data.text.featurise_text`: TF-IDF of
        unigrams and bigrams, 5,000 terms, fitted on the source and target training texts without
        labels, Ganin et al. JMLR 2016) into ``features`` domains ``(N, V)`` float32; for them
        ``auto`` means ``none`` (TF-IDF rows are already L2-normalised), other scalings apply
        to the TF-IDF features.

    Returns
    -------
    harmonised : list of Domain
        Same order; labels re-indexed to the shared class list (in the source's order).
    record : dict
        What was done: ``roles``, ``image_size``, ``channels``, ``content_fraction``, ``resized``,
        ``classes``, ``dropped_classes``, ``notes`` (sentences for people), ``scaling`` and
        ``scaling_note``; for text also ``featuriser`` (method, n-grams, size, what it was fitted
        on, vocabulary size) and ``featuriser_note``; stored with the run.

    Audio domains (:mod:`lepton.data.audio`) all share one log-mel shape; they pass through
    unchanged and the record gets their ``featuriser`` and ``featuriser_note``.

    Raises
    ------
    DataError
        Different modalities (an audio domain beside an image or text domain) or feature sizes, no
        shared class, fewer than 2 shared classes, an empty source or target training split, an
        unlabelled or single-class source, an unknown scaling or one that does not apply to images
        or audio.
    """
    domains = list(domains)
    roles = list(roles) if roles is not None else (["source", "target"] + ["eval"] * (len(domains) - 2))[:len(domains)]
    if len(roles) != len(domains) or roles.count("target") != 1 or "source" not in roles:
        raise DataError(f"roles {roles} do not fit {len(domains)} domains: give at least one source and one target")
    srcs = [d for d, r in zip(domains, roles) if r == "source"]
    src, tgt = srcs[0], domains[roles.index("target")]
    mods = {d.modality for d in domains}
    if len(mods) > 1:
        raise DataError("cannot pair domains of different modalities: "
                        + ", ".join(f"{d.name} ({d.modality})" for d in domains)
                        + "; pick a source and target of one kind")
    for d, role in [*((s, "source") for s in srcs), (tgt, "target")]:
        if len(d.y_train) == 0:
            raise DataError(f"the {role} domain {d.name!r} has no training examples; pick another domain")
    for s in srcs:
        if not s.labelled:
            raise DataError(f"the source domain {s.name!r} has no labels (no label column was found); a source "
                            "needs labels to learn from: name its label column as PATH#label=COLUMN, or use it as "
                            "the target")
    if len(np.unique(src.y_train)) < 2:
        raise DataError(f"the source domain {src.name!r} has a single class in its training split; "
                        "a classifier needs at least 2 classes")
    record: Dict[str, object] = {"roles": roles, "notes": []}
    _label_bases(domains, record)
    if not tgt.labelled:
        record["notes"].append(f"the target {tgt.name!r} has no labels: training and the label-free checkpoint "
                               "choice work as usual, and its accuracy is shown as 'no labels' (never as 0)")
    first = domains.index(src)
    order = [first] + [i for i in range(len(domains)) if i != first]  # classes in the first source's order
    shared, record["classes"], record["dropped_classes"] = _shared_classes([domains[i] for i in order], tgt.name)
    shifted = next((m for d in domains if d is not src and d.labelled for m in [_looks_shifted(src, d)] if m), "")
    domains = [shared[order.index(i)] for i in range(len(domains))]
    if record["dropped_classes"]:
        if shifted:
            record["notes"].append(shifted)
        record["notes"].append("classes not shared by all domains were dropped: " + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in record["dropped_classes"].items()))
    if scaling not in SCALINGS:
        raise DataError(f"unknown scaling {scaling!r}; use one of {', '.join(SCALINGS)}")
    if src.modality == "image":
        if scaling not in ("auto", "none"):
            raise DataError(f"scaling {scaling!r} applies to feature tables; image pixels stay in [0, 1] "
                            "(use --scaling auto or none)")
        domains = _harmonise_images(domains, record)
    elif src.modality == "audio":
        if scaling not in ("auto", "none"):
            raise DataError(f"scaling {scaling!r} applies to feature tables; audio log-mel spectrograms are scaled "
                            "per clip to [0, 1] (use --scaling auto or none)")
        from .audio import harmonise_audio
        domains = harmonise_audio(domains, record)
    elif src.modality == "text" and text_features == "tokens":  # for a trainable encoder: no scaling applies
        from .text import tokenise_text
        domains = tokenise_text(domains, roles, record)
        record["scaling"] = {"method": "none", "fitted_on": "nothing: token ids"}
        record["scaling_note"] = record["featuriser_note"]
    elif src.modality == "text":
        from .text import featurise_text
        domains = featurise_text(domains, roles, record)
        domains = scale_features(domains, roles, "none" if scaling == "auto" else scaling, record)
        if scaling in ("auto", "none"):
            record["scaling"] = {"method": "none", "fitted_on": "nothing: TF-IDF rows as computed (L2-normalised)"}
        then = ("TF-IDF rows are already L2-normalised, so they are used as computed (no further scaling)"
                if scaling in ("auto", "none") else record["scaling_note"])
        record["scaling_note"] = f"{record['featuriser_note']}; {then}"
    else:
        dims = {d.input_shape for d in domains}
        if len(dims) > 1:
            raise DataError("feature sizes differ: " + ", ".join(f"{d.name} {d.input_shape}" for d in domains)
                            + "; use tables with the same columns")
        domains = scale_features(domains, roles, "standard" if scaling == "auto" else scaling, record)
    return domains, record


def scale_features(domains: List[Domain], roles: Sequence[str], scaling: str, record: Dict[str, object]
                   ) -> List[Domain]:
    """Scale feature tables, fitted without labels on the training rows of the paired domains.

    * ``standard``: every column to zero mean and unit variance, with the mean and standard
      deviation of the source and target *training* rows pooled (labels never read); extra
      evaluation domains get the same transform without entering the fit. A constant column
      keeps its scale (divided by 1).
    * ``domain-standard``: each domain standardised by its own training rows (a strong baseline
      under shift: it removes each domain's first and second moments).
    * ``l2`` / ``l1``: each row divided by its Euclidean / absolute-sum norm.
    * ``none``: as read.

    Parameters
    ----------
    domains : list of Domain
        Feature domains ``(N, D)`` float32, in the order of ``roles``.
    roles : sequence of str
    scaling : str
        One of the above.
    record : dict
        The harmonisation record; ``scaling`` is set to ``{"method", "fitted_on", "rows"}`` (and
        ``mean``/``std`` summaries for the standardisations) and a sentence is added to
        ``scaling_note``.

    Returns
    -------
    list of Domain
        New domains (arrays copied), float32.
    """
    if scaling == "none":
        record["scaling"] = {"method": "none", "fitted_on": "nothing: features as read"}
        record["scaling_note"] = "feature tables are used as read (no scaling)"
        return domains
    fit_rows = [d.x_train for d, r in zip(domains, roles) if r in ("source", "target")]
    out: List[Domain] = []
    if scaling == "standard":
        pooled = np.concatenate(fit_rows)
        mean = pooled.mean(0, dtype=np.float64)
        std = pooled.std(0, dtype=np.float64)
        std[std == 0] = 1.0
        for d in domains:
            out.append(d.with_arrays(x_train=((d.x_train - mean) / std).astype(np.float32),
                                     x_test=((d.x_test - mean) / std).astype(np.float32)))
        record["scaling"] = {"method": "standard", "fitted_on": "source and target training rows, no labels",
                             "rows": int(len(pooled)), "constant_columns": int((pooled.std(0) == 0).sum())}
        record["scaling_note"] = (f"feature tables standardised: each column to zero mean and unit variance, fitted "
                                  f"on the {len(pooled):,} source and target training rows without labels "
                                  "(--scaling none turns it off)")
    elif scaling == "domain-standard":
        for d in domains:
            m, sd = d.x_train.mean(0, dtype=np.float64), d.x_train.std(0, dtype=np.float64)
            sd[sd == 0] = 1.0
            out.append(d.with_arrays(x_train=((d.x_train - m) / sd).astype(np.float32),
                                     x_test=((d.x_test - m) / sd).astype(np.float32)))
        record["scaling"] = {"method": "domain-standard", "fitted_on": "each domain's own training rows, no labels"}
        record["scaling_note"] = ("feature tables standardised per domain: each domain's columns to zero mean and "
                                  "unit variance on its own training rows, without labels")
    else:
        order = 2 if scaling == "l2" else 1

        def norm(x: np.ndarray) -> np.ndarray:
            n = np.linalg.norm(x, ord=order, axis=1, keepdims=True)
            return (x / np.where(n == 0, 1.0, n)).astype(np.float32)
        out = [d.with_arrays(x_train=norm(d.x_train), x_test=norm(d.x_test)) for d in domains]
        record["scaling"] = {"method": scaling, "fitted_on": "nothing: each row by its own norm"}
        record["scaling_note"] = f"feature rows divided by their {'Euclidean' if order == 2 else 'L1'} norm"
    return out


def _label_bases(domains: List[Domain], record: Dict[str, object]) -> None:
    """Record each domain's label convention; say in one line when integer bases differ (a guess)."""
    record["labels"] = {d.name: d.notes["labels"] for d in domains if "labels" in d.notes}
    bases = {d.name: d.notes.get("label_base") for d in domains if d.notes.get("label_base") is not None}
    if len(set(bases.values())) > 1:
        record["notes"].append("integer labels start at different values: " + "; ".join(
            f"{n} {'1-based' if b else '0-based'}" for n, b in bases.items())
            + "; classes were matched by value after the base was applied (1-based 1..K as 0..K-1); if that is "
            "wrong, state it as PATH#base=0 or PATH#base=1")


def _looks_shifted(a: Domain, b: Domain) -> str:
    """One line when two domains' integer class names look offset by one (``"0"`` only in one, the
    largest only in the other), else ``""``."""
    try:
        na, nb = {int(c) for c in a.class_names}, {int(c) for c in b.class_names}
    except ValueError:
        return ""
    if not na or not nb or na == nb:
        return ""
    for lo, hi in ((a, b), (b, a)):
        nlo, nhi = ({int(c) for c in lo.class_names}, {int(c) for c in hi.class_names})
        if min(nlo) not in nhi and max(nhi) not in nlo and min(nhi) == min(nlo) + 1 and max(nhi) == max(nlo) + 1:
            return (f"the classes look shifted by one: {lo.name!r} has {min(nlo)}..{max(nlo)}, {hi.name!r} has "
                    f"{min(nhi)}..{max(nhi)}; if both mean the same classes, state where the labels start "
                    "(PATH#base=0 or PATH#base=1)")
    return ""


def _shared_classes(domains: List[Domain], target: str):
    labelled = [d for d in domains if d.labelled]
    shared = [c for c in domains[0].class_names if all(c in d.class_names for d in labelled[1:])]
    other = next((d for d in domains[1:] if d.name == target), domains[1])
    if not other.labelled:
        other = next((d for d in labelled[1:]), other)
    if not shared:
        raise DataError(f"no classes are shared by {domains[0].name!r} ({', '.join(domains[0].class_names[:10])}) "
                        f"and {other.name!r} ({', '.join(other.class_names[:10])}); "
                        "pick domains with the same class names")
    if len(shared) < 2:
        raise DataError(f"only one class ({shared[0]!r}) is shared by {domains[0].name!r} and {other.name!r}; "
                        "a classifier needs at least 2")
    dropped = {d.name: [c for c in d.class_names if c not in shared] for d in labelled}
    dropped = {k: v for k, v in dropped.items() if v}
    out = []
    for d in domains:
        if not d.labelled:
            out.append(d.with_arrays(class_names=list(shared)))  # labels stay -1
            continue
        if d.class_names == shared:
            out.append(d)
            continue
        remap = np.array([shared.index(c) if c in shared else -1 for c in d.class_names])
        arrays = {}
        for split in ("train", "test"):
            x, y = d.split(split)
            new = remap[y] if len(y) else y
            keep = new >= 0
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x[keep], new[keep].astype(np.int64)
            arrays[f"meta_{split}"] = {k: v[keep] for k, v in d.meta(split).items()}  # per-row columns stay aligned
        out.append(d.with_arrays(class_names=list(shared), **arrays))
    return out, shared, dropped


def _harmonise_images(domains: List[Domain], record: Dict[str, object]) -> List[Domain]:
    size = max(max(d.input_shape[1], d.input_shape[2]) for d in domains)
    frac = min(d.content_fraction for d in domains)
    channels = max(d.input_shape[0] for d in domains)
    record.update(image_size=[size, size], channels=channels, content_fraction=round(frac, 4), resized={})
    out = []
    for d in domains:
        inner = int(round(size * frac / d.content_fraction))
        arrays = {}
        for split in ("train", "test"):
            x, _ = d.split(split)
            x = _frame(x, inner, size)
            if x.shape[1] == 1 and channels == 3:
                x = np.repeat(x, 3, axis=1)
            arrays[f"x_{split}"] = np.ascontiguousarray(x, dtype=np.float32)
        if d.input_shape != (channels, size, size) or inner != size:
            record["resized"][d.name] = {"from": list(d.input_shape), "to": [channels, size, size],
                                         "object_px": inner}
        out.append(d.with_arrays(content_fraction=frac, **arrays))
    return out


def _frame(x: np.ndarray, inner: int, size: int) -> np.ndarray:
    """Resize ``(N, C, H, W)`` to ``inner`` px and centre it in a ``size`` px frame (pad or crop)."""
    if len(x) == 0:
        return np.zeros((0, x.shape[1], size, size), np.float32)
    x = resize_images(x, inner)
    if inner == size:
        return x
    if inner < size:
        lo = (size - inner) // 2
        out = np.zeros((x.shape[0], x.shape[1], size, size), np.float32)
        out[:, :, lo:lo + inner, lo:lo + inner] = x
        return out
    lo = (inner - size) // 2
    return x[:, :, lo:lo + size, lo:lo + size]
