"""Quality thresholds on small real data (the skada habit): adaptation must actually help."""
import pytest

from lepton.config import RunConfig
from lepton.training import fit


@pytest.mark.slow
def test_adaptation_beats_source_only_on_digits_rotated():
    """On the built-in digits -> digits-rotated (45 degrees), DANN's label-free-chosen model beats
    source-only's by a clear margin (measured seed 0, 15 epochs: 0.272 vs 0.365)."""
    acc = {}
    for m in ("source-only", "dann"):
        r = fit(RunConfig("digits", "digits-rotated", m, epochs=15, seed=0))
        acc[m] = r.checkpoints["selected"]["target_acc"]
    assert acc["dann"] > acc["source-only"] + 0.05, acc


def test_target_only_oracle_is_an_upper_bound_on_digits_inverted():
    so = fit(RunConfig("digits", "digits-inverted", "source-only", epochs=5)).checkpoints["selected"]["target_acc"]
    oracle = fit(RunConfig("digits", "digits-inverted", "target-only", epochs=5)).checkpoints["selected"]["target_acc"]
    assert oracle > 0.8 and oracle > so + 0.3, (so, oracle)


def test_the_default_lesson_shows_transfer_working():
    """The app's default (lepton.lessons "mild"): DANN beats source-only by >= 15 points within seconds
    (measured 33.1 -> 70.7 %, seed 0, 10 epochs, about 3 s of training each on this 2-core machine)."""
    from lepton.lessons import LESSONS
    mild = LESSONS[0]
    so = fit(RunConfig(mild.source, mild.target, "source-only", epochs=mild.epochs, seed=0))
    da = fit(RunConfig(mild.source, mild.target, mild.method, epochs=mild.epochs, seed=0))
    gain = da.checkpoints["selected"]["target_acc"] - so.checkpoints["selected"]["target_acc"]
    assert gain >= 0.15, gain
