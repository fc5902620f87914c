"""Maps (UMAP / PCA / t-SNE coordinates) and shift statistics of stored runs."""
import threading
import time

import numpy as np
import pytest

from lepton.config import RunConfig
from lepton.evaluation import projection
from lepton.evaluation.projection import aligned_maps, compute_map, embed
from lepton.evaluation.shift import domain_shift, shift_statistics
from lepton.kb import KBError, KnowledgeBase
from lepton.training.recorder import KBRecorder
from lepton.training import fit

COLUMNS = ["x", "y", "domain", "domain_id", "role", "label", "label_id", "pred", "pred_id", "correct", "row", "index",
           "epoch"]


def _record(kb, method, epochs, **kw):
    rec = KBRecorder(kb, **kw)
    fit(RunConfig("digits", "digits-rotated", method, epochs=epochs, seed=0), [rec])
    return rec.run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A dann run with every test row snapshotted and a tiny one (8 rows per domain)."""
    kb = KnowledgeBase(tmp_path_factory.mktemp("kb_maps"))
    return kb, _record(kb, "dann", 4), _record(kb, "source-only", 2, feature_cap=8)


def test_pca_map_rows_match_the_snapshot(runs):
    kb, rid, _ = runs
    df = compute_map(kb, rid, method="pca")
    snap = kb.load_features(rid)
    assert list(df.columns) == COLUMNS and len(df) == len(snap["labels"]) == 1080
    assert (df.epoch == 4).all() and df.row.tolist() == list(range(1080))
    np.testing.assert_array_equal(df.label_id, snap["labels"])
    np.testing.assert_array_equal(df["index"], snap["index"])
    assert (df.correct == (snap["labels"] == snap["preds"])).all()
    assert set(df.domain) == {"digits", "digits-rotated"} and set(df.role) == {"source", "target"}
    assert df.label.iloc[0] == snap["class_names"][snap["labels"][0]]
    assert np.isfinite(df[["x", "y"]].to_numpy()).all() and df[["x", "y"]].std().min() > 0
    target = compute_map(kb, rid, epoch=0, method="pca", domains=["target"])
    assert len(target) == 540 and (target.domain_id == 1).all() and target.row.min() == 540
    assert (target.epoch == 0).all()


def test_map_is_cached_on_disk_and_reopens_fast(runs, monkeypatch):
    kb, rid, small = runs
    cached = lambda: len(list((kb.run_dir(rid) / "maps").glob("map-pca-*.npz")))  # noqa: E731
    before = cached()
    first = compute_map(kb, rid, epoch=2, method="pca")
    assert cached() == before + 1
    monkeypatch.setattr(projection, "embed", lambda *a, **k: pytest.fail("the cached map was recomputed"))
    t0 = time.perf_counter()
    again = compute_map(KnowledgeBase(kb.home), rid, epoch=2, method="pca")
    assert time.perf_counter() - t0 < 0.2
    np.testing.assert_array_equal(first[["x", "y"]].to_numpy(), again[["x", "y"]].to_numpy())
    monkeypatch.undo()
    compute_map(kb, rid, epoch=2, method="pca", domains=["source"])  # another key, another file
    assert cached() == before + 2
    t1 = compute_map(kb, small, method="tsne", params={"perplexity": 5.0})
    t2 = compute_map(kb, small, method="tsne", params={"perplexity": 2.0})
    assert not np.allclose(t1[["x", "y"]].to_numpy(), t2[["x", "y"]].to_numpy())


@pytest.mark.slow
def test_umap_maps_are_seeded_and_handle_tiny_inputs(runs):
    kb, _, small = runs
    a = compute_map(kb, small)  # umap by default; 16 points, n_neighbors capped to 15
    b = compute_map(kb, small, cache=False)
    assert len(a) == 16 and np.isfinite(a[["x", "y"]].to_numpy()).all()
    np.testing.assert_allclose(a[["x", "y"]].to_numpy(), b[["x", "y"]].to_numpy(), atol=1e-4)
    assert len(compute_map(kb, small, domains=["digits"])) == 8  # fewer points than n_neighbors
    rng = np.random.default_rng(0)
    one_class = rng.normal(size=(5, 12)).astype(np.float32)
    assert embed(one_class).shape == (5, 2)
    with pytest.raises(projection.DegenerateFeaturesError, match="collapsed"):  # all rows equal: refused
        embed(np.ones((4, 3)))
    with pytest.raises(ValueError, match="at least 3 points, got 2"):
        embed(one_class[:2])
    assert projection.warm_up() > 0


def test_concurrent_umap_fits_are_serialised(runs, monkeypatch):
    import umap
    kb, _, small = runs
    errors, out, active, peak = [], [], [0], [0]
    real = umap.UMAP.fit_transform

    def watched(self, *a, **k):  # counts fits running at the same moment
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return real(self, *a, **k)
        finally:
            active[0] -= 1

    monkeypatch.setattr(umap.UMAP, "fit_transform", watched)

    def work():
        try:
            out.append(compute_map(kb, small, cache=False))
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(out) == 3 and peak[0] == 1


@pytest.mark.slow
def test_aligned_maps_move_smoothly(runs):
    kb, rid, small = runs
    df = aligned_maps(kb, rid, method="pca")
    assert sorted(df.epoch.unique()) == [0, 1, 2, 3, 4] and len(df) == 5 * 1080 and list(df.columns) == COLUMNS

    def step(frames):  # mean displacement of the same points between consecutive frames
        xy = [f[["x", "y"]].to_numpy() for _, f in frames.groupby("epoch")]
        return np.mean([np.linalg.norm(b - a, axis=1).mean() for a, b in zip(xy, xy[1:])])

    independent = [compute_map(kb, rid, epoch=e, method="pca") for e in range(5)]
    import pandas as pd
    assert step(df) < step(pd.concat(independent))
    u = aligned_maps(kb, small, method="umap")  # AlignedUMAP, identity relations
    assert sorted(u.epoch.unique()) == [0, 1, 2] and np.isfinite(u[["x", "y"]].to_numpy()).all()
    assert len(aligned_maps(kb, small, epochs=[0, 2], method="tsne")) == 32


def test_bad_map_requests(runs, tmp_path):
    kb, rid, _ = runs
    with pytest.raises(ValueError, match="unknown map method 'mds'"):
        compute_map(kb, rid, method="mds")
    with pytest.raises(ValueError, match="unknown umap map parameter n_neighbours; valid: n_neighbors"):
        compute_map(kb, rid, params={"n_neighbours": 5})
    with pytest.raises(ValueError, match="domain 'svhn' is not in this run"):
        compute_map(kb, rid, method="pca", domains=["svhn"])
    with pytest.raises(KBError, match="kb list"):
        compute_map(kb, "20990101-000000-000000", method="pca")
    kb2 = KnowledgeBase(tmp_path)
    bare = _record(kb2, "source-only", 1, feature_cap=0)
    with pytest.raises(KBError, match="stored no feature snapshots"):
        compute_map(kb2, bare, method="pca")


def test_shift_statistics_show_dann_aligning_classes(runs):
    kb, rid, _ = runs
    st = shift_statistics(kb, rid)
    b, a = st["before"], st["after"]
    assert (b["epoch"], a["epoch"]) == (0, 4) and st["source"] == "digits" and st["target"] == "digits-rotated"
    assert 0.0 <= a["proxy_a_distance"] <= 2.0 and a["mmd"] >= 0
    assert a["mmd_relative"] < 0.5 * b["mmd_relative"]
    assert a["mean_class_distance"] < 0.9 * b["mean_class_distance"]
    pc = st["per_class"]
    assert list(pc["class"]) == [str(i) for i in range(10)] and (pc.n_source > 0).all()
    assert pc.after.mean() == pytest.approx(a["mean_class_distance"])
    assert shift_statistics(kb, rid, epoch=2)["after"]["epoch"] == 2


def test_domain_shift_on_raw_domains():
    same = domain_shift("digits", "digits")
    moved = domain_shift("digits", "digits-rotated")
    assert same["mmd"] == pytest.approx(0.0, abs=1e-9) and same["proxy_a_distance"] < 0.2
    assert moved["proxy_a_distance"] > 1.0 and moved["mmd"] > 0.1 and moved["mean_class_distance"] > 0.3
    assert moved["n_source"] == 1257 and "pixels" in moved["space"]
    assert len(domain_shift("digits", "digits-rotated", cap=100)["per_class"]) == 10
