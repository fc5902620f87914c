"""AppTest of the Explore page: a stored run's accuracy, per-class results, the map and a selection."""
from app_helpers import open_map, no_exception, open_page, texts


def test_explore_without_runs_says_what_to_do():
    at = open_map(open_page("explore"))
    no_exception(at)
    assert "No stored runs yet" in texts(at)


def test_the_map_is_computed_only_when_its_tab_is_opened(kb_home, fast_maps):
    at = open_page("explore")  # the Accuracy tab
    no_exception(at)
    assert not [c for c in at.get("plotly_chart") if "of the features" in str(c.proto)]
    assert not [s for s in at.select_slider if s.key == "map_epoch"]
    open_map(at)
    assert [c for c in at.get("plotly_chart") if "of the features" in str(c.proto)]


def test_explore_shows_accuracy_and_map(kb_home, fast_maps):
    at = open_map(open_page("explore"))
    no_exception(at)
    runs = at.selectbox(key="explore_run_pick")
    assert len(runs.options) == 2 and runs.options[0].startswith("dann")  # newest first
    charts = {c.key for c in at.get("plotly_chart")} if hasattr(at.get("plotly_chart")[0], "key") else set()
    assert len(at.get("plotly_chart")) >= 4  # bars, per class, confusion, map
    assert "oracle" in texts(at) and "label-free" in texts(at)
    assert at.select_slider(key="map_epoch").options == ["0", "1", "2"]
    del charts


def test_a_run_whose_domain_data_is_gone_says_so(kb_home, fast_maps, monkeypatch):
    import ui.state
    at = open_map(open_page("explore"))
    assert "is gone" not in texts(at)
    names = [n for n in ui.state.domain_names() if n != "digits-rotated"]
    monkeypatch.setattr(ui.state, "domain_names", lambda: names)  # as if an upload of that name was deleted
    at.run()
    no_exception(at)
    assert "The data of digits-rotated is gone" in texts(at)


def test_a_run_whose_uploaded_data_was_replaced_says_so(kb_home, fast_maps, monkeypatch):
    from lepton.data import user_domains
    monkeypatch.setattr(user_domains, "stale_domains", lambda versions, home=None: {"digits-rotated": "replaced"})
    at = open_map(open_page("explore"))
    no_exception(at)
    assert "The data of digits-rotated was replaced since this run trained" in texts(at)


def test_a_link_opens_the_explore_view_it_names(kb_home, fast_maps):
    at = open_map(open_page("explore", {"color_by": "class", "isolate": "target", "projection": "pca"}))
    no_exception(at)
    assert at.segmented_control(key="color_by").value == "class" and at.selectbox(key="isolate").value == "target"
    assert "only target" in str(at.get("plotly_chart")[-1].proto) and "PCA of the features" in str(at.get("plotly_chart")[-1].proto)


def test_colouring_epochs_and_projection_switch(kb_home, fast_maps):
    at = open_map(open_page("explore"))
    for colour in ("class", "correct", "domain"):
        at.segmented_control(key="color_by").set_value(colour).run()
        no_exception(at)
    at.select_slider(key="map_epoch").set_value(0).run()
    no_exception(at)
    at.toggle(key="aligned").set_value(False).run()
    at.segmented_control(key="projection").set_value("pca").run()
    no_exception(at)
    assert "PCA of the features at epoch 0" in str(at.get("plotly_chart")[-1].proto)


def test_the_map_isolates_a_domain_the_wrong_predictions_or_a_class(kb_home, fast_maps):
    import re
    at = open_map(open_page("explore"))
    n_all = int(re.search(r"([\d,]+) test points", texts(at)).group(1).replace(",", ""))
    counts = {}
    for show in ("target", "source", "wrong predictions", "class 3"):
        at.selectbox(key="isolate").set_value(show).run()
        no_exception(at)
        found = re.search(r"([\d,]+) test points \(" + re.escape(show) + r"\)", texts(at))
        assert found, texts(at)
        counts[show] = int(found.group(1).replace(",", ""))
        assert f"only {show}" in str(at.get("plotly_chart")[-1].proto)
    assert counts["target"] + counts["source"] == n_all and 0 < counts["class 3"] < n_all
    assert counts["wrong predictions"] < n_all


def test_a_map_selection_shows_images_and_counts(kb_home, fast_maps):
    at = open_map(open_page("explore"))
    points = [{"customdata": {"0": i}} for i in (0, 1, 2)] + [{"customdata": [70]}]
    at.session_state["map"] = {"selection": {"points": points, "point_indices": [0, 1, 2, 3], "box": [], "lasso": []}}
    at.run()
    no_exception(at)
    assert "4 selected" in texts(at)
    assert len(at.image) >= 1  # the selected images
    counts = at.dataframe(key="sel_counts").value if False else at.dataframe[0].value
    assert counts.to_numpy().sum() == 4


def test_a_selection_keeps_across_epochs_lists_each_example_and_clears(kb_home, fast_maps):
    at = open_map(open_page("explore"))
    points = [{"customdata": [i]} for i in (0, 1, 2, 3, 4)]
    at.session_state["map"] = {"selection": {"points": points, "point_indices": [0, 1, 2, 3, 4], "box": [], "lasso": []}}
    at.run()
    assert "5 selected" in texts(at)
    at.session_state["map"] = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}
    at.select_slider(key="map_epoch").set_value(0).run()  # another epoch: a new map, no selection event on it
    no_exception(at)
    assert "5 selected** (kept from the map where you made it)" in texts(at)
    rows = [d.value for d in at.dataframe if "prediction" in d.value.columns]
    assert rows and len(rows[0]) == 5 and {"domain", "label", "prediction", "correct"} <= set(rows[0].columns)
    fig = at.get("plotly_chart")[-1].proto.spec
    assert '"selectedpoints"' in fig  # highlighted on the new map
    at.button(key="clear_selection").click().run()
    no_exception(at)
    assert "selected" not in texts(at).replace("Drag a box", "")


def test_nearest_neighbours_of_a_picked_example_come_from_every_domain(kb_home, fast_maps):
    import numpy as np
    from lepton.evaluation.neighbours import nearest_in_each_domain
    from lepton.kb import KnowledgeBase
    kb = KnowledgeBase()
    run = kb.list_runs()["run_id"].iloc[0]
    nn = nearest_in_each_domain(kb, run, 3, k=4)
    f = kb.load_features(run)
    assert set(nn["domain"]) == set(f["domain_names"]) and (nn.groupby("domain").size() == 4).all()
    assert 3 not in set(nn["row"])  # itself left out
    for d, part in nn.groupby("domain_id"):  # a hand check: the 4 smallest Euclidean distances in that domain
        idx = np.flatnonzero((f["domain"] == d) & (np.arange(len(f["features"])) != 3))
        dist = np.linalg.norm(f["features"][idx] - f["features"][3], axis=1)
        np.testing.assert_allclose(part["distance"], np.sort(dist)[:4], rtol=1e-4, atol=1e-4)
    at = open_map(open_page("explore"))
    points = [{"customdata": [i]} for i in (3, 4)]
    at.session_state["map"] = {"selection": {"points": points, "point_indices": [0, 1], "box": [], "lasso": []}}
    at.run()
    at.selectbox(key="nn_pick").set_value(3).run()
    no_exception(at)
    table = [d.value for d in at.dataframe if "distance" in d.value.columns]
    assert table and len(table[0]) == 12 and set(table[0]["domain"]) == {"digits", "digits-rotated"}  # 6 from each


def test_a_click_on_a_confusion_cell_selects_its_examples_on_the_map(kb_home, fast_maps):
    import re
    from collections import Counter
    from lepton.kb import KnowledgeBase
    at = open_page("explore")
    f = KnowledgeBase().load_features(at.selectbox(key="explore_run_pick").value)
    tgt = f["domain"] == f["domain_roles"].index("target")
    (true, pred), count = Counter(zip(f["labels"][tgt], f["preds"][tgt])).most_common(1)[0]  # a cell with examples
    true, pred = f["class_names"][true], f["class_names"][pred]
    at.session_state["confusion"] = {"selection": {"points": [{"x": pred, "y": true, "z": 5}], "point_indices": [0],
                                                   "box": [], "lasso": []}}
    at.run()
    no_exception(at)
    found = re.search(rf"Cell true \*\*{true}\*\*, predicted \*\*{pred}\*\*: (\d+) target examples", texts(at))
    assert found and int(found.group(1)) == count > 0, texts(at)
    open_map(at)
    assert f"{count} selected** (kept from the map where you made it)" in texts(at)


def test_lesson_mode_keeps_umap_only(kb_home, fast_maps):
    at = open_map(open_page("explore", {"lesson": "1"}))
    no_exception(at)
    assert not [s for s in at.segmented_control if s.key == "projection"]


def test_a_text_run_shows_snippets_on_the_map_and_lists_the_selected_texts(data_dir, fast_maps):
    """books -> kitchen: the map's points carry their review's first words, and a selection lists
    the texts with label and prediction (the raw texts behind the TF-IDF rows, in their order)."""
    from lepton.config import RunConfig
    from lepton.data import load_domain
    from lepton.kb import KnowledgeBase
    from lepton.training import train
    kb = KnowledgeBase()
    res = train(RunConfig("books", "kitchen", "source-only", epochs=1, seed=0), kb=kb)
    tgt = res.plan.roles.index("target")
    raw = load_domain("kitchen").x_test
    assert kb.snapshot_texts(res.run_id, tgt, [0, 5]) == [raw[0], raw[5]]
    assert kb.snapshot_texts(res.run_id, tgt, [0]) is not None
    at = open_map(open_page("explore"))
    no_exception(at)
    assert "hovertemplate" in str(at.get("plotly_chart")[-1].proto) and "text=" in str(at.get("plotly_chart")[-1].proto)
    points = [{"customdata": [i]} for i in (0, 1, 2)]
    at.session_state["map"] = {"selection": {"points": points, "point_indices": [0, 1, 2], "box": [], "lasso": []}}
    at.run()
    no_exception(at)
    shown = [df.value for df in at.dataframe if "text" in df.value]
    assert shown and shown[0]["text"].str.len().min() > 0 and {"label", "pred", "domain"} <= set(shown[0].columns)


def test_an_audio_run_colours_the_map_by_speaker_and_plays_a_selection(data_dir, fast_maps):
    """jackson + lucas -> george: the map can be coloured by speaker (and accent), and selected
    points play their clips beside their spectrograms."""
    import pytest
    pytest.importorskip("librosa")
    from lepton.config import RunConfig
    from lepton.kb import KnowledgeBase
    from lepton.training import train
    if not (data_dir / "fsdd" / "recordings").is_dir():
        pytest.skip("the Free Spoken Digit Dataset is missing from the data folder")
    train(RunConfig(("fsdd-jackson", "fsdd-lucas"), "fsdd-george", steps=2, eval_cap=100), kb=KnowledgeBase())
    at = open_map(open_page("explore"))
    no_exception(at)
    colour = at.segmented_control(key="color_by")
    assert {"speaker", "accent"} <= set(colour.options)
    colour.set_value("speaker").run()
    no_exception(at)
    fig = str(at.get("plotly_chart")[-1].proto)
    assert all(s in fig for s in ("george", "jackson", "lucas"))  # one trace per speaker
    points = [{"customdata": [i]} for i in range(6)]
    at.session_state["map"] = {"selection": {"points": points, "point_indices": list(range(6)), "box": [], "lasso": []}}
    at.run()
    no_exception(at)
    assert at.get("audio") and "selected clips, as the model heard them" in texts(at)


def test_a_recommendation_run_shows_results_map_and_a_users_top10_beside_the_baseline(data_dir, fast_maps):
    """A ranking run in the knowledge base: Explore shows its HR@10 / NDCG@10 table (not accuracy bars),
    a map of user and of item embeddings with what stands behind selected points, and one user's
    source history with the top-10 of the run beside the bpr-mf baseline's."""
    from lepton.config import RunConfig
    from lepton.training import train
    hp = {"cold_start_k": 1}
    base = train(RunConfig("movielens-comedy", "movielens-drama", "bpr-mf", epochs=1, hparams=hp))
    r = train(RunConfig("movielens-comedy", "movielens-drama", "cmf", epochs=1, hparams=hp))
    at = open_map(open_page("explore"))
    no_exception(at)
    frames = lambda: [d.value for d in at.dataframe]  # noqa: E731 - AppTest keeps no dataframe keys
    table = frames()[0]
    assert set(table["users"]) == {"all", "cold-start", "warm"} and "NDCG@10 %" in table
    assert r.run_id and "cold-start" in texts(at)

    fig = str(at.get("plotly_chart")[0].proto)
    assert "movielens-comedy users" in fig and "movielens-drama users" in fig
    at.segmented_control(key="rank_points").set_value("items").run()
    at.segmented_control(key="rank_colour_items").set_value("genre").run()
    no_exception(at)
    fig = str(at.get("plotly_chart")[0].proto)
    assert "Romance" in fig and "Comedy" in fig  # drama movies by their other genre
    at.session_state["rank_map_items"] = {"selection": {"points": [{"customdata": [i]} for i in range(5)],
                                                        "point_indices": list(range(5)), "box": [], "lasso": []}}
    at.run()
    no_exception(at)
    sel = next(f for f in frames() if "genres" in f and "rank" not in f)
    assert len(sel) == 5 and sel["name"].str.contains(r"\(\d{4}\)").all()  # movie titles with their year

    user = at.selectbox(key="rec_user")
    assert "cold-start" in user.format_func(user.value)  # cold-start users first
    assert at.selectbox(key=f"rec_compare_{r.run_id}").value == base.run_id  # the no-transfer baseline
    tops = [f for f in frames() if "position" in f]
    assert all(len(t) == 10 for t in tops) and not tops[0]["title"].equals(tops[1]["title"])
    ranks = [m.value for m in at.metric]
    assert len(ranks) == 2 and all(v.endswith("of 100") for v in ranks)
    assert "Held-out target item" in texts(at)

