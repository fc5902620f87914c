"""Transferability scores (issue 16, first slice): LogME, LEEP and H-score against hand computations,
and `rank` over a knowledge base of real short runs on the built-in digits."""
import json
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from lepton.cli import main
from lepton.evaluation.transferability import h_score, leep, logme, logme_evidence


def test_logme_evidence_is_the_gaussian_marginal_likelihood_and_logme_maximises_it():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 5))
    y = (f[:, 0] + 0.3 * rng.normal(size=40) > 0).astype(int)
    t = (y == 1).astype(float)
    alpha, beta = 0.7, 2.5
    cov = f @ f.T / alpha + np.eye(40) / beta  # y ~ N(0, F F^T / alpha + I / beta)
    want = multivariate_normal(np.zeros(40), cov).logpdf(t) / 40
    assert logme_evidence(f, t, alpha, beta) == pytest.approx(want, rel=1e-9)
    # LogME's fixed point is the maximum: the evidence of each class at its alpha, beta beats nearby values
    score = logme(f, y, tol=1e-8)
    best = [max(logme_evidence(f, (y == c).astype(float), a, b) for a in np.geomspace(1e-2, 1e2, 41)
                for b in np.geomspace(1e-2, 1e2, 41)) for c in (0, 1)]
    assert score >= np.mean(best) - 1e-6 and score == pytest.approx(np.mean(best), abs=2e-2)


def test_logme_prefers_features_that_carry_the_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    good = np.eye(3)[y] + 0.1 * rng.normal(size=(300, 3))
    noise = rng.normal(size=(300, 3))
    assert logme(good, y) > logme(noise, y) + 0.5
    with pytest.raises(ValueError, match="at least two classes"):
        logme(good, np.zeros(300, int))


def test_leep_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 1, 0])
    joint = np.array([[0.9 + 0.6, 0.1 + 0.4], [0.2, 0.8]]) / 3  # P(y, z)
    cond = joint / joint.sum(0)  # P(y | z)
    want = np.mean([math.log(probs[i] @ cond[y[i]]) for i in range(3)])
    assert leep(probs, y) == pytest.approx(want)
    assert leep(np.eye(2)[y[:2]], y[:2]) == pytest.approx(0.0)  # a source head that already names the classes
    with pytest.raises(ValueError, match="probabilities"):
        leep(np.array([[0.5, 0.7]]), np.array([0]))


def test_h_score_by_hand():
    y = np.repeat(np.arange(4), 25)
    onehot = np.eye(4)[y]  # every feature is its class mean: all the spread lies between classes
    assert h_score(onehot, y) == pytest.approx(3.0)  # the rank of cov(f): classes - 1
    rng = np.random.default_rng(2)
    assert h_score(rng.normal(size=(100, 4)), y) < 0.5
    with pytest.raises(ValueError, match="non-negative"):
        h_score(onehot, -np.ones(100, int))


def test_rank_scores_stored_encoders_and_the_untrained_floor(capsys):
    for args in (["--source", "digits", "--target", "digits-rotated"],
                 ["--source", "digits-rotated", "--target", "digits", "--method", "dann"]):
        assert main(["train", *args, "--epochs", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["rank", "--target", "digits-rotated", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["ranking"]
    assert out["skipped"] == []  # both runs take 8x8 grey digits
    assert len(rows) == 3 and {r["method"] for r in rows} == {"source-only", "dann", "none"}
    assert all(math.isfinite(r[k]) for r in rows for k in ("logme", "leep", "h_score"))
    assert [r["logme"] for r in rows] == sorted((r["logme"] for r in rows), reverse=True)
    by = {r["method"]: r for r in rows}
    assert by["dann"]["logme"] > by["source-only"]["logme"]  # trained on digits-rotated's own labels
    assert main(["rank", "--target", "digits-rotated"]) == 0
    assert "untrained" in capsys.readouterr().out


def test_rank_refuses_an_unlabelled_target_and_an_empty_knowledge_base(tmp_path, capsys):
    p = tmp_path / "nolabels.csv"
    p.write_text("a,b\n" + "".join(f"{i + 1},{i % 3 + 1}\n" for i in range(30)))
    assert main(["rank", "--target", str(p)]) == 2
    assert "transferability scores need the target's labels" in capsys.readouterr().err
    assert main(["rank", "--target", "digits"]) == 2
    assert "no completed image run to rank" in capsys.readouterr().err
