"""Text domains: the multi-domain sentiment reviews and their TF-IDF featuriser.

==================  ==================================================  =================================
domain              files (relative to the data folder)                 what
==================  ==================================================  =================================
``books``           ``amazon_reviews/sorted_data_acl/books/``           Amazon product reviews, 1,000
``dvd``             ``.../dvd/``                                        positive (4-5 stars) and 1,000
``electronics``     ``.../electronics/``                                negative (1-2 stars) per domain
``kitchen``         ``.../kitchen_&_housewares/``                       (Blitzer, Dredze & Pereira, ACL
                                                                        2007)
==================  ==================================================  =================================

Each folder holds ``positive.review`` and ``negative.review``: pseudo-XML, a sequence of
``<review>...</review>`` blocks with no root element, each with fields such as ``<title>`` and
``<review_text>``. The text is not valid XML (a bare ``&``, stray ``<``), so it is read with a
tolerant regular expression, never an XML parser; bytes are decoded per review as UTF-8, falling
back to Latin-1 (which decodes any byte), and HTML entities (``&amp;``, ``&quot;``) are unescaped.

A raw text domain holds ``x`` as a numpy object array ``(N,)`` of str (title, a blank line, review
text). Pairing turns text into features (:func:`featurise_text`, called by
:func:`lepton.data.pairing.harmonise`): TF-IDF of unigrams and bigrams, the 5,000 most frequent
terms, fitted on the source and target *training* texts without labels, as in the protocol of
Ganin et al. (JMLR 2016) on this data.

There is no download in this version: the canonical distribution is a tarball
(``domain_sentiment_data.tar.gz`` on the dataset's page, https://www.cs.jhu.edu/~mdredze/datasets/sentiment/,
which unpacks to ``sorted_data_acl/``); a missing file is reported with where to get it and the
folder to put the files in.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .catalog import DOMAINS, DomainSpec, resolve_data_dir
from .domain import DataError, Domain, stratified_split

#: registry name -> folder under ``amazon_reviews/sorted_data_acl``
REVIEW_FOLDERS: Dict[str, str] = {"books": "books", "dvd": "dvd", "electronics": "electronics",
                                  "kitchen": "kitchen_&_housewares"}
REVIEW_ROOT = Path("amazon_reviews") / "sorted_data_acl"
REVIEW_CLASSES = ["negative", "positive"]
REVIEW_SPLIT_SEED = 0
REVIEW_TEST_FRACTION = 0.2
REVIEW_WHERE = ("the multi-domain sentiment dataset (Blitzer, Dredze & Pereira, ACL 2007; "
                "https://www.cs.jhu.edu/~mdredze/datasets/sentiment/domain_sentiment_data.tar.gz, which unpacks to "
                "sorted_data_acl/)")

#: The TF-IDF featuriser of text pairs (Ganin et al., JMLR 2016: 5,000 unigram and bigram features).
TFIDF_NGRAM_RANGE = (1, 2)
TFIDF_MAX_FEATURES = 5000

_BLOCK = re.compile(rb"<review>(.*?)</review>", re.S)
_FIELD_CACHE: Dict[str, "re.Pattern[bytes]"] = {}


def _decode(raw: bytes) -> str:
    """UTF-8, else Latin-1 (every byte is a Latin-1 character, so this never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _field(block: bytes, name: str) -> str:
    pat = _FIELD_CACHE.get(name)
    if pat is None:
        pat = _FIELD_CACHE[name] = re.compile(rb"<" + name.encode() + rb">(.*?)</" + name.encode() + rb">", re.S)
    m = pat.search(block)
    return html.unescape(_decode(m.group(1))).strip() if m else ""


def parse_reviews(raw: bytes, fields: Sequence[str] = ("title", "review_text")) -> List[str]:
    """Texts of the ``<review>...</review>`` blocks of one ``.review`` file.

    Parameters
    ----------
    raw : bytes
        The file's contents (pseudo-XML with no root; any bytes).
    fields : sequence of str
        Field tags joined, in order, by a blank line; a missing field counts as empty.

    Returns
    -------
    list of str
        One text per block, in file order; a block whose fields are all empty gives ``""``.

    Notes
    -----
    A tolerant non-greedy regular expression, not an XML parser: ``&``, ``<`` and other characters
    that are not valid XML inside a field are kept as text. Each field is decoded as UTF-8, else
    Latin-1; HTML entities are unescaped.
    """
    out = []
    for m in _BLOCK.finditer(raw):
        parts = [_field(m.group(1), f) for f in fields]
        out.append("\n\n".join(p for p in parts if p))
    return out


def read_review_file(path: Path) -> List[str]:
    """Read one ``positive.review`` / ``negative.review`` file.

    Returns
    -------
    list of str
        Title + review text of each review (see :func:`parse_reviews`).

    Raises
    ------
    DataError
        Unreadable file, or a file without a single ``<review>`` block (the message names it).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    texts = parse_reviews(raw)
    if not texts:
        raise DataError(f"{path} holds no <review>...</review> block; it is not a multi-domain sentiment "
                        f".review file: replace it with the original from {REVIEW_WHERE}")
    return texts


def review_files(name: str, data_dir=None) -> List[Path]:
    """``[negative.review, positive.review]`` of review domain ``name`` in the data folder."""
    folder = resolve_data_dir(data_dir) / REVIEW_ROOT / REVIEW_FOLDERS[name]
    return [folder / "negative.review", folder / "positive.review"]


def load_reviews(name: str, data_dir=None, folder: Optional[Path] = None) -> Domain:
    """One domain of the multi-domain sentiment data (Blitzer, Dredze & Pereira, ACL 2007).

    Parameters
    ----------
    name : str
        ``books``, ``dvd``, ``electronics`` or ``kitchen`` (the domain's name).
    data_dir : path-like, optional
        The data folder (see :func:`lepton.data.resolve_data_dir`).
    folder : pathlib.Path, optional
        Read ``negative.review`` and ``positive.review`` from this folder instead (tests,
        one's own copy).

    Returns
    -------
    Domain
        ``modality="text"``; ``x`` an object array ``(N,)`` of str (title and review text);
        ``y`` int64, 0 = ``negative``, 1 = ``positive``; a seeded (seed 0) class-stratified 80/20
        split: 1,600 train / 400 test for the full 2,000 reviews.

    Raises
    ------
    DataError
        A missing file (no download in this version: the message names the file, where to get it
        and the folder to put it in), an unreadable file or one without reviews.
    """
    files = ([Path(folder) / "negative.review", Path(folder) / "positive.review"] if folder is not None
             else review_files(name, data_dir))
    for p in files:
        if not p.exists():
            raise DataError(f"missing {p.name} for domain {name}: download it from {REVIEW_WHERE} and put it "
                            f"in {p.parent}")
    texts, labels = [], []
    for label, p in enumerate(files):
        got = read_review_file(p)
        texts += got
        labels += [label] * len(got)
    x = np.empty(len(texts), dtype=object)
    x[:] = texts
    y = np.asarray(labels, dtype=np.int64)
    tr, te = stratified_split(y, REVIEW_TEST_FRACTION, REVIEW_SPLIT_SEED)
    pct = int(round(100 * REVIEW_TEST_FRACTION))
    return Domain(name, "text", x[tr], y[tr], x[te], y[te], list(REVIEW_CLASSES),
                  source="multi-domain sentiment reviews (Blitzer, Dredze & Pereira, ACL 2007)",
                  notes={"split": f"class-stratified {100 - pct}/{pct}, seed {REVIEW_SPLIT_SEED}",
                         "text": "title + review text", "labels": "negative = 1-2 stars, positive = 4-5 stars"})


def featurise_text(domains: Sequence[Domain], roles: Sequence[str], record: Dict[str, object]) -> List[Domain]:
    """TF-IDF features of text domains, fitted on the source and target training texts, no labels.

    The featuriser of Ganin et al. (JMLR 2016) on the multi-domain sentiment data: unigrams and
    bigrams, the :data:`TFIDF_MAX_FEATURES` most frequent terms, here TF-IDF weighted with
    sublinear term frequency (``1 + log tf``) and each row L2-normalised (scikit-learn's
    ``TfidfVectorizer``). The vocabulary and document frequencies come from the source and
    target *training* texts only; labels are never passed; every split of every domain (extra
    evaluation domains too) is transformed with it. Deterministic: the same texts give the same
    features, so a stored run's inputs can be rebuilt.

    Parameters
    ----------
    domains : sequence of Domain
        Text domains (``x`` object ``(N,)`` of str), in the order of ``roles``.
    roles : sequence of str
        ``source``, ``target`` or ``eval`` per domain.
    record : dict
        The harmonisation record; ``featuriser`` (method, n-gram range, size, what it was fitted
        on, vocabulary size) and ``featuriser_note`` (a sentence) are set.

    Returns
    -------
    list of Domain
        ``modality="features"``, ``x`` float32 ``(N, V)`` dense with ``V <= 5000`` the vocabulary
        size; labels and class names unchanged.

    Raises
    ------
    DataError
        The training texts hold no word (an empty vocabulary).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    fit_texts = [str(t) for d, r in zip(domains, roles) if r in ("source", "target") for t in d.x_train]
    vec = TfidfVectorizer(ngram_range=TFIDF_NGRAM_RANGE, max_features=TFIDF_MAX_FEATURES, sublinear_tf=True,
                          dtype=np.float32)
    try:
        vec.fit(fit_texts)  # texts only: labels never reach the featuriser
    except ValueError as e:
        raise DataError(f"cannot build a vocabulary from the source and target training texts ({e}); "
                        "pick domains with text in them") from None
    n = len(vec.vocabulary_)

    def tf(x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, n), np.float32)
        return np.ascontiguousarray(vec.transform([str(t) for t in x]).toarray(), dtype=np.float32)  # (N, V)

    out = [d.with_arrays(modality="features", x_train=tf(d.x_train), x_test=tf(d.x_test)) for d in domains]
    record["featuriser"] = {"method": "tfidf", "ngram_range": list(TFIDF_NGRAM_RANGE),
                            "max_features": TFIDF_MAX_FEATURES, "sublinear_tf": True,
                            "fitted_on": "source and target training texts, no labels",
                            "texts": len(fit_texts), "vocabulary_size": n}
    record["featuriser_note"] = (f"text featurised as TF-IDF of unigrams and bigrams ({n:,} most frequent terms, "
                                 f"fitted on the {len(fit_texts):,} source and target training texts without "
                                 "labels; Ganin et al. 2016)")
    return out


#: Token-id inputs for a trainable text encoder (``--encoder embedding-bag``): the most frequent
#: unigrams of the source and target training texts, each text cut to its first TOKEN_MAX_LEN ids.
TOKEN_VOCAB = 5000
TOKEN_MAX_LEN = 256


def tokenise_text(domains: Sequence[Domain], roles: Sequence[str], record: Dict[str, object]) -> List[Domain]:
    """Token ids of text domains, for a trainable encoder (an embedding bag), vocabulary built
    like :func:`featurise_text`'s: on the source and target training texts, without labels.

    Each text becomes the ids (``1..V``, by descending frequency rank of scikit-learn's
    ``CountVectorizer`` vocabulary of the :data:`TOKEN_VOCAB` most frequent unigrams) of its
    in-vocabulary tokens in order, cut to :data:`TOKEN_MAX_LEN` and padded with ``0``.

    Parameters
    ----------
    domains : sequence of Domain
        Text domains, in the order of ``roles``.
    roles : sequence of str
    record : dict
        ``featuriser`` and ``featuriser_note`` are set.

    Returns
    -------
    list of Domain
        ``modality="tokens"``, ``x`` float32 ``(N, TOKEN_MAX_LEN)`` of integer ids (0 = padding).

    Raises
    ------
    DataError
        The training texts hold no word.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    fit_texts = [str(t) for d, r in zip(domains, roles) if r in ("source", "target") for t in d.x_train]
    vec = CountVectorizer(max_features=TOKEN_VOCAB)
    try:
        counts = np.asarray(vec.fit_transform(fit_texts).sum(0)).ravel()
    except ValueError as e:
        raise DataError(f"cannot build a vocabulary from the source and target training texts ({e}); "
                        "pick domains with text in them") from None
    terms = vec.get_feature_names_out()
    rank = {terms[i]: r + 1 for r, i in enumerate(np.argsort(-counts, kind="stable"))}  # 1 = most frequent
    analyse = vec.build_analyzer()

    def ids(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), TOKEN_MAX_LEN), np.float32)
        for i, t in enumerate(x):
            row = [rank[w] for w in analyse(str(t)) if w in rank][:TOKEN_MAX_LEN]
            out[i, :len(row)] = row
        return out

    out = [d.with_arrays(modality="tokens", x_train=ids(d.x_train), x_test=ids(d.x_test)) for d in domains]
    record["featuriser"] = {"method": "tokens", "vocabulary_size": int(len(rank)), "max_len": TOKEN_MAX_LEN,
                            "fitted_on": "source and target training texts, no labels", "texts": len(fit_texts)}
    record["featuriser_note"] = (f"text as token ids for a trainable encoder ({len(rank):,} most frequent words of the "
                                 f"{len(fit_texts):,} source and target training texts, no labels; first "
                                 f"{TOKEN_MAX_LEN} tokens per text)")
    return out


def _loader(name: str):
    def load(data_dir: Path) -> Domain:
        return load_reviews(name, data_dir)
    return load


def _files(name: str):
    def files(data_dir: Path) -> List[Path]:
        return review_files(name, data_dir)
    return files


#: registry name -> description
DESCRIPTIONS: Dict[str, str] = {
    "books": "Amazon book reviews, positive / negative (Blitzer et al. 2007)",
    "dvd": "Amazon DVD reviews, positive / negative (Blitzer et al. 2007)",
    "electronics": "Amazon electronics reviews, positive / negative (Blitzer et al. 2007)",
    "kitchen": "Amazon kitchen & housewares reviews, positive / negative (Blitzer et al. 2007)",
}


def _register() -> None:
    for name, desc in DESCRIPTIONS.items():
        if name not in DOMAINS:
            DOMAINS.add(name, DomainSpec(name, "text", desc, _loader(name), _files(name)))


_register()
