"""Evaluation numbers: accuracy per domain and class, confusion, proxy A-distance, label-free scores.

Numbers and DataFrames only; no plotting here.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from .. import losses


@torch.no_grad()
def batched(fn, x: np.ndarray, batch_size: int = 1024):
    """Apply ``fn`` (tensor -> tensor, or -> tuple of tensors) to ``x`` in batches and stack the
    float32 numpy results.

    Parameters
    ----------
    fn : callable
        E.g. ``method.predict``, ``method.features`` or ``method.infer`` (a tuple).
    x : np.ndarray or torch.Tensor
        ``(N, ...)`` inputs.
    batch_size : int

    Returns
    -------
    np.ndarray or tuple of np.ndarray
        ``(N, ...)`` float32 outputs, one array per output of ``fn``. Empty input is never passed
        to ``fn`` and gives one ``(0,)`` array whatever ``fn`` returns.
    """
    if len(x) == 0:
        return np.zeros((0,), np.float32)
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        xb = xb if isinstance(xb, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(xb))
        out = fn(xb)
        outs.append(tuple(o.float().cpu().numpy() for o in out) if isinstance(out, tuple) else out.float().cpu().numpy())
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*outs))
    return np.concatenate(outs)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions in [0, 1] (scikit-learn ``accuracy_score``); NaN if empty."""
    from sklearn.metrics import accuracy_score
    return float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan")


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]):
    """Accuracy (recall) of each class.

    Returns
    -------
    pandas.DataFrame
        Columns ``class``, ``n``, ``accuracy`` (NaN for a class with no example).
    """
    import pandas as pd
    rows = []
    for k, name in enumerate(class_names):
        m = y_true == k
        rows.append({"class": name, "n": int(m.sum()),
                     "accuracy": float((y_pred[m] == k).mean()) if m.any() else float("nan")})
    return pd.DataFrame(rows)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix ``(K, K)`` int64, rows = true class, columns = predicted (scikit-learn)."""
    from sklearn.metrics import confusion_matrix
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def proxy_a_distance(fs: np.ndarray, ft: np.ndarray, seed: int = 0, max_per_domain: int = 2000) -> float:
    """Proxy A-distance ``d_A = 2 (1 - 2 err)`` (Ben-David et al., NeurIPS 2006; Ganin et al. 2016).

    A linear classifier (scikit-learn logistic regression on standardised features) is trained to
    tell source from target on half of a balanced sample and ``err`` is its error on the other
    half. 0 means the domains are indistinguishable, 2 perfectly separable. Clipped to [0, 2].

    Parameters
    ----------
    fs : np.ndarray
        ``(N_s, D)`` source features.
    ft : np.ndarray
        ``(N_t, D)`` target features.
    seed : int
        Seeds subsampling and the split.
    max_per_domain : int
        Cap on examples per domain.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        With fewer than 4 examples in a domain or different feature sizes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fs, ft = np.asarray(fs, np.float64).reshape(len(fs), -1), np.asarray(ft, np.float64).reshape(len(ft), -1)
    if fs.shape[1] != ft.shape[1]:
        raise ValueError(f"feature sizes differ: {fs.shape[1]} vs {ft.shape[1]}")
    n = min(len(fs), len(ft), max_per_domain)
    if n < 4:
        raise ValueError(f"proxy A-distance needs at least 4 examples per domain, got {n}")
    rng = np.random.default_rng(seed)
    xs, xt = fs[rng.choice(len(fs), n, replace=False)], ft[rng.choice(len(ft), n, replace=False)]
    x = np.concatenate([xs, xt])
    y = np.r_[np.ones(n), np.zeros(n)]
    xa, xb, ya, yb = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(xa, ya)
    err = 1.0 - clf.score(xb, yb)
    return float(np.clip(2.0 * (1.0 - 2.0 * err), 0.0, 2.0))


def label_free_scores(logits: np.ndarray) -> Dict[str, float]:
    """Label-free checkpoint scores of target predictions (higher is better).

    Parameters
    ----------
    logits : np.ndarray
        ``(N, K)`` target logits (no labels needed).

    Returns
    -------
    dict
        ``im``: information maximisation :func:`lepton.losses.information_maximization`;
        ``snd``: soft neighbourhood density :func:`lepton.losses.soft_neighborhood_density`;
        ``entropy``: mean prediction entropy (lower means more confident).
    """
    t = torch.from_numpy(np.asarray(logits, np.float32))
    if len(t) < 2:
        return {"im": float("nan"), "snd": float("nan"), "entropy": float("nan")}
    return {"im": float(losses.information_maximization(t)),
            "snd": float(losses.soft_neighborhood_density(t)),
            "entropy": float(losses.entropy(t).mean())}


def deep_embedded_validation(fs: np.ndarray, logits_s: np.ndarray, ys: np.ndarray, ft: np.ndarray,
                             seed: int = 0) -> float:
    """Deep embedded validation, DEV (You et al., "Towards Accurate Model Selection in Deep
    Unsupervised Domain Adaptation", ICML 2019): the target risk estimated from labelled *source*
    validation rows, importance-weighted by how target-like their features are.

    A logistic regression (scikit-learn, standardised features) tells source from target features;
    each source row gets the density ratio ``w = p(t|f) / p(s|f) * N_s / N_t``; with ``l`` its
    cross-entropy, ``DEV = mean(w l) + eta * mean(w) - eta`` where ``eta = -Cov(w l, w) / Var(w)``
    is the control variate that lowers the estimate's variance. Lower DEV is better; the returned
    score is ``-DEV`` so that, like the other label-free scores, higher is better. Target labels are
    never read.

    Parameters
    ----------
    fs : np.ndarray
        ``(N_s, D)`` features of labelled source validation rows.
    logits_s : np.ndarray
        ``(N_s, K)`` the model's logits on them.
    ys : np.ndarray
        int ``(N_s,)`` their labels.
    ft : np.ndarray
        ``(N_t, D)`` features of unlabelled target rows.
    seed : int
        Seeds the classifier.

    Returns
    -------
    float
        ``-DEV`` (nats); NaN with fewer than 4 rows in either domain or a single class of domain.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fs, ft = np.asarray(fs, np.float32).reshape(len(fs), -1), np.asarray(ft, np.float32).reshape(len(ft), -1)
    if len(fs) < 4 or len(ft) < 4 or not np.isfinite(fs).all() or not np.isfinite(ft).all():
        return float("nan")
    x = np.concatenate([fs, ft])
    d = np.r_[np.zeros(len(fs)), np.ones(len(ft))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    clf.fit(x, d)
    p = np.clip(clf.predict_proba(fs)[:, 1], 1e-6, 1 - 1e-6)
    w = p / (1 - p) * len(fs) / len(ft)
    z = np.asarray(logits_s, np.float64)
    z = z - z.max(1, keepdims=True)
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(len(z)), np.asarray(ys)]
    wl = w * ce
    var = float(np.var(w))
    eta = -float(np.cov(wl, w)[0, 1]) / var if var > 0 else 0.0
    return float(-(wl.mean() + eta * w.mean() - eta))
