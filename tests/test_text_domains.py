"""Text domains (issue 13, first slice): the multi-domain sentiment reviews, read tolerantly,
featurised as TF-IDF during pairing (fitted on training texts, never on labels), and trained on
by every transfer method through the features path."""
import os
import re
from pathlib import Path

import numpy as np
import pytest

from lepton.config import RunConfig
from lepton.data import DataError, Domain, load_domain
from lepton.data.pairing import harmonise
from lepton.data.text import REVIEW_FOLDERS, REVIEW_ROOT, load_reviews, parse_reviews
from lepton.training import train

TEXT_DOMAINS = ("books", "dvd", "electronics", "kitchen")


@pytest.fixture(scope="session")
def review_dir() -> Path:
    """The data folder, when it holds the four review domains; else skip with the reason."""
    d = Path(os.environ["LEPTON_DATA_DIR"])
    missing = [f for f in REVIEW_FOLDERS.values() if not (d / REVIEW_ROOT / f / "positive.review").exists()]
    if missing:
        pytest.skip(f"the multi-domain sentiment reviews are missing from {d / REVIEW_ROOT} ({', '.join(missing)}); "
                    "set LEPTON_DATA_DIR=../shared/data")
    return d


pytestmark = pytest.mark.usefixtures("shared_prep_cache")  # one preparation cache per module (conftest)


@pytest.fixture(scope="module")
def books_kitchen(review_dir):
    b, k = load_domain("books", review_dir), load_domain("kitchen", review_dir)
    doms, record = harmonise([b, k], scaling="auto")
    return b, k, doms, record


def _review(title: bytes, text: bytes) -> bytes:
    return (b"<review>\n<unique_id>\nx:1\n</unique_id>\n<rating>\n5.0\n</rating>\n<title>\n" + title
            + b"\n</title>\n<review_text>\n" + text + b"\n</review_text>\n</review>\n")


# --- the parser ------------------------------------------------------------------------------------

def test_parser_keeps_ampersands_and_decodes_a_latin1_byte(tmp_path):
    pos = (_review(b"Salt & pepper", b"Works <great> & looks fine &amp; cheap, 5 < 6")
           + _review(b"Caf\xe9 grinder", b"not UTF-8: \xe9 is Latin-1 here")  # a lone 0xE9 byte
           + _review("Crème brûlée".encode("utf-8"), "UTF-8 é".encode("utf-8")))
    neg = _review(b"Broke", b"after a week")
    (tmp_path / "positive.review").write_bytes(pos)
    (tmp_path / "negative.review").write_bytes(neg * 4 + _review(b"", b"no title"))
    texts = parse_reviews(pos)
    assert texts[0] == "Salt & pepper\n\nWorks <great> & looks fine & cheap, 5 < 6"
    assert texts[1] == "Café grinder\n\nnot UTF-8: é is Latin-1 here"
    assert texts[2] == "Crème brûlée\n\nUTF-8 é"
    dom = load_reviews("kitchen", folder=tmp_path)
    assert dom.modality == "text" and dom.sizes() == {"train": 6, "test": 2}
    every = set(dom.x_train) | set(dom.x_test)
    assert "no title" in every and texts[1] in every
    assert sorted(dom.class_names) == ["negative", "positive"]


def test_a_file_without_reviews_is_a_clear_error(tmp_path):
    (tmp_path / "positive.review").write_bytes(b"<html>not reviews</html>")
    (tmp_path / "negative.review").write_bytes(_review(b"a", b"b"))
    with pytest.raises(DataError, match="no <review>"):
        load_reviews("books", folder=tmp_path)


def test_missing_folder_names_where_to_put_the_files(tmp_path):
    from lepton.data import list_domains
    with pytest.raises(DataError) as e:
        load_domain("books", tmp_path)
    assert str(tmp_path / "amazon_reviews" / "sorted_data_acl" / "books") in str(e.value)
    assert "Blitzer" in str(e.value)
    rows = {r["name"]: r for r in list_domains(tmp_path)}
    assert rows["kitchen"]["available"] is False and rows["kitchen"]["modality"] == "text"
    assert any("kitchen_&_housewares" in m for m in rows["kitchen"]["missing"])


def test_text_domain_validation():
    d = Domain("t", "text", ["a b", "c"], np.array([0, 1]), np.array(["d"]), np.array([1]), ["n", "p"])
    assert d.x_train.dtype == object and d.x_test.dtype == object and type(d.x_test[0]) is str
    assert d.input_shape == () and d.sizes() == {"train": 2, "test": 1} and d.labelled
    assert d.class_counts() == {"n": 1, "p": 1}
    with pytest.raises(DataError, match="must be a str"):
        Domain("t", "text", np.array([1.0, 2.0], dtype=object), np.array([0, 1]), [], np.array([], np.int64), ["n", "p"])
    with pytest.raises(DataError, match="modality"):
        Domain("t", "video", np.zeros((1, 2)), np.array([0]), np.zeros((0, 2)), np.array([], np.int64), ["a"])


# --- the real domains ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TEXT_DOMAINS)
def test_review_domains_are_balanced_and_split_80_20(review_dir, name):
    d = load_domain(name, review_dir)
    assert d.modality == "text" and d.input_shape == () and d.labelled
    assert d.x_train.dtype == object and d.x_train.shape == (1600,) and d.x_test.shape == (400,)
    assert all(isinstance(t, str) and t for t in d.x_train)
    assert d.class_counts("train") == {"negative": 800, "positive": 800}
    assert d.class_counts("test") == {"negative": 200, "positive": 200}
    assert "seed 0" in d.notes["split"] and "80/20" in d.notes["split"]
    again = load_domain(name, review_dir, cache=False)
    assert np.array_equal(again.x_test, d.x_test) and np.array_equal(again.y_test, d.y_test)


def test_tfidf_record_and_features(books_kitchen):
    _, _, doms, record = books_kitchen
    assert record["featuriser"] == {"method": "tfidf", "ngram_range": [1, 2], "max_features": 5000,
                                    "sublinear_tf": True, "fitted_on": "source and target training texts, no labels",
                                    "texts": 3200, "vocabulary_size": 5000}
    assert "TF-IDF" in record["featuriser_note"] and "without labels" in record["featuriser_note"]
    assert record["scaling"]["method"] == "none"  # auto means none for text
    assert not any("TF-IDF" in n for n in record["notes"])  # notes become warnings; this is not one
    for d in doms:
        assert d.modality == "features" and d.input_shape == (5000,)
        for x in (d.x_train, d.x_test):
            assert x.dtype == np.float32 and x.flags.c_contiguous
            norms = np.linalg.norm(x, axis=1)
            assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)  # L2-normalised rows


def test_tfidf_never_sees_labels(books_kitchen):
    b, k, doms, _ = books_kitchen
    rng = np.random.default_rng(0)
    k2 = k.with_arrays(y_train=rng.permutation(k.y_train), y_test=rng.permutation(k.y_test))
    b2 = b.with_arrays(y_train=rng.permutation(b.y_train))
    doms2, rec2 = harmonise([b2, k2], scaling="auto")
    for d, d2 in zip(doms, doms2):
        assert np.array_equal(d.x_train, d2.x_train) and np.array_equal(d.x_test, d2.x_test)
    assert rec2["featuriser"]["fitted_on"] == "source and target training texts, no labels"


def test_tfidf_is_fitted_on_training_texts_only(books_kitchen):
    from sklearn.feature_extraction.text import TfidfVectorizer
    b, k, doms, _ = books_kitchen
    ref = TfidfVectorizer(ngram_range=(1, 2), max_features=5000, sublinear_tf=True, dtype=np.float32)
    ref.fit(list(b.x_train) + list(k.x_train))
    assert np.allclose(ref.transform(list(k.x_test)).toarray(), doms[1].x_test)
    # a word of the target test texts only, made the most frequent word there: not in the vocabulary
    word = "zqxtestonlyword"
    assert not any(word in t for t in [*b.x_train, *k.x_train])
    k3 = k.with_arrays(x_test=np.array([t + f" {word}" * 50 for t in k.x_test], dtype=object))
    ev = load_domain("dvd").with_arrays(x_train=np.array([f"{word} evalonlyword"] * 1600, dtype=object))
    doms3, rec3 = harmonise([b, k3, ev], ["source", "target", "eval"])
    assert rec3["featuriser"]["texts"] == 3200
    assert np.array_equal(doms3[0].x_train, doms[0].x_train)  # nothing outside the training texts moved it
    assert np.array_equal(doms3[1].x_test, ref.transform(list(k3.x_test)).toarray())
    assert word not in ref.vocabulary_ and "evalonlyword" not in ref.vocabulary_


def test_featurising_is_deterministic(books_kitchen):
    """A stored run's inputs are rebuilt by harmonising the same names again."""
    b, k, doms, record = books_kitchen
    doms2, record2 = harmonise([load_domain("books", cache=False), load_domain("kitchen", cache=False)])
    assert record2["featuriser"] == record["featuriser"]
    assert all(np.array_equal(d.x_test, d2.x_test) for d, d2 in zip(doms, doms2))


def test_explicit_scaling_applies_to_tfidf(books_kitchen):
    b, k, _, _ = books_kitchen
    doms, record = harmonise([b, k], scaling="standard")
    assert record["scaling"]["method"] == "standard" and "featuriser" in record
    pooled = np.concatenate([doms[0].x_train, doms[1].x_train])
    assert abs(float(pooled.mean())) < 1e-3
    assert record["scaling_note"].startswith(record["featuriser_note"])


def test_text_does_not_pair_with_other_modalities(review_dir):
    with pytest.raises(DataError, match="different modalities"):
        harmonise([load_domain("books", review_dir), load_domain("digits")])
    with pytest.raises(DataError, match="image domains"):
        load_domain("books:rotate=30", review_dir)


# --- every method on text ---------------------------------------------------------------------------

METHOD_EPOCHS = {"source-only": 2, "dann": 2, "deep-coral": 1, "dan": 1, "self-training": 1, "target-only": 1,
                 "finetune": 1}


@pytest.mark.parametrize("method", list(METHOD_EPOCHS))
def test_every_method_trains_on_text(review_dir, method):
    res = train(RunConfig("books", "kitchen", method, epochs=METHOD_EPOCHS[method], seed=0), record=False,
                data_dir=review_dir)
    assert res.status == "completed", res.error
    acc = res.checkpoints["selected"]["target_acc"]
    assert np.isfinite(acc) and 0.0 <= acc <= 1.0
    assert res.harmonisation["featuriser"]["method"] == "tfidf"
    if method in ("source-only", "dann"):
        assert acc > 0.55, f"{method} books -> kitchen: target accuracy {acc:.3f} is not above chance"


@pytest.mark.xfail(strict=True, reason="DAN's MK-MMD collapses the MLP's features on L2-normalised TF-IDF (target and "
                   "source accuracy 50 % at 1 and 10 epochs; trade_off 0.1 gives 78 % after 10); its progressive weight "
                   "(defaults_version 3, DANN's schedule) does not rescue it: still 50 % at 3 epochs, the weight being "
                   "0.46 at a tenth of the run. On standardised TF-IDF tables it trains (bench/defaults.md)")
def test_dan_beats_chance_on_text_at_its_defaults(review_dir):
    res = train(RunConfig("books", "kitchen", "dan", epochs=1, seed=0), record=False, data_dir=review_dir)
    assert res.checkpoints["selected"]["source_acc"] > 0.55


# --- the CLI ---------------------------------------------------------------------------------------

def test_cli_lists_text_domains(capsys, review_dir):
    from lepton.cli import main
    assert main(["--data-dir", str(review_dir), "domains"]) == 0
    out = capsys.readouterr().out
    for name in TEXT_DOMAINS:
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        assert re.match(rf"{name}\s+text\s+1600\s+400\s+text\s", line), line


def test_cli_trains_dann_on_text_and_rebuilds_its_inputs(capsys, review_dir):
    from lepton.cli import main
    from lepton.data.prepared import prepare
    from lepton.kb import KnowledgeBase
    code = main(["--data-dir", str(review_dir), "train", "--source", "books", "--target", "kitchen",
                 "--method", "dann", "--epochs", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "lepton: note: Text featurised as TF-IDF of unigrams and bigrams" in err
    assert "kitchen" in out and "status: completed" in out
    rid = re.search(r"run id: (\S+)", out).group(1)
    got = KnowledgeBase().snapshot_inputs(rid, 1, [0, 5, 399], data_dir=review_dir)
    doms, _ = prepare(["books", "kitchen"], ["source", "target"], review_dir, scaling="auto")
    assert got.dtype == np.float32 and np.array_equal(got, doms[1].x_test[[0, 5, 399]])
