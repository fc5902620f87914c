"""What shifted between two text domains, in words.

* :func:`shifted_terms`: the terms most characteristic of the source versus the target, by the
  log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn, "Fightin' Words",
  Political Analysis 2008): for a term ``w`` with counts ``y_s``, ``y_t`` in the two domains (totals
  ``n_s``, ``n_t``) and prior counts ``a_w`` (the pooled counts scaled to ``a_0``),
  ``delta = log((y_s + a_w) / (n_s + a_0 - y_s - a_w)) - log((y_t + a_w) / (n_t + a_0 - y_t - a_w))``,
  ``var = 1 / (y_s + a_w) + 1 / (y_t + a_w)``, ranked by ``z = delta / sqrt(var)``. No labels read.
* :func:`source_cues`: the terms a linear classifier trained on the *source* labels leans on most
  (largest absolute weights of a logistic regression on TF-IDF), with how often each occurs in the
  target: cues that are rare in the target are knowledge that does not transfer. Target labels are
  never read.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np


def _texts(domain, split: str = "train"):
    from ..data import DataError, load_domain
    d = load_domain(domain) if isinstance(domain, str) else domain
    if d.modality != "text":
        raise DataError(f"{d.name!r} is a {d.modality} domain; the words that shifted need two text domains")
    return d, list(d.split(split)[0])


def shifted_terms(source, target, top: int = 15, prior: float = 1000.0, split: str = "train",
                  min_df: int = 5, stop_words: Optional[str] = "english") -> Dict[str, Any]:
    """The terms most characteristic of each domain (log-odds with an informative Dirichlet prior).

    Parameters
    ----------
    source, target : lepton.data.Domain or str
        Text domains (or their names).
    top : int
        Terms per side.
    prior : float
        ``a_0``, the total prior count (larger: rare terms count less).
    split : str
        Which split's texts (``train``).
    min_df : int
        A term must occur in at least this many texts of the two domains together.
    stop_words : str or None
        scikit-learn's ``"english"`` list (default: function words such as "of" and "it" say
        little about a domain), or ``None`` to keep every term.

    Returns
    -------
    dict
        ``source`` and ``target``: pandas.DataFrame with ``term``, ``z`` (float, positive: of that
        domain), ``count_source``, ``count_target`` (occurrences); ``n_terms`` (vocabulary size).

    Raises
    ------
    lepton.data.DataError
        A domain that is not text.
    """
    import pandas as pd
    from sklearn.feature_extraction.text import CountVectorizer

    ds, ts = _texts(source, split)
    dt, tt = _texts(target, split)
    vec = CountVectorizer(ngram_range=(1, 2), min_df=min_df, max_features=50000, stop_words=stop_words)
    counts = vec.fit_transform(ts + tt)
    ys = np.asarray(counts[:len(ts)].sum(0)).ravel().astype(np.float64)
    yt = np.asarray(counts[len(ts):].sum(0)).ravel().astype(np.float64)
    pooled = ys + yt
    a = prior * pooled / pooled.sum()
    ns, nt = ys.sum(), yt.sum()
    delta = np.log((ys + a) / (ns + prior - ys - a)) - np.log((yt + a) / (nt + prior - yt - a))
    z = delta / np.sqrt(1.0 / (ys + a) + 1.0 / (yt + a))
    terms = vec.get_feature_names_out()
    order = np.argsort(-z)

    def frame(idx, sign):
        return pd.DataFrame({"term": terms[idx], "z": sign * z[idx], "count_source": ys[idx].astype(int),
                             "count_target": yt[idx].astype(int)})
    return {"source": frame(order[:top], 1.0), "target": frame(order[::-1][:top], -1.0), "n_terms": int(len(terms)),
            "source_name": ds.name, "target_name": dt.name}


def source_cues(source, target, top: int = 15, seed: int = 0, split: str = "train",
                vectorizer: Optional[Any] = None) -> "Any":
    """The terms a source-trained linear classifier leans on, and how rare each is in the target.

    Parameters
    ----------
    source, target : lepton.data.Domain or str
        Text domains; the source must be labelled (its labels train the probe), the target's
        labels are not read.
    top : int
        Terms returned, by the largest absolute weight.
    seed : int
    split : str
    vectorizer : optional
        A fitted scikit-learn vectorizer to use instead of TF-IDF of unigrams and bigrams (5,000
        terms) fitted on both domains' texts.

    Returns
    -------
    pandas.DataFrame
        ``term``, ``class`` (the class the term points to), ``weight`` (float), ``df_source`` and
        ``df_target`` (fraction of texts containing the term), ``target_vs_source`` (their ratio;
        below 0.5: a cue the target rarely offers). Sorted by absolute weight.

    Raises
    ------
    lepton.data.DataError
        A domain that is not text, or an unlabelled source.
    """
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from ..data import DataError
    ds, ts = _texts(source, split)
    dt, tt = _texts(target, split)
    if not ds.labelled:
        raise DataError(f"the source {ds.name!r} has no labels: there is no source classifier to explain")
    vec = vectorizer or TfidfVectorizer(ngram_range=(1, 2), max_features=5000, sublinear_tf=True).fit(ts + tt)
    xs, xt = vec.transform(ts), vec.transform(tt)
    clf = LogisticRegression(max_iter=1000, random_state=seed).fit(xs, ds.split(split)[1])
    coef = clf.coef_ if clf.coef_.shape[0] > 1 else np.vstack([-clf.coef_[0], clf.coef_[0]])
    best = coef.argmax(0)
    weight = coef[best, np.arange(coef.shape[1])]
    idx = np.argsort(-np.abs(weight))[:top]
    dfs = np.asarray((xs > 0).mean(0)).ravel()
    dft = np.asarray((xt > 0).mean(0)).ravel()
    names = vec.get_feature_names_out()
    classes = [ds.class_names[c] for c in clf.classes_]
    return pd.DataFrame({"term": names[idx], "class": [classes[best[i]] for i in idx], "weight": weight[idx],
                         "df_source": dfs[idx], "df_target": dft[idx],
                         "target_vs_source": dft[idx] / np.maximum(dfs[idx], 1e-12)})
