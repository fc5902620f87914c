"""Speech domains: the Free Spoken Digit Dataset by speaker, a user's audio folders, log-mel
features and waveform shifts.

=================  =====================================================  ===========================
domain             files (relative to the data folder)                    what
=================  =====================================================  ===========================
``fsdd-george``    ``fsdd/recordings/{digit}_george_{index}.wav``         one speaker's 500 spoken
``fsdd-jackson``   ... ``_jackson_`` ... (and ``lucas``, ``nicolas``,     digits 0-9 (50 each);
...                ``theo``, ``yweweler``)                                ``fsdd``: all six speakers
``fsdd``           ``fsdd/recordings/*.wav``, ``fsdd/metadata.py``        (3,000 clips)
=================  =====================================================  ===========================

The Free Spoken Digit Dataset v1.0.10 (Z. Jackson et al., repository
Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0): mono 16-bit PCM WAV at 8 kHz, trimmed,
0.14-2.28 s. Official split: recordings with index 0-4 are the test split, 5-49 the training
split (450 train / 50 test per speaker). The speakers' gender and accent come from the distributed
``metadata.py``, parsed as a literal (``ast``), never imported or executed. Each row keeps its
clip's ``path``, ``speaker``, ``gender`` and ``accent`` (:meth:`lepton.data.Domain.meta`), so a
map can be coloured by speaker or accent and a clip can be played (:func:`clip_paths`,
:func:`clip_waveform`). There is no download in this version; a missing file is reported with
where to get the release and the folder to put it in.

**A user's audio**: a folder ``root/<class>/<clip>`` of WAV, FLAC, OGG or AIFF files (whatever
libsndfile reads, through ``soundfile``), any sample rate (resampled to 8 kHz with soxr), mono or
stereo (channels averaged), loaded through :func:`lepton.data.custom.load_custom` like an image
folder; a seeded (seed 0) class-stratified 80/20 split; what was done is stated in ``notes``.

**Features** (:func:`log_mel`): every clip at :data:`SAMPLE_RATE` = 8 kHz is padded with silence
at its end, or cropped to its first :data:`MAX_SECONDS` = 1.5 s (a note counts the cropped clips),
so it holds :data:`MAX_SAMPLES` = 12,000 samples; then a mel power spectrogram (librosa:
Hann window of :data:`N_FFT` = 256 samples = 32 ms, hop :data:`HOP` = 128 samples = 16 ms,
:data:`N_MELS` = 40 mel bands over 0-4 kHz, Slaney mel scale), in dB relative to the clip's own
peak, floored at -:data:`TOP_DB` = -80 dB and mapped to [0, 1] by ``(dB + 80) / 80``. So ``x`` is
float32 ``(N, 1, 40, 94)``, 1 at each clip's loudest time-frequency cell, 0 at or below 80 dB
under it (the padding is 0, like an image's black background). The scaling is per clip, so the
recording level alone does not change the features (``gain`` shows only where it saturates): the
six speakers' recording levels differ by up to 20 dB, and against absolute dB (floored at -80 dBFS)
this scaling transferred better to a held-out speaker in a first try (five speakers -> george,
150 steps, one seed: 80 % against 66 %).
Features are computed once per set of files and shift and kept on disk
(:func:`lepton.data.prepared.cached_arrays`, keyed on every file's path, size and modification
time); raw waveforms are not held in memory.

**Shifts** (:data:`AUDIO_SHIFTS`), composable by name like the image shifts and deterministic
(random draws seeded per clip by the shift spec and the clip's file name), act on the waveform
before featurising: ``fsdd-george:noise=10``, ``fsdd-theo:speed=1.1:telephone``.

=============  ========  =======================================================================
operator       default   effect
=============  ========  =======================================================================
noise=SNR_DB   10        add white Gaussian noise at SNR_DB dB below the clip's mean power
speed=F        1.1       play F times faster (resampled: tempo and pitch change together)
pitch=ST       2         shift the pitch by ST semitones, same duration (librosa phase vocoder)
gain=DB        -6        multiply by ``10^(DB/20)``, saturating at full scale (+-1); the per-clip
                         scaling hides a gain except where it saturates (stated in ``notes``)
telephone      -         300-3400 Hz band-pass (4th-order Butterworth, zero phase, scipy)
=============  ========  =======================================================================
"""
from __future__ import annotations

import ast
import zlib
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .catalog import DOMAINS, DomainSpec, resolve_data_dir
from .domain import DataError, Domain, stratified_split

FSDD_ROOT = Path("fsdd")
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD_PER_DIGIT = 50
FSDD_TEST_INDICES = range(0, 5)  # the official split: indices 0-4 test, 5-49 train
DIGITS = [str(i) for i in range(10)]
FSDD_SOURCE = ("Free Spoken Digit Dataset v1.0.10 (Z. Jackson et al., "
               "github.com/Jakobovski/free-spoken-digit-dataset; CC BY-SA 4.0)")
FSDD_WHERE = ("the Free Spoken Digit Dataset v1.0.10 release "
              "(https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz: "
              "its recordings/ folder and metadata.py)")

#: Feature settings (see the module docstring); part of every cache key.
SAMPLE_RATE = 8000  # Hz
MAX_SECONDS = 1.5
MAX_SAMPLES = int(round(SAMPLE_RATE * MAX_SECONDS))  # 12,000
N_FFT = 256  # samples (32 ms)
HOP = 128  # samples (16 ms)
N_MELS = 40
TOP_DB = 80.0
FRAMES = 1 + MAX_SAMPLES // HOP  # 94 (librosa's centred frames)
SILENT_PEAK = 10 ** (-80 / 20)  # a clip whose peak is below -80 dBFS is taken as silent
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff")
FEATURES = {"method": "log-mel", "sample_rate": SAMPLE_RATE, "max_seconds": MAX_SECONDS, "n_fft": N_FFT,
            "hop_length": HOP, "n_mels": N_MELS, "top_db": TOP_DB, "frames": FRAMES,
            "length": "padded with silence at the end or cropped to the first max_seconds",
            "scaling": "dB relative to each clip's peak, floored at -top_db, mapped to [0, 1]"}
FEATURES_NOTE = (f"log-mel spectrograms ({N_MELS} mel bands, {N_FFT}-sample window, {HOP}-sample hop at "
                 f"{SAMPLE_RATE} Hz; each clip padded or cropped to {MAX_SECONDS:g} s = {FRAMES} frames; dB relative "
                 f"to the clip's peak, floored at -{TOP_DB:g} dB, scaled to [0, 1])")


def _libs():
    """``(soundfile, librosa)``, imported on first use, with what to install when missing."""
    try:
        import librosa
        import soundfile
    except ImportError as e:
        raise DataError(f"audio domains need librosa and soundfile ({e}); install them: "
                        "pip install librosa soundfile") from None
    return soundfile, librosa


# ----------------------------------------------------------------------------- reading clips

def read_clip(path: Path, sample_rate: int = SAMPLE_RATE) -> Tuple[np.ndarray, int, int]:
    """Read one audio file as a mono waveform at ``sample_rate``.

    Parameters
    ----------
    path : pathlib.Path
        A file libsndfile reads (WAV, FLAC, OGG, AIFF, ...).
    sample_rate : int
        Hz to resample to (soxr, librosa's ``soxr_hq``).

    Returns
    -------
    wave : np.ndarray
        float32 ``(T,)`` in [-1, 1] (channels averaged).
    rate : int
        The file's own sample rate, Hz.
    channels : int
        The file's channel count.

    Raises
    ------
    DataError
        Not an audio file or a corrupt header (libsndfile's reason), no samples, or a silent clip
        (peak below -80 dBFS); the message names the file.
    """
    sf, librosa = _libs()
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    except (RuntimeError, OSError, ValueError, EOFError) as e:
        why = getattr(e, "error_string", None) or str(e).split(": ", 1)[-1]
        raise DataError(f"{path}: not a readable audio file, or its header is corrupt (libsndfile: {why}); "
                        "replace it with a WAV, FLAC or OGG clip or remove it") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: a zero-length clip (no samples); remove it or record it again")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if int(rate) != sample_rate:
        wave = librosa.resample(wave, orig_sr=int(rate), target_sr=sample_rate)
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    if not np.isfinite(peak):
        raise DataError(f"{path}: holds NaN or infinite samples; replace it or remove it")
    if peak < SILENT_PEAK:
        level = "every sample is 0" if peak == 0 else f"its peak is {20 * np.log10(peak):.0f} dBFS"
        raise DataError(f"{path}: a silent clip ({level}, below -80 dBFS); remove it or record it again")
    return np.ascontiguousarray(wave, dtype=np.float32), int(rate), int(data.shape[1])


def fit_length(wave: np.ndarray, n: int = MAX_SAMPLES) -> Tuple[np.ndarray, bool]:
    """Pad ``wave`` with zeros at its end, or crop it to its first ``n`` samples.

    Returns
    -------
    wave : np.ndarray
        float32 ``(n,)``.
    cropped : bool
        True when samples were cut.
    """
    if len(wave) >= n:
        return wave[:n].astype(np.float32, copy=False), len(wave) > n
    return np.pad(wave, (0, n - len(wave))).astype(np.float32), False


def log_mel(waves: np.ndarray) -> np.ndarray:
    """Per-clip log-mel spectrograms in [0, 1] (librosa; see the module docstring).

    Parameters
    ----------
    waves : np.ndarray
        float32 ``(N, MAX_SAMPLES)`` at :data:`SAMPLE_RATE` (:func:`fit_length`).

    Returns
    -------
    np.ndarray
        float32 ``(N, 1, N_MELS, FRAMES)``: ``(dB - peak dB + TOP_DB) / TOP_DB`` clipped to [0, 1].
    """
    _, librosa = _libs()
    if len(waves) == 0:
        return np.zeros((0, 1, N_MELS, FRAMES), np.float32)
    s = librosa.feature.melspectrogram(y=np.asarray(waves, np.float32), sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                       n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2, power=2.0)  # (N, M, F)
    db = librosa.power_to_db(s, ref=1.0, amin=1e-10, top_db=None)  # (N, M, F), absolute dB
    db -= db.max(axis=(1, 2), keepdims=True)  # relative to each clip's peak
    x = np.clip((db + TOP_DB) / TOP_DB, 0.0, 1.0)
    x[s.max(axis=(1, 2)) <= 1e-10] = 0.0  # an all-zero clip (never read: silent clips are refused) is 0, not 1
    return x[:, None].astype(np.float32)


# ----------------------------------------------------------------------------- shifts on waveforms

def _noise(y, v, rng):
    power = float(np.mean(y.astype(np.float64) ** 2))
    return y + rng.normal(0.0, np.sqrt(power / 10 ** (v / 10)), size=y.shape).astype(np.float32)


def _speed(y, v, rng):
    _, librosa = _libs()
    return librosa.resample(y, orig_sr=SAMPLE_RATE, target_sr=SAMPLE_RATE / v)


def _pitch(y, v, rng):
    _, librosa = _libs()
    return librosa.effects.pitch_shift(y, sr=SAMPLE_RATE, n_steps=v, n_fft=N_FFT, hop_length=HOP // 2)


def _gain(y, v, rng):
    return np.clip(y * 10 ** (v / 20), -1.0, 1.0)


def _telephone(y, v, rng):
    from scipy.signal import butter, sosfiltfilt
    sos = butter(4, [300.0, 3400.0], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfiltfilt(sos, y)


#: Audio shift operators: name -> (function ``(wave, value, rng) -> wave``, default value or
#: ``None`` for a flag, valid range), the format of :data:`lepton.data.shifts.SHIFTS`.
AUDIO_SHIFTS: Dict[str, Tuple[Callable, Optional[float], Tuple[float, float]]] = {
    "noise": (_noise, 10.0, (-20.0, 60.0)),
    "speed": (_speed, 1.1, (0.5, 2.0)),
    "pitch": (_pitch, 2.0, (-12.0, 12.0)),
    "gain": (_gain, -6.0, (-40.0, 40.0)),
    "telephone": (_telephone, None, (0, 0)),
}


def _spec(ops: Sequence[Tuple[str, Optional[float]]]) -> str:
    return ":".join(op if v is None else f"{op}={v:g}" for op, v in ops)


def _clip_id(path: Path) -> str:
    """``<folder>/<file>``: what seeds a clip's random draws (the same clip under any domain name)."""
    return "/".join(Path(path).parts[-2:])


def shift_waveform(wave: np.ndarray, ops: Sequence[Tuple[str, Optional[float]]], clip_id: str) -> np.ndarray:
    """Apply audio shift operators left to right to one clip at :data:`SAMPLE_RATE`.

    Parameters
    ----------
    wave : np.ndarray
        float32 ``(T,)``.
    ops : sequence of (str, float or None)
        From :func:`lepton.data.shifts.parse_name`.
    clip_id : str
        Seeds the random draws with the shift spec (the same clip always gets the same noise).

    Returns
    -------
    np.ndarray
        float32 ``(T',)`` (``speed`` changes the length).
    """
    rng = np.random.default_rng(zlib.crc32(f"{_spec(ops)}|{clip_id}".encode()))
    for op, v in ops:
        wave = np.asarray(AUDIO_SHIFTS[op][0](wave, v, rng), dtype=np.float32)
    return wave


# ----------------------------------------------------------------------------- features, cached

def clip_features(paths: Sequence[Path], ops: Sequence[Tuple[str, Optional[float]]] = (),
                  fix: str = "") -> Dict[str, np.ndarray]:
    """Read, shift and featurise clips, once per set of files and shift (disk cache).

    Parameters
    ----------
    paths : sequence of pathlib.Path
        Audio files, in row order.
    ops : sequence of (str, float or None)
        Audio shifts applied to each waveform before featurising.
    fix : str
        What the error says to do about bad files, beside each file's own advice.

    Returns
    -------
    dict
        ``x`` float32 ``(N, 1, N_MELS, FRAMES)`` (:func:`log_mel`); ``seconds`` float32 ``(N,)``
        each clip's length after the shifts, before padding or cropping; ``rate`` and
        ``channels`` int64 ``(N,)`` of each file.

    Raises
    ------
    DataError
        Unreadable, zero-length or silent files (up to 5 named, with the count) and ``fix``.
    """
    from .prepared import cached_arrays

    def compute() -> Dict[str, np.ndarray]:
        waves, secs, rates, chans, bad = [], [], [], [], []
        for p in paths:
            try:
                w, rate, ch = read_clip(p)
            except DataError as e:
                bad.append(str(e))
                continue
            w = shift_waveform(w, ops, _clip_id(p)) if ops else w
            secs.append(len(w) / SAMPLE_RATE)
            waves.append(fit_length(w)[0])
            rates.append(rate)
            chans.append(ch)
        if bad:
            raise DataError(f"{len(bad)} bad audio file(s): {'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}"
                            + (f"; {fix}" if fix else ""))
        x = log_mel(np.stack(waves)) if waves else log_mel(np.zeros((0, MAX_SAMPLES), np.float32))
        return {"x": x, "seconds": np.asarray(secs, np.float32), "rate": np.asarray(rates, np.int64),
                "channels": np.asarray(chans, np.int64)}

    params = {"features": FEATURES, "ops": [[op, v] for op, v in ops]}
    return cached_arrays("audio", [Path(p) for p in paths], params, compute)


def _length_notes(seconds: np.ndarray, notes: Dict[str, object]) -> None:
    """State the fixed length, and how many clips were cropped to it."""
    notes["clip_length"] = (f"each clip padded with silence at its end or cropped to its first {MAX_SECONDS:g} s "
                            f"({MAX_SAMPLES:,} samples at {SAMPLE_RATE} Hz, {FRAMES} frames)")
    long = int((seconds > MAX_SECONDS + 1e-9).sum())
    notes.pop("cropped", None)
    if long:
        notes["cropped"] = (f"{long} of {len(seconds):,} clips were longer than {MAX_SECONDS:g} s (the longest "
                            f"{float(seconds.max()):.2f} s) and were cropped to their first {MAX_SECONDS:g} s")


def _split_arrays(name: str, x: np.ndarray, y: np.ndarray, meta: Dict[str, np.ndarray], tr: np.ndarray,
                  te: np.ndarray, class_names: List[str], source: str, notes: Dict[str, object]) -> Domain:
    return Domain(name, "audio", x[tr], y[tr], x[te], y[te], list(class_names), source=source, notes=notes,
                  meta_train={k: v[tr] for k, v in meta.items()}, meta_test={k: v[te] for k, v in meta.items()})


# ----------------------------------------------------------------------------- FSDD

def fsdd_metadata(path: Path) -> Dict[str, Dict[str, str]]:
    """The speakers' metadata of FSDD's ``metadata.py``, parsed as a literal, never executed.

    The file is ``metadata = {speaker: {"gender": ..., "accent": ..., "language": ...}}`` (a
    docstring may precede it); the dict's syntax tree is evaluated with ``ast.literal_eval``.

    Returns
    -------
    dict
        speaker -> {field: str}.

    Raises
    ------
    DataError
        Missing file, or no dict literal assigned to ``metadata`` in it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        raise DataError(f"missing {path} for the FSDD domains: get it from {FSDD_WHERE} and put it in "
                        f"{Path(path).parent}") from None
    try:
        tree = ast.parse(text)
        node = next((n.value for n in tree.body if isinstance(n, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "metadata" for t in n.targets)),
                    tree.body[-1].value if tree.body and isinstance(tree.body[-1], ast.Expr) else None)
        meta = ast.literal_eval(node) if node is not None else None
    except (SyntaxError, ValueError, TypeError):
        meta = None
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise DataError(f"{path} holds no speaker dict literal (metadata = {{...}}); replace it with the original "
                        f"from {FSDD_WHERE}")
    return {str(k): {str(f): str(v) for f, v in d.items()} for k, d in meta.items()}


def fsdd_files(speakers: Sequence[str], data_dir=None) -> List[Path]:
    """The recordings of ``speakers`` (speaker, digit, index order) and ``metadata.py``."""
    root = resolve_data_dir(data_dir) / FSDD_ROOT
    clips = [root / "recordings" / f"{d}_{s}_{i}.wav" for s in speakers for d in range(10)
             for i in range(FSDD_PER_DIGIT)]
    return clips + [root / "metadata.py"]


def load_fsdd(speakers: Sequence[str], name: str, data_dir=None) -> Domain:
    """Spoken digits of some FSDD speakers (Z. Jackson et al., Free Spoken Digit Dataset v1.0.10).

    Parameters
    ----------
    speakers : sequence of str
        Speakers of :data:`FSDD_SPEAKERS`.
    name : str
        The domain's name.
    data_dir : path-like, optional
        The data folder (see :func:`lepton.data.resolve_data_dir`).

    Returns
    -------
    Domain
        ``modality="audio"``, ``x`` float32 ``(N, 1, 40, 94)`` (:func:`log_mel`), ``y`` int64 digits
        0-9 (classes ``"0"``..``"9"``); the official split, 450 train / 50 test per speaker; per-row
        ``path``, ``speaker``, ``gender``, ``accent`` in :meth:`Domain.meta`.

    Raises
    ------
    DataError
        A missing recording or ``metadata.py`` (naming it, where to get the release and where to put
        it), an unreadable or silent recording.
    """
    files = fsdd_files(speakers, data_dir)
    clips, meta_path = files[:-1], files[-1]
    missing = [p for p in clips if not p.exists()]
    if missing:
        raise DataError(f"{len(missing)} of {len(clips):,} recordings for domain {name} are missing (e.g. "
                        f"{missing[0]}): get {FSDD_WHERE} and put the recordings in {missing[0].parent}")
    speaker_meta = fsdd_metadata(meta_path)
    parts: Dict[str, list] = {"x": [], "y": [], "test": [], "seconds": []}
    cols: Dict[str, list] = {"path": [], "speaker": [], "gender": [], "accent": []}
    for s in speakers:  # one cache entry per speaker: fsdd reuses the speakers' features
        paths = [p for p in clips if p.name.split("_")[1] == s]
        got = clip_features(paths, fix=f"replace them with the originals from {FSDD_WHERE}")
        info = speaker_meta.get(s, {})
        parts["x"].append(got["x"])
        parts["seconds"].append(got["seconds"])
        for p in paths:
            digit, _, index = p.stem.split("_")
            parts["y"].append(int(digit))
            parts["test"].append(int(index) in FSDD_TEST_INDICES)
            cols["path"].append(str(p))
            cols["speaker"].append(s)
            cols["gender"].append(info.get("gender", "unknown"))
            cols["accent"].append(info.get("accent", "unknown"))
    x, test = np.concatenate(parts["x"]), np.asarray(parts["test"])
    notes: Dict[str, object] = {
        "split": "official: recordings 0-4 of each speaker and digit are test, 5-49 train",
        "features": FEATURES_NOTE, "speakers": {s: speaker_meta.get(s, {}) for s in speakers}}
    _length_notes(np.concatenate(parts["seconds"]), notes)
    meta = {k: np.asarray(v) for k, v in cols.items()}
    return _split_arrays(name, x, np.asarray(parts["y"], np.int64), meta, np.flatnonzero(~test),
                         np.flatnonzero(test), DIGITS, FSDD_SOURCE, notes)


# ----------------------------------------------------------------------------- a user's folder

def folder_kind(root: Path) -> str:
    """``"audio"`` when the class folders of ``root`` hold more audio clips (:data:`AUDIO_EXTS`) than
    images, else ``"image"`` (what :func:`lepton.data.custom.load_custom` reads the folder as)."""
    from .custom import IMAGE_EXTS
    counts: Counter = Counter()
    for d in Path(root).iterdir():
        if d.is_dir() and not d.name.startswith("."):
            for p in d.rglob("*"):
                ext = p.suffix.lower()
                counts["audio" if ext in AUDIO_EXTS else "image" if ext in IMAGE_EXTS else "other"] += 1
    return "audio" if counts["audio"] > counts["image"] else "image"


def load_audio_folder(root: Path, name: str) -> Domain:
    """A domain from a folder of clips laid out ``root/<class>/<clip>`` (any sample rate, mono or stereo).

    Parameters
    ----------
    root : pathlib.Path
        Class sub-folders (sorted names are the classes) holding :data:`AUDIO_EXTS` files; other
        files are skipped and counted in ``notes``.
    name : str
        The domain's name.

    Returns
    -------
    Domain
        ``modality="audio"``, ``x`` float32 ``(N, 1, 40, 94)`` (:func:`log_mel`), labels int64; a
        seeded (seed 0) class-stratified 80/20 split; per-row ``path`` (:meth:`Domain.meta`);
        ``notes`` state the resampling, the mixing down, the fixed length and any cropping.

    Raises
    ------
    DataError
        No class folders, fewer than 2 classes with clips, files that are not audio, corrupt,
        zero-length or silent (up to 5 named, with the count).
    """
    from .custom import SPLIT_SEED, TEST_FRACTION, _scan_folder
    classes, items, empty, skipped = _scan_folder(root, AUDIO_EXTS, "clip.wav")
    paths, labels = [p for p, _ in items], [c for _, c in items]
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s) with audio clips ({', '.join(AUDIO_EXTS)}); "
                        "at least 2 are needed")
    got = clip_features(paths)
    rates = Counter(int(r) for r in got["rate"])
    notes: Dict[str, object] = {"layout": "root/<class>/<clip>", "features": FEATURES_NOTE,
                                "sample_rates": {str(r): n for r, n in sorted(rates.items())}}
    resampled = sum(n for r, n in rates.items() if r != SAMPLE_RATE)
    if resampled:
        notes["resampled"] = f"{resampled} clip(s) resampled to {SAMPLE_RATE} Hz (soxr)"
    stereo = int((got["channels"] > 1).sum())
    if stereo:
        notes["mixed_down"] = f"{stereo} clip(s) with 2 or more channels mixed down to mono (channel mean)"
    if skipped:
        notes["non_audio_files_skipped"] = skipped
    if empty:
        notes["empty_classes_left_out"] = empty
    _length_notes(got["seconds"], notes)
    y = np.asarray(labels, np.int64)
    try:
        tr, te = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
        how = "class-stratified"
    except ValueError:  # too few clips per class to stratify
        from sklearn.model_selection import train_test_split
        tr, te = map(np.sort, train_test_split(np.arange(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED))
        how = "random (too few clips per class to stratify)"
    notes["split"] = f"{how} 80/20, seed {SPLIT_SEED}"
    meta = {"path": np.asarray([str(p) for p in paths])}
    return _split_arrays(name, got["x"], y, meta, tr, te, classes, str(root), notes)


# ----------------------------------------------------------------------------- shifted domains, playback, pairing

def shift_audio_domain(domain: Domain, ops: Sequence[Tuple[str, Optional[float]]], name: str) -> Domain:
    """An audio domain whose clips are read again, shifted as waveforms and featurised.

    Parameters
    ----------
    domain : Domain
        An audio domain with per-row ``path`` columns (:meth:`Domain.meta`).
    ops : sequence of (str, float or None)
        Audio shifts (:data:`AUDIO_SHIFTS`), applied left to right.
    name : str
        The new domain's name.

    Returns
    -------
    Domain
        Same rows, labels and per-row columns; ``notes["shifts"]`` and ``notes["base"]`` set and the
        length notes recomputed (``speed`` below 1 can lengthen clips past the maximum).

    Raises
    ------
    DataError
        A domain without clip paths; clips that cannot be read.
    """
    paths = {s: clip_paths(domain, s) for s in ("train", "test")}
    got = clip_features(paths["train"] + paths["test"], ops)
    n = len(paths["train"])
    notes = dict(domain.notes, shifts=[[op, v] for op, v in ops], base=domain.name)
    if any(op == "gain" for op, _ in ops):
        notes["gain"] = ("the features are scaled per clip (dB relative to its peak), so a gain changes them only "
                         "where it saturates (a positive gain past full scale); it tests level invariance")
    _length_notes(got["seconds"], notes)
    return domain.with_arrays(name=name, notes=notes, x_train=got["x"][:n], x_test=got["x"][n:])


def clip_paths(domain: Domain, split: str) -> List[Path]:
    """The audio file behind each row of a split (for playback), in row order.

    Raises
    ------
    DataError
        The domain keeps no clip paths (it is not an audio domain).
    """
    meta = domain.meta(split)
    if "path" not in meta:
        raise DataError(f"domain {domain.name!r} keeps no clip paths; only audio domains do")
    return [Path(p) for p in meta["path"]]


def clip_waveform(domain: Domain, split: str, row: int) -> Tuple[np.ndarray, int]:
    """One row's clip as the model heard it, before padding or cropping (for playback).

    Returns
    -------
    wave : np.ndarray
        float32 ``(T,)`` at :data:`SAMPLE_RATE`, mono, with the domain's shifts applied.
    sample_rate : int
        Hz.

    Raises
    ------
    DataError
        As :func:`clip_paths` and :func:`read_clip`.
    """
    path = clip_paths(domain, split)[int(row)]
    wave, _, _ = read_clip(path)
    ops = [(op, v) for op, v in domain.notes.get("shifts", [])]
    return (shift_waveform(wave, ops, _clip_id(path)) if ops else wave), SAMPLE_RATE


def harmonise_audio(domains: List[Domain], record: Dict[str, object]) -> List[Domain]:
    """Check that audio domains share one feature shape and record the featuriser (pairing).

    Every audio domain is featurised with the same settings (:data:`FEATURES`), so nothing is
    resized; ``record`` gets ``featuriser``, ``featuriser_note``, ``scaling`` (none beyond the
    per-clip scaling) and a note per domain whose clips were cropped.

    Raises
    ------
    DataError
        Different input shapes (features made by another version).
    """
    shapes = {d.input_shape for d in domains}
    if len(shapes) > 1:
        raise DataError("audio feature shapes differ: " + ", ".join(f"{d.name} {d.input_shape}" for d in domains)
                        + "; clear the cache folder and load the domains again")
    record["featuriser"] = dict(FEATURES)
    record["featuriser_note"] = f"audio featurised as {FEATURES_NOTE}"
    record["scaling"] = {"method": "none", "fitted_on": "nothing: each clip scaled by its own peak"}
    record["scaling_note"] = record["featuriser_note"]
    for d in domains:
        if "cropped" in d.notes:
            record["notes"].append(f"in {d.name}, {d.notes['cropped']}")
    return domains


# ----------------------------------------------------------------------------- registration

#: registry name -> (speakers, description)
FSDD_DOMAINS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    **{f"fsdd-{s}": ((s,), f"spoken digits 0-9 by {s} (FSDD, 500 clips)") for s in FSDD_SPEAKERS},
    "fsdd": (FSDD_SPEAKERS, "spoken digits 0-9 by 6 speakers (FSDD, 3,000 clips)"),
}


def _loader(name: str, speakers: Tuple[str, ...]):
    def load(data_dir: Path) -> Domain:
        return load_fsdd(speakers, name, data_dir)
    return load


def _files(speakers: Tuple[str, ...]):
    def files(data_dir: Path) -> List[Path]:
        return fsdd_files(speakers, data_dir)
    return files


def _needs(data_dir: Path) -> List[Path]:
    """What marks FSDD present in listings (its 3,000 clips are checked when loaded)."""
    root = resolve_data_dir(data_dir) / FSDD_ROOT
    return [root / "recordings", root / "metadata.py"]


def _register() -> None:
    for name, (speakers, desc) in FSDD_DOMAINS.items():
        if name not in DOMAINS:
            DOMAINS.add(name, DomainSpec(name, "audio", desc, _loader(name, speakers), _files(speakers), _needs))


_register()
