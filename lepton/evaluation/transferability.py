"""Transferability scores: which stored model will transfer best to a new, labelled target, before any
training. Pure numpy scores of a model's features (LogME, H-score) or source-class probabilities
(LEEP) on the target's labelled examples, and :func:`rank_encoders`, which scores every stored
encoder of the knowledge base (and an untrained one, the floor) on a target domain.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np


def _labels(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be (N,) with N = {n} rows of features, got shape {y.shape}")
    if (y < 0).any():
        raise ValueError("labels must be non-negative class indices; the target needs labels for a transferability score")
    return y.astype(np.int64)


def logme_evidence(features: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """Log marginal likelihood per example of ``y`` under Bayesian linear regression on ``features``
    with prior precision ``alpha`` and noise precision ``beta`` (LogME's evidence, its eq. 2).

    ``y ~ N(0, F F^T / alpha + I / beta)``; written through the ``D x D`` form as in the paper.
    """
    f = np.asarray(features, np.float64)
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    _, logdet = np.linalg.slogdet(a)
    ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * logdet - beta / 2 * ((y - f @ m) ** 2).sum()
          - alpha / 2 * (m @ m) - n / 2 * np.log(2 * np.pi))
    return float(ev / n)


def logme(features: np.ndarray, labels: np.ndarray, max_iter: int = 100, tol: float = 1e-3) -> float:
    """LogME (You et al., ICML 2021): the mean over classes of the maximised evidence of a linear model
    from the features to the class's one-hot column. Higher means the features transfer better.

    Parameters
    ----------
    features : np.ndarray
        float ``(N, D)`` features of the target's labelled examples.
    labels : np.ndarray
        int ``(N,)`` class indices.
    max_iter, tol
        The fixed-point iteration on ``alpha`` and ``beta`` (the paper's Algorithm 1) stops when
        ``alpha / beta`` changes by less than ``tol`` (relative).

    Returns
    -------
    float
        Evidence per example, averaged over the classes present.

    Raises
    ------
    ValueError
        Mismatched shapes, negative labels, fewer than two classes.
    """
    f = np.asarray(features, np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {f.shape}")
    y = _labels(labels, len(f))
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("a transferability score needs labelled target examples of at least two classes")
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2  # eigenvalues of F^T F (the non-zero ones)
    out = []
    for c in classes:
        t = (y == c).astype(np.float64)
        z = u.T @ t  # y in the basis of F's left singular vectors
        rest = t @ t - z @ z  # the part of y outside F's column space
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            w = beta * sigma / (alpha + beta * sigma)  # shrinkage per direction
            gamma = w.sum()
            m2 = (beta ** 2 * sigma * z ** 2 / (alpha + beta * sigma) ** 2).sum()  # |m|^2
            res = ((1 - w) ** 2 * z ** 2).sum() + rest  # |y - F m|^2
            new_alpha, new_beta = gamma / (m2 + 1e-12), (n - gamma) / (res + 1e-12)
            done = abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
            alpha, beta = new_alpha, new_beta
            if done:
                break
        out.append(logme_evidence(f, t, alpha, beta))
    return float(np.mean(out))


def leep(probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al., ICML 2020): the mean log-likelihood of the target labels under the
    "expected empirical predictor" built from a source model's class probabilities.

    ``P(y, z) = mean_i probs[i, z] [y_i = y]``, ``P(y | z) = P(y, z) / P(z)``,
    ``LEEP = mean_i log sum_z P(y_i | z) probs[i, z]``. At most 0; higher transfers better.

    Parameters
    ----------
    probs : np.ndarray
        float ``(N, Z)`` source-class probabilities (rows sum to 1) on the target's examples.
    labels : np.ndarray
        int ``(N,)`` target class indices.

    Raises
    ------
    ValueError
        Rows that are not probabilities, mismatched shapes, negative labels.
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError("probs must be (N, Z) rows of probabilities (softmax outputs of the source head)")
    y = _labels(labels, len(p))
    joint = np.zeros((y.max() + 1, p.shape[1]))
    np.add.at(joint, y, p)
    joint /= len(p)
    cond = joint / np.maximum(joint.sum(0, keepdims=True), 1e-300)  # P(y | z)
    return float(np.mean(np.log(np.maximum((p * cond[y]).sum(1), 1e-300))))


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score (Bao et al., ICIP 2019): ``tr(cov(f)^+ cov(E[f | y]))``, how much of the features'
    spread lies between the target classes. Higher transfers better; at most the number of classes - 1.

    Parameters
    ----------
    features : np.ndarray
        float ``(N, D)``.
    labels : np.ndarray
        int ``(N,)``.
    """
    f = np.asarray(features, np.float64)
    y = _labels(labels, len(f))
    f = f - f.mean(0)
    cov = f.T @ f / len(f)
    means = np.zeros((y.max() + 1, f.shape[1]))
    np.add.at(means, y, f)
    counts = np.bincount(y, minlength=len(means)).astype(np.float64)
    means[counts > 0] /= counts[counts > 0, None]
    g = means[y]  # each row replaced by its class mean
    cov_g = g.T @ g / len(f)
    return float(np.trace(np.linalg.pinv(cov, rcond=1e-10, hermitian=True) @ cov_g))


SCORES = ("logme", "leep", "h_score")


def score_model(net, x: np.ndarray, y: np.ndarray, batch: int = 256) -> Dict[str, float]:
    """All three scores of a :class:`lepton.models.TransferNet` on labelled examples ``x``, ``y``."""
    import torch
    net.eval()
    feats, probs = [], []
    with torch.no_grad():
        for a in range(0, len(x), batch):
            xb = torch.as_tensor(np.asarray(x[a:a + batch]), dtype=torch.float32)
            f = net.features(xb)
            feats.append(f.numpy().astype(np.float64))
            probs.append(torch.softmax(net.head(f), 1).numpy().astype(np.float64))
    f, p = np.concatenate(feats), np.concatenate(probs)
    return {"logme": logme(f, y), "leep": leep(p, y), "h_score": h_score(f, y)}


def rankable_runs(kb, modality: str) -> List[str]:
    """The runs :func:`rank_encoders` scores by default: completed classification runs of ``modality``
    (``"image"``, ``"audio"``, ``"features"``), newest first."""
    table = kb.list_runs()
    if table.empty:
        return []
    ok = table[(table["status"] == "completed") & (table["task"] != "ranking")]
    return [r for r in ok["run_id"] if kb.get_run(r).get("modality") == modality]


def rank_encoders(kb, target: str, data_dir=None, cap: int = 2000, seed: int = 0,
                  runs: Optional[List[str]] = None) -> "Any":
    """Score every stored classification run's selected model (and an untrained network, the floor)
    on the labelled training examples of ``target``, best LogME first.

    Each run sees the target harmonised with that run's own source domains (their image size,
    channels and scaling), as a fine-tuning run started from it would.

    Parameters
    ----------
    kb : lepton.kb.KnowledgeBase
    target : str
        A labelled domain.
    cap : int
        At most this many target examples, a seeded sample.
    runs : list of str, optional
        Run ids to score (default: every completed classification run of the target's modality).

    Returns
    -------
    pandas.DataFrame
        ``run_id`` (``"untrained"`` for the floor), ``method``, ``source``, ``logme``, ``leep``,
        ``h_score``, ``n`` (examples scored). ``attrs["skipped"]``: the runs left out, each a dict
        ``run_id``, ``method``, ``source``, ``reason`` (an encoder for another input size than the
        target's, harmonised with the run's sources; no class shared with the target): a fine-tuning
        run started from one of them would be refused too.

    Raises
    ------
    lepton.data.DataError
        A target without labels, or text runs only (their TF-IDF vocabulary is the pair's own).
    ValueError
        No stored run of the target's modality, or none that takes the target's inputs.
    """
    import pandas as pd
    from ..data import DataError, load_domain
    from ..data.pairing import harmonise
    from ..methods import seeded_init
    from ..models import TransferNet
    tgt = load_domain(target, data_dir)
    if not tgt.labelled or len(np.unique(tgt.y_train)) < 2:
        raise DataError(f"{target} has no labels (or one class): transferability scores need the target's labels; "
                        "pick a labelled target")
    if tgt.modality in ("text", "interactions"):
        raise DataError(f"{target} is a {tgt.modality} domain: ranking stored encoders is for image, audio and "
                        "feature-table domains (a text run's inputs are its own pair's TF-IDF vocabulary)")
    if runs is None:
        runs = rankable_runs(kb, tgt.modality)
    if not runs:
        raise ValueError(f"the knowledge base has no completed {tgt.modality} run to rank; train one first "
                         f"(e.g. python -m lepton train --source digits --target {target})")
    rows, skipped = [], []
    loaded = {target: tgt}  # each domain read once, each (sources, scaling) harmonised once, whatever the runs
    paired: Dict[Any, Any] = {}

    def pair(sources, scaling):
        key = (tuple(sources), scaling)
        if key not in paired:
            for n in sources:
                if n not in loaded:
                    loaded[n] = load_domain(n, data_dir)
            doms = [loaded[n] for n in sources]
            paired[key] = harmonise(doms + [tgt], ["source"] * len(sources) + ["target"], scaling)[0][-1]
        return paired[key]

    for rid in runs:
        info = kb.get_run(rid)
        cfg = info["config"]
        sources = cfg["source"] if isinstance(cfg["source"], list) else [cfg["source"]]
        about = {"run_id": rid, "method": cfg["method"], "source": " + ".join(sources)}
        try:
            t = pair(sources, cfg.get("scaling", "none"))
        except DataError as e:  # e.g. no class shared with the target
            skipped.append({**about, "reason": str(e)})
            continue
        spec = kb.model_spec(rid)
        if spec.get("input_shape") and tuple(t.input_shape) != tuple(spec["input_shape"]):  # a fine-tuning run from it would be refused too
            skipped.append({**about, "reason": f"its encoder takes {_shape(spec['input_shape'])} inputs; {target} "
                            f"harmonised with its source domains is {_shape(t.input_shape)}"})
            continue
        # the same seeded sample for every run (harmonising keeps the target's rows and their order)
        pick = np.sort(np.random.default_rng(seed).choice(len(t.y_train), min(cap, len(t.y_train)), replace=False))
        net = kb.load_method(rid)
        rows.append({**about, **score_model(net, t.x_train[pick], t.y_train[pick]), "n": len(pick)})
        if not any(r["run_id"] == "untrained" for r in rows):  # the floor, in the first run's input space
            with seeded_init(seed):  # the global RNG restored afterwards (runs may train in this process)
                fresh = TransferNet.from_spec(spec)
            rows.append({"run_id": "untrained", "method": "none", "source": "-",
                         **score_model(fresh, t.x_train[pick], t.y_train[pick]), "n": len(pick)})
    if not rows:
        raise ValueError(f"none of the {len(runs)} stored {tgt.modality} run(s) can take {target}'s inputs: "
                         + "; ".join(f"{s['run_id']} ({s['method']}, {s['source']}): {s['reason']}" for s in skipped[:3])
                         + f". Train one on a source of {target}'s input size first (python -m lepton train "
                         f"--source SOURCE --target {target})")
    out = pd.DataFrame(rows).sort_values("logme", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs["skipped"] = skipped
    return out


def _shape(shape) -> str:
    """``(1, 8, 8)`` as ``8x8, 1 channel``; a table's ``(D,)`` as ``D features``."""
    shape = tuple(int(v) for v in shape)
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}, {shape[0]} channel{'s' if shape[0] > 1 else ''}"
    return f"{shape[0]} features" if len(shape) == 1 else "x".join(map(str, shape))
