"""AppTest of the Domains page: overview, one domain's samples, missing benchmark files, shift statistics, uploads."""
import io
import zipfile

import numpy as np
from app_helpers import no_exception, open_page, texts
from PIL import Image


def image_zip(classes=("0", "1", "2"), n=5) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for j, c in enumerate(classes):
            for i in range(n):
                b = io.BytesIO()
                Image.fromarray((np.random.default_rng(10 * j + i).random((8, 8)) * 255).astype(np.uint8)).save(b, "PNG")
                zf.writestr(f"mine/{c}/{i}.png", b.getvalue())
    return buf.getvalue()


def test_domains_page_shows_every_domain_and_one_in_detail():
    at = open_page("domains")
    no_exception(at)
    table = at.dataframe[0].value
    assert {"digits", "digits-rotated", "mnist", "usps"} <= set(table["domain"])
    assert at.selectbox(key="inspect").value == "digits"
    labels = {m.label: m.value for m in at.metric}
    assert labels["training examples"] == "1,257" and labels["classes"] == "10"
    assert "scikit-learn" in texts(at)  # where the data comes from
    assert len(at.image) >= 1


def test_missing_benchmark_offers_download_and_explains_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("LEPTON_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("LEPTON_OFFLINE", "1")
    at = open_page("domains")
    at.selectbox(key="inspect").select("usps").run()
    no_exception(at)
    assert "files are not here yet" in texts(at)
    assert any("usps.bz2" in c.value for c in at.code)
    at.button(key="download").click().run()
    no_exception(at)
    assert at.error and "usps" in at.error[0].value and "put it in" in at.error[0].value


def test_shift_statistics_for_two_domains():
    at = open_page("domains")
    no_exception(at)
    assert at.selectbox(key="shift_a").value == "digits"
    assert at.selectbox(key="shift_b").value == "digits-small"
    at.selectbox(key="shift_b").select("digits-noisy").run()
    no_exception(at)
    import importlib.util
    if importlib.util.find_spec("lepton.evaluation.shift") is None:
        assert "No shift statistics" in texts(at)
    else:
        assert {"proxy A-distance", "MMD (relative)"} <= {m.label for m in at.metric}


def upload(at, name: str, data: bytes = None, filename: str = "mine.zip"):
    """Fill the first upload form (a zip of images by default) and submit it."""
    at.file_uploader(key="upload_0").upload(filename, image_zip() if data is None else data, "application/zip")
    at.text_input(key="upload_name_0").input(name)
    at.form_submit_button[0].click().run()
    no_exception(at)
    return at


def test_upload_a_zip_adds_a_domain_everywhere():
    at = upload(open_page("domains"), "my-upload")
    assert "Added **my-upload**" in texts(at)
    assert "my-upload" in at.selectbox(key="inspect").options
    assert at.text_input(key="upload_name_1").value == ""  # a fresh form after a success
    at2 = open_page("train")  # another page, another session: the domain is in the pickers
    assert "my-upload" in at2.selectbox(key="target").options


def test_an_upload_is_renamed_and_deleted_from_the_page():
    at = upload(open_page("domains"), "mine-a")
    (table,) = [d for d in at.dataframe if "file" in d.value.columns]  # the uploads table
    assert list(table.value["domain"]) == ["mine-a"]
    at.text_input(key="upload_rename_to").input("digits").run()  # taken by a built-in
    at.button(key="upload_rename").click().run()
    assert at.error and "already a built-in domain" in at.error[0].value
    at.text_input(key="upload_rename_to").input("mine-b").run()
    at.button(key="upload_rename").click().run()
    no_exception(at)
    assert "Renamed **mine-a** to **mine-b**" in texts(at)
    assert "mine-b" in at.selectbox(key="inspect").options and "mine-a" not in at.selectbox(key="inspect").options
    assert at.button(key="upload_delete").disabled  # not without the tick
    at.checkbox(key="upload_delete_sure").check().run()
    at.button(key="upload_delete").click().run()
    no_exception(at)
    assert "Deleted **mine-b**" in texts(at) and "mine-b" not in at.selectbox(key="inspect").options
    assert not [d for d in at.dataframe if "file" in d.value.columns]  # no uploads left


def test_refused_upload_is_explained():
    at = open_page("domains")
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../evil.png", b"x")
    upload(at, "evil", bad.getvalue(), "evil.zip")
    assert at.error and "'..'" in at.error[0].value


def test_an_upload_error_keeps_the_form_and_the_same_file_goes_again():
    at = upload(open_page("domains"), "has space")  # a bad name
    assert at.error and "Choose a file first" not in at.error[0].value
    assert at.text_input(key="upload_name_0").value == "has space"  # kept, to correct
    at.text_input(key="upload_name_0").input("my-second")
    at.form_submit_button[0].click().run()  # the same file, not chosen again
    no_exception(at)
    assert "Added **my-second**" in texts(at)


def test_lesson_mode_hides_uploads():
    at = open_page("domains", {"lesson": "1"})
    no_exception(at)
    assert len(at.file_uploader) == 0


def test_a_text_domain_shows_sample_reviews_and_the_train_page_pairs_two(data_dir, fake_jobs):
    at = open_page("domains")
    at.selectbox(key="inspect").select("books").run()
    no_exception(at)
    assert at.metric[3].value == "text"
    table = at.dataframe[-1].value if at.dataframe else None
    assert table is not None and set(table["label"]) <= {"negative", "positive"} and table["text"].str.len().min() > 0
    assert "words per text: median" in texts(at)
    tr = open_page("train", {"source": "books", "target": "kitchen", "method": "dann"})
    no_exception(tr)
    assert "TF-IDF" in texts(tr)  # the featuriser note of the pairing check


def test_two_text_domains_show_the_words_that_shifted(data_dir):
    at = open_page("domains")
    at.selectbox(key="shift_a").select("books").run()
    at.selectbox(key="shift_b").select("kitchen").run()
    no_exception(at)
    assert "What shifted, in words" in texts(at)
    tables = [df.value for df in at.dataframe if "term" in df.value]
    assert tables and "book" in set(tables[0]["term"])


def test_an_unlabelled_upload_previews_and_pairs_without_a_traceback(tmp_path, fake_jobs):
    """Found by a new user: the preview looked up class names for labels -1 and the page died."""
    from lepton.data.user_domains import add_user_domain
    rows = ["a,b,c"] + [f"{i % 7 + 1},{i % 3 + 1},{i % 5 + 2}" for i in range(40)]
    add_user_domain("nolabels", "nolabels.csv", "\n".join(rows).encode())
    lab = ["a,b,c,label"] + [f"{i % 7 + 1},{i % 3 + 1},{i % 5 + 2},{i % 2}" for i in range(40)]
    add_user_domain("withlabels", "withlabels.csv", "\n".join(lab).encode())
    at = open_page("domains")
    at.selectbox(key="inspect").select("nolabels").run()
    no_exception(at)
    tr = open_page("train", {"source": "withlabels", "target": "nolabels", "method": "dann"})
    no_exception(tr)
    assert "has no labels" in texts(tr) and not tr.button(key="start").disabled


def test_an_audio_domain_shows_spectrograms_and_plays_clips(data_dir):
    """Speech (issue 14): a speaker's domain shows log-mel spectrograms per digit and players for
    a few clips with their label and speaker; the shift statistics work on audio too."""
    at = open_page("domains")
    at.selectbox(key="inspect").select("fsdd-george").run()
    no_exception(at)
    assert at.metric[3].value == "40 × 94 mel"  # bands x frames of the log-mel spectrogram
    assert len(at.image) >= 1
    players = at.get("audio")
    assert len(players) == 3
    assert "speaker george" in texts(at)
