"""Speech domains (issue 14, the data layer): FSDD speakers on the real data, log-mel features cached
once per set of files, waveform shifts checked against hand measurements, a user's audio folder, and a
clear DataError for each kind of bad input."""
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile", reason="audio domains need soundfile: pip install librosa soundfile")
pytest.importorskip("librosa", reason="audio domains need librosa: pip install librosa soundfile")

from lepton.cli import main  # noqa: E402
from lepton.data import DataError, Domain, load_domain  # noqa: E402
from lepton.data.audio import (FRAMES, FSDD_SPEAKERS, N_MELS, SAMPLE_RATE, clip_paths,  # noqa: E402
                               clip_waveform, fsdd_metadata, shift_waveform)
from lepton.data.pairing import harmonise  # noqa: E402
from lepton.data.prepared import prepare  # noqa: E402
from lepton.models import MODALITY_ENCODERS, build_encoder  # noqa: E402

SHAPE = (1, N_MELS, FRAMES)


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """The data folder when it holds the FSDD recordings; else skip with the reason."""
    d = Path(os.environ["LEPTON_DATA_DIR"])
    rec = d / "fsdd" / "recordings"
    if not (rec / "0_george_0.wav").exists() or not (d / "fsdd" / "metadata.py").exists():
        pytest.skip(f"the Free Spoken Digit Dataset is missing from {d / 'fsdd'}; set LEPTON_DATA_DIR=../shared/data")
    return d


pytestmark = pytest.mark.usefixtures("shared_prep_cache")  # one preparation cache per module (conftest)


def _tone(freq: float, seconds: float = 0.4, sr: int = SAMPLE_RATE, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _folder(root: Path, n: int = 5) -> Path:
    """``root/low/*.wav`` (300-400 Hz tones) and ``root/high/*`` (1.5-2 kHz): FLAC, OGG, stereo, 16 kHz."""
    for cls, base in (("low", 300.0), ("high", 1500.0)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            y = _tone(base + 20 * i, sr=16000)
            if i == 0:
                sf.write(root / cls / f"c{i}.flac", y, 16000)
            elif i == 1:
                sf.write(root / cls / f"c{i}.ogg", y, 16000)
            elif i == 2:
                sf.write(root / cls / f"c{i}.wav", np.stack([y, 0.5 * y], axis=1), 44100)  # stereo, other rate
            else:
                sf.write(root / cls / f"c{i}.wav", y, 16000)
    return root


# --- FSDD on the real data ----------------------------------------------------------------------------

def test_speaker_domain_official_split_metadata_and_features(fsdd_dir):
    d = load_domain("fsdd-george", fsdd_dir)
    assert d.modality == "audio" and d.input_shape == SHAPE
    assert d.x_train.dtype == np.float32 and d.x_train.shape == (450, *SHAPE) and d.x_test.shape == (50, *SHAPE)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert np.allclose(d.x_train.max(axis=(1, 2, 3)), 1.0)  # dB relative to each clip's own peak
    assert d.class_names == [str(i) for i in range(10)]
    assert np.bincount(d.y_train).tolist() == [45] * 10 and np.bincount(d.y_test).tolist() == [5] * 10
    test_idx = {int(Path(p).stem.split("_")[2]) for p in d.meta("test")["path"]}
    train_idx = {int(Path(p).stem.split("_")[2]) for p in d.meta("train")["path"]}
    assert test_idx == set(range(5)) and train_idx == set(range(5, 50))  # the official split
    assert set(d.meta("train")["speaker"]) == {"george"} and set(d.meta("test")["accent"]) == {"GRC/Greek"}
    labels = [int(Path(p).stem.split("_")[0]) for p in d.meta("test")["path"]]
    assert labels == d.y_test.tolist()  # rows and their files stay aligned
    assert "1.5 s" in d.notes["clip_length"] and "cropped" not in d.notes
    assert MODALITY_ENCODERS.get("audio") == "audio-cnn"
    enc = build_encoder("auto", d.input_shape, 64, modality="audio")
    import torch
    assert enc(torch.from_numpy(d.x_test[:4])).shape == (4, 64)


def test_all_speakers_keep_speaker_and_accent_per_row_and_state_cropping(fsdd_dir):
    d = load_domain("fsdd", fsdd_dir)
    assert d.sizes() == {"train": 2700, "test": 300}
    speakers = d.meta("train")["speaker"]
    assert set(speakers) == set(FSDD_SPEAKERS) and (speakers == "lucas").sum() == 450
    accents = dict(zip(d.meta("train")["speaker"], d.meta("train")["accent"]))
    assert accents == {"george": "GRC/Greek", "jackson": "USA/neutral", "lucas": "DEU/German",
                       "nicolas": "BEL/French", "theo": "USA/neutral", "yweweler": "DEU/German"}
    assert "2 of 3,000 clips were longer than 1.5 s" in d.notes["cropped"]  # theo's two 2.28 s clips
    g = load_domain("fsdd-george", fsdd_dir)
    rows = d.meta("test")["speaker"] == "george"
    assert np.array_equal(d.x_test[rows], g.x_test)  # the per-speaker features are reused


def test_features_are_cached_on_disk_keyed_on_the_files(fsdd_dir, prep_cache):
    load_domain("fsdd-jackson", fsdd_dir)
    cached = sorted((prep_cache / "prepared").glob("audio-*.npz"))
    assert cached
    t = time.perf_counter()
    again = load_domain("fsdd-jackson", fsdd_dir, cache=False)  # from the disk cache, not the memory one
    assert time.perf_counter() - t < 2.0
    assert sorted((prep_cache / "prepared").glob("audio-*.npz")) == cached
    assert np.array_equal(again.x_train, load_domain("fsdd-jackson", fsdd_dir).x_train)


def test_metadata_is_a_literal_never_executed(tmp_path):
    p = tmp_path / "metadata.py"
    marker = tmp_path / "ran"
    p.write_text(f'"""doc"""\nopen({str(marker)!r}, "w").write("x")\n'
                 "metadata = {'ann': {'gender': 'female', 'accent': 'IRL/Irish', 'language': 'english'}}\n")
    assert fsdd_metadata(p) == {"ann": {"gender": "female", "accent": "IRL/Irish", "language": "english"}}
    assert not marker.exists()
    p.write_text("metadata = dict(ann=__import__('os').getcwd())\n")
    with pytest.raises(DataError, match="no speaker dict literal"):
        fsdd_metadata(p)
    with pytest.raises(DataError, match="missing .*metadata.py.*Free Spoken Digit Dataset"):
        fsdd_metadata(tmp_path / "nope" / "metadata.py")


def test_missing_recordings_say_where_to_get_them(tmp_path):
    (tmp_path / "fsdd" / "recordings").mkdir(parents=True)
    with pytest.raises(DataError, match=r"500 of 500 recordings for domain fsdd-theo are missing.*v1\.0\.10"):
        load_domain("fsdd-theo", tmp_path)


# --- shifts: hand-measured on tones, then on the real domains ---------------------------------------------

def _peak_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)[spec.argmax()])


def test_waveform_shifts_do_what_their_names_say():
    y = _tone(500.0, seconds=1.0)
    noisy = shift_waveform(y, [("noise", 10.0)], "a/clip.wav")
    snr = 10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2))
    assert abs(snr - 10.0) < 0.3
    assert np.array_equal(noisy, shift_waveform(y, [("noise", 10.0)], "a/clip.wav"))  # seeded per clip
    assert not np.array_equal(noisy, shift_waveform(y, [("noise", 10.0)], "a/other.wav"))
    fast = shift_waveform(y, [("speed", 2.0)], "c")
    assert abs(len(fast) - len(y) / 2) <= 2 and abs(_peak_hz(fast) - 1000.0) < 15  # tempo and pitch together
    up = shift_waveform(y, [("pitch", 12.0)], "c")
    assert len(up) == len(y) and abs(_peak_hz(up) - 1000.0) < 15  # one octave up, same length
    assert np.allclose(shift_waveform(y, [("gain", -6.0)], "c"), y * 10 ** (-6 / 20), atol=1e-6)
    assert np.abs(shift_waveform(y, [("gain", 20.0)], "c")).max() <= 1.0  # saturates at full scale

    def rms(v):
        return float(np.sqrt(np.mean(v[800:-800] ** 2)))
    for hz, kept in ((100.0, False), (1000.0, True), (3900.0, False)):
        tone = _tone(hz, seconds=1.0)
        ratio = rms(shift_waveform(tone, [("telephone", None)], "c")) / rms(tone)
        assert (ratio > 0.9) if kept else (ratio < 0.3), (hz, ratio)


def test_audio_shifts_by_name_on_a_speaker(fsdd_dir):
    g = load_domain("fsdd-george", fsdd_dir)
    for name in ("fsdd-george:noise=10", "fsdd-george:speed=1.1", "fsdd-george:telephone"):
        d = load_domain(name, fsdd_dir)
        assert d.modality == "audio" and d.x_train.shape == g.x_train.shape
        assert np.abs(d.x_train - g.x_train).mean() > 0.01, name
        assert np.array_equal(d.y_train, g.y_train) and list(d.meta("train")["path"]) == list(g.meta("train")["path"])
        assert d.notes["base"] == "fsdd-george"
    again = load_domain("fsdd-george:noise=10", fsdd_dir, cache=False)
    assert np.array_equal(again.x_test, load_domain("fsdd-george:noise=10", fsdd_dir).x_test)  # deterministic
    slow = load_domain("fsdd-george:speed=0.6", fsdd_dir)
    assert "cropped to their first 1.5 s" in slow.notes["cropped"]  # slowed clips can pass the maximum
    quiet = load_domain("fsdd-george:gain=-6", fsdd_dir)
    assert np.allclose(quiet.x_test, g.x_test, atol=1e-4) and "level invariance" in quiet.notes["gain"]
    wave, sr = clip_waveform(load_domain("fsdd-george:noise=10", fsdd_dir), "test", 0)
    clean, _ = clip_waveform(g, "test", 0)
    assert sr == SAMPLE_RATE and wave.shape == clean.shape and not np.array_equal(wave, clean)
    assert clip_paths(g, "test")[0].name == "0_george_0.wav"


@pytest.mark.parametrize("name, needle", [
    ("fsdd-george:rotate=30", "shift 'rotate' in 'fsdd-george:rotate=30' applies to image domains; 'fsdd-george' is "
                              "an audio domain, whose shifts are: noise, speed, pitch, gain, telephone"),
    ("digits:telephone", "shift 'telephone' in 'digits:telephone' applies to audio domains"),
    ("digits:pitch=2", "applies to audio domains; 'digits' is an image domain"),
    ("fsdd-george:noise=99", "out of range [-20, 60]"),
    ("fsdd-george:telephone=3", "takes no value"),
    ("fsdd-george:speed=fast", "is not a number"),
    ("fsdd-george:echo=1", "unknown shift 'echo'"),
])
def test_shift_names_of_the_other_modality_are_refused(name, needle):
    with pytest.raises(DataError) as e:
        load_domain(name)
    assert needle in str(e.value)


def test_image_shifts_still_work():
    d = load_domain("digits:noise=0.3:rotate=10")
    assert d.modality == "image" and d.x_train.shape[1:] == (1, 8, 8) and d.notes["shifts"] == [["noise", 0.3],
                                                                                               ["rotate", 10.0]]


# --- a user's folder ----------------------------------------------------------------------------------

def test_user_audio_folder_any_rate_stereo_flac_ogg(tmp_path):
    root = _folder(tmp_path / "tones")
    sf.write(root / "low" / "long.wav", _tone(320.0, seconds=2.5), SAMPLE_RATE)
    (root / "low" / "readme.txt").write_text("not a clip")
    d = load_domain(str(root))
    assert d.modality == "audio" and d.input_shape == SHAPE and d.class_names == ["high", "low"]
    assert d.sizes()["train"] + d.sizes()["test"] == 11
    assert "resampled to 8000 Hz" in d.notes["resampled"] and "mixed down" in d.notes["mixed_down"]
    assert d.notes["non_audio_files_skipped"] == 1 and "1 of 11 clips" in d.notes["cropped"]
    assert {Path(p).suffix for p in np.concatenate([d.meta("train")["path"], d.meta("test")["path"]])} == {
        ".flac", ".ogg", ".wav"}
    doms, record = harmonise([d, d.with_arrays(name="copy")])
    assert record["featuriser"]["frames"] == FRAMES and any("cropped" in n for n in record["notes"])
    from lepton.data.custom import register_custom, unregister_custom
    spec = register_custom("my-tones", root)
    assert spec.modality == "audio"
    assert load_domain("my-tones:noise=20").modality == "audio"
    unregister_custom("my-tones")


def test_a_changed_clip_is_featurised_again(tmp_path):
    root = _folder(tmp_path / "tones")
    first = load_domain(str(root), cache=False)
    sf.write(root / "high" / "c3.wav", _tone(700.0, sr=16000), 16000)  # same name, new content
    os.utime(root / "high" / "c3.wav", ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    second = load_domain(str(root), cache=False)
    both = np.concatenate([first.x_train, first.x_test]), np.concatenate([second.x_train, second.x_test])
    assert not np.array_equal(*both)


@pytest.mark.parametrize("bad, needle", [
    ("text", "not a readable audio file"),
    ("header", "header is corrupt"),
    ("empty", "a zero-length clip"),
    ("silent", "a silent clip (every sample is 0"),
])
def test_bad_clips_are_named(tmp_path, bad, needle):
    root = _folder(tmp_path / "tones", n=3)
    p = root / "low" / "bad.wav"
    if bad == "text":
        p.write_text("this is not audio\n" * 20)
    elif bad == "header":
        sf.write(p, _tone(300.0), SAMPLE_RATE)
        raw = bytearray(p.read_bytes())
        raw[12:40] = b"\xff" * 28  # the fmt chunk overwritten
        p.write_bytes(bytes(raw))
    elif bad == "empty":
        sf.write(p, np.zeros(0, np.float32), SAMPLE_RATE)
    else:
        sf.write(p, np.zeros(4000, np.float32), SAMPLE_RATE)
    with pytest.raises(DataError) as e:
        load_domain(str(root))
    assert needle in str(e.value) and "bad.wav" in str(e.value) and "remove it" in str(e.value)


def test_a_folder_with_one_class_of_clips_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "x.wav", _tone(300.0), SAMPLE_RATE)
    with pytest.raises(DataError, match="1 class folder"):
        load_domain(str(tmp_path))


# --- pairing ------------------------------------------------------------------------------------------

def test_audio_does_not_pair_with_images_or_text(fsdd_dir):
    g = load_domain("fsdd-george", fsdd_dir)
    with pytest.raises(DataError, match=r"different modalities: fsdd-george \(audio\), digits \(image\)"):
        harmonise([g, load_domain("digits")])
    text = Domain("notes", "text", ["one", "two", "three", "four"], np.array([0, 1, 0, 1]), ["five", "six"],
                  np.array([0, 1]), ["0", "1"])
    with pytest.raises(DataError, match="different modalities"):
        harmonise([text, g])
    with pytest.raises(DataError, match="scaling 'standard' applies to feature tables"):
        harmonise([g, load_domain("fsdd-jackson", fsdd_dir)], scaling="standard")


def test_prepared_pairs_keep_the_per_row_columns(fsdd_dir):
    names, roles = ["fsdd-jackson", "fsdd-george"], ["source", "target"]
    doms, record = prepare(names, roles, fsdd_dir)
    again, record2 = prepare(names, roles, fsdd_dir)  # from the disk cache
    assert record2["featuriser"]["method"] == "log-mel" and json.dumps(record2)
    assert list(again[1].meta("test")["speaker"]) == ["george"] * 50
    assert np.array_equal(again[1].meta("train")["path"], doms[1].meta("train")["path"])
    assert np.array_equal(again[0].x_test, doms[0].x_test)


# --- end to end -----------------------------------------------------------------------------------------

def test_train_two_speakers_to_a_third_from_the_cli(fsdd_dir, capsys):
    code = main(["--data-dir", str(fsdd_dir), "train", "--source", "fsdd-jackson", "fsdd-lucas", "--target",
                 "fsdd-george", "--method", "source-only", "--steps", "30", "--json", "--no-store", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(out)
    rows = {(r["domain"], r["checkpoint"]): r["accuracy"] for r in res["table"]}
    assert {"fsdd-jackson", "fsdd-lucas", "fsdd-george"} <= {d for d, _ in rows}
    for src in ("fsdd-jackson", "fsdd-lucas"):
        assert rows[(src, "selected")] > 0.2, res["table"]  # chance is 0.1


def test_a_stored_audio_run_gives_the_map_its_speakers_and_clips(fsdd_dir, tmp_path, monkeypatch):
    """The map of a leave-one-speaker-out run can be coloured by speaker and accent, and a selection
    plays its clips: the store reads each snapshot row's speaker and recording back."""
    from lepton.config import RunConfig
    from lepton.kb import KBError, KnowledgeBase
    from lepton.training import train
    monkeypatch.setenv("LEPTON_DATA_DIR", str(fsdd_dir))
    kb = KnowledgeBase(tmp_path / "kb")
    res = train(RunConfig(("fsdd-jackson", "fsdd-lucas"), "fsdd-george", steps=2, eval_cap=100), kb=kb,
                feature_cap=20)
    info = kb.get_run(res.run_id)
    assert info["modality"] == "audio" and info["domains"] == ["fsdd-jackson", "fsdd-lucas", "fsdd-george"]
    snap = kb.load_features(res.run_id)
    for dom, speaker, accent in ((0, "jackson", "USA/neutral"), (2, "george", "GRC/Greek")):
        index = snap["index"][snap["domain"] == dom].astype(int).tolist()
        assert len(index) == 20
        meta = kb.snapshot_meta(res.run_id, dom, index)
        assert meta["speaker"] == [speaker] * len(index) and set(meta["accent"]) == {accent}
        d, rows = kb.snapshot_rows(res.run_id, dom, index)
        assert d.modality == "audio" and [Path(p).name for p in meta["path"]] == \
            [Path(p).name for p in d.meta("test")["path"][rows]]
        assert all(f"_{speaker}_" in Path(p).name for p in meta["path"])  # the recording behind each point
    with pytest.raises(KBError, match="rows outside"):
        kb.snapshot_meta(res.run_id, 2, [10_000])


def test_a_zipped_audio_folder_uploads_as_an_audio_domain(tmp_path):
    """The app's upload route: a zip of root/<class>/<clip> becomes an audio domain, listed as one."""
    import io
    import zipfile

    from lepton.data import user_domains as ud
    root = _folder(tmp_path / "clips")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, Path("clips") / f.relative_to(root))
    home = tmp_path / "home"
    try:
        spec = ud.add_user_domain("my-tones", "tones.zip", buf.getvalue(), home=home)
        assert spec.modality == "audio" and ud.list_user_domains(home)["my-tones"]["kind"] == "audio folder"
        d = load_domain("my-tones")
        assert d.modality == "audio" and d.input_shape == SHAPE and sorted(d.class_names) == ["high", "low"]
    finally:
        ud.remove_user_domain("my-tones", home=home)
