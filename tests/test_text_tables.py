"""A user's own texts (issue 13, item 2): CSV, TSV and JSON-lines with a text and a label column,
quoted fields, a BOM, Latin-1, binary bytes refused, unlabelled texts, trained from the CLI."""
import json

import numpy as np

import pytest

from lepton.cli import main
from lepton.data import DataError, load_domain


def _reviews(n=40):
    good = ["great, works well", "loved it\nwould buy again", 'the "best" purchase', "excellent value"]
    bad = ["broke after a day", "terrible, do not buy", "waste of money", "awful\nsmell"]
    return [(good[(i // 2) % 4] + f" item {i}", "pos") if i % 2 else (bad[(i // 2) % 4] + f" item {i}", "neg")
            for i in range(n)]


def test_csv_with_quoted_commas_newlines_and_a_bom(tmp_path):
    import csv
    p = tmp_path / "r.csv"
    with open(p, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        w.writerows([(i, t, y) for i, (t, y) in enumerate(_reviews())])
    d = load_domain(str(p), cache=False)
    assert d.modality == "text" and d.class_names == ["neg", "pos"] and d.sizes() == {"train": 32, "test": 8}
    texts = list(d.x_train) + list(d.x_test)
    assert any("\n" in t for t in texts) and any('"best"' in t for t in texts) and any("great, works" in t for t in texts)
    assert d.notes["encoding"] == "UTF-8" and d.notes["other_columns_ignored"] == ["id"]


def test_latin1_tsv_jsonl_named_columns_and_binary_bytes(tmp_path):
    tsv = tmp_path / "r.tsv"
    tsv.write_bytes("body\tstars\n".encode() + b"".join(
        (t.replace("\n", " ") + " caf\xe9\t" + ("5" if y == "pos" else "1") + "\n").encode("latin-1")
        for t, y in _reviews()))
    with pytest.warns(UserWarning, match="labels taken as integers"):
        d = load_domain(f"{tsv}#text=body,label=stars", cache=False)
    assert "Latin-1" in d.notes["encoding"] and any("café" in t for t in d.x_train) and d.class_names == ["1", "5"]
    jl = tmp_path / "r.jsonl"
    jl.write_text("\n".join(json.dumps({"review": t, "label": y}) for t, y in _reviews()))
    assert load_domain(str(jl), cache=False).modality == "text"
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    with pytest.raises(DataError, match="not a text file"):
        load_domain(str(png), cache=False)
    with pytest.raises(DataError, match="'nope' not found"):
        load_domain(f"{jl}#text=nope", cache=False)


def test_own_texts_train_to_an_unlabelled_target_from_the_cli(tmp_path, capsys):
    src, tgt = tmp_path / "s.csv", tmp_path / "t.jsonl"
    import pandas as pd
    pd.DataFrame(_reviews(60), columns=["text", "label"]).to_csv(src, index=False)
    tgt.write_text("\n".join(json.dumps({"text": t}) for t, _ in _reviews(40)))
    assert main(["train", "--source", str(src), "--target", str(tgt), "--method", "dann", "--steps", "80"]) == 0
    out, err = capsys.readouterr()
    assert "TF-IDF" in err and "no labels" in out
    rows = [ln for ln in out.splitlines() if " source " in ln]
    assert rows and float(rows[0].split("%")[0].split()[-1]) > 60  # the words separate the classes


def test_texts_upload_as_a_user_domain():
    from lepton.data.user_domains import add_user_domain, remove_user_domain
    data = "\n".join(json.dumps({"text": t, "label": y}) for t, y in _reviews()).encode()
    add_user_domain("my-texts", "reviews.jsonl", data)
    try:
        d = load_domain("my-texts", cache=False)
        assert d.modality == "text" and d.n_classes == 2 and d.sizes()["train"] == 32
    finally:
        remove_user_domain("my-texts")


def test_the_words_that_shifted_between_books_and_kitchen(data_dir, capsys):
    """Log-odds with an informative prior finds 'book' for books and kitchen things for kitchen; the
    source classifier's cues include sentiment words, some rare in the target."""
    from lepton.evaluation.words import shifted_terms, source_cues
    st = shifted_terms("books", "kitchen", top=20)
    assert {"book", "read"} <= set(st["source"]["term"]) and "pan" in set(st["target"]["term"])
    assert (st["source"]["z"] > 0).all() and (st["target"]["z"] > 0).all()
    cues = source_cues("books", "kitchen", top=40)
    assert {"great", "boring"} & set(cues["term"]) and (cues["target_vs_source"] < 0.5).any()
    assert main(["words", "--source", "books", "--target", "kitchen", "--top", "5"]) == 0
    assert "terms most characteristic of books" in capsys.readouterr().out
    with pytest.raises(DataError, match="need two text domains"):
        shifted_terms("digits", "kitchen")


def test_a_trainable_text_encoder_learns_from_token_ids(data_dir):
    """--encoder embedding-bag: texts become token ids (vocabulary from the source and target
    training texts, no labels), the encoder learns word embeddings, and a stored run's inputs
    rebuild as the same ids."""
    from lepton.config import RunConfig
    from lepton.data.pairing import harmonise
    from lepton.data.text import TOKEN_MAX_LEN, TOKEN_VOCAB
    from lepton.kb import KnowledgeBase
    from lepton.training import train
    (s, t), rec = harmonise([load_domain("books"), load_domain("kitchen")], text_features="tokens")
    assert s.modality == "tokens" and s.input_shape == (TOKEN_MAX_LEN,)
    assert rec["featuriser"]["method"] == "tokens" and "no labels" in rec["featuriser"]["fitted_on"]
    assert 0 <= s.x_train.min() and s.x_train.max() <= TOKEN_VOCAB and (s.x_train == s.x_train.round()).all()
    kb = KnowledgeBase()
    res = train(RunConfig("books", "kitchen", "source-only", epochs=3, seed=0, encoder="embedding-bag"), kb=kb)
    assert res.status == "completed" and type(res.plan.method.net.encoder).__name__ == "EmbeddingBagEncoder"
    assert res.checkpoints["selected"]["source_acc"] > 0.55  # it learns from the words
    tgt = res.plan.roles.index("target")
    np.testing.assert_array_equal(kb.snapshot_inputs(res.run_id, tgt, [0, 3]), t.x_test[[0, 3]])
