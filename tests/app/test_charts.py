"""The pages' figures: one colour per checkpoint kind and domain role; losses apart from diagnostics."""
from app_helpers import ROOT  # noqa: F401 - puts the app's `ui` package on the path

from ui import charts

HISTORY = [{"epoch": e, "source_acc": 0.9, "target_acc": 0.5 + e / 10,
            "losses": {"cls": 1 / e, "domain": 0.69, "lambda": e / 3, "domain_acc": 0.5}} for e in (1, 2, 3)]


def test_each_checkpoint_kind_has_its_own_colour_on_the_accuracy_bars():
    table = [{"domain": d, "role": role, "split": "test", "checkpoint": ck, "accuracy": 0.5, "n": 100}
             for d, role in (("mnist", "source"), ("usps", "target"))
             for ck in ("selected", "last", "oracle", "source-only baseline")]
    fig = charts.accuracy_bars(table)
    colours = {t.name: t.marker.color for t in fig.data}
    assert set(colours) == {"label-free choice", "last epoch", "oracle (uses target labels)", "source-only baseline"}
    assert len(set(colours.values())) == 4  # four kinds, four colours
    assert colours == {k: charts.CHECKPOINT_COLORS[k] for k in colours}  # the same on every page


def test_losses_and_diagnostics_are_drawn_apart():
    losses = {t.name for t in charts.loss_curves(HISTORY).data}
    diag = {t.name for t in charts.loss_curves(HISTORY, diagnostics=True).data}
    assert losses == {"cls", "domain"} and diag == {"lambda", "domain_acc"}
    assert charts.has_diagnostics(HISTORY) and not charts.has_diagnostics([{"epoch": 1, "losses": {"cls": 1.0}}])


def test_the_map_coloured_by_class_tells_source_from_target_by_marker_shape():
    import pandas as pd
    df = pd.DataFrame({"x": [0.0, 1, 2, 3], "y": [0.0, 1, 0, 1], "domain": ["mnist", "mnist", "usps", "usps"],
                       "role": ["source", "source", "target", "target"], "label": [0, 1, 0, 1], "pred": [0, 1, 1, 1],
                       "correct": [True, True, False, True], "row": [0, 1, 2, 3]})
    for by in ("class", "correct"):
        fig = charts.feature_map(df, by, title="UMAP")
        shapes = {cd[0]: sym for tr in fig.data for cd, sym in zip(tr.customdata, tr.marker.symbol)}
        assert shapes == {0: "circle", 1: "circle", 2: "diamond", 3: "diamond"}
        assert "◆ target" in fig.layout.title.text
    by_domain = charts.feature_map(df, "domain")
    assert all(not isinstance(tr.marker.symbol, (list, tuple)) for tr in by_domain.data)  # colour tells them apart


def test_an_unchanged_domain_gap_shows_no_arrow_and_a_saturated_one_says_so():
    from streamlit.testing.v1 import AppTest

    def page():
        from ui import explore
        explore.show_gap({"before": {"epoch": 0, "proxy_a_distance": 2.0, "mmd_relative": 0.40, "mean_class_distance": 1.5},
                          "after": {"epoch": 5, "proxy_a_distance": 2.0, "mmd_relative": 0.10, "mean_class_distance": 1.5}})

    at = AppTest.from_function(page).run()
    assert not at.exception
    pad, mmd, cls = at.metric
    assert not pad.delta and not cls.delta and mmd.delta == "-0.300"  # no arrow for no change
    assert "ceiling of 2" in pad.help and any("unchanged (at its ceiling of 2" in c.value for c in at.caption)
