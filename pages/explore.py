"""Explore: one stored run — accuracy per domain and class, and the map of its feature space."""
import pandas as pd
import streamlit as st

from lepton.data import user_domains
from ui import charts, explore, recommend, state, widgets

state.require_app_frame()
lesson = state.lesson()
widgets.intro("Explore a run", "How well did the model do on each domain, and what does its feature space look "
              "like? In the map each dot is a test example (an image, a text, a clip; a user or an item of a "
              "recommendation run); when adaptation works, source and target dots mix.")

kb = state.kb()
runs = explore.finished_runs()
explore.require_runs(runs, ", then come back")

ids = list(runs["run_id"])
want = st.session_state.get(state.EXPLORE_RUN_KEY)
run_id = st.selectbox("Run", ids, index=ids.index(want) if want in ids else 0, key="explore_run_pick", bind="query-params",
                      format_func=explore.run_label(runs))
st.session_state[state.EXPLORE_RUN_KEY] = run_id
info = explore.run_info(run_id)
cfg, summary = info["config"], info["summary"]
for msg in summary.get("diagnosis", []):
    st.warning(msg[0].upper() + msg[1:], icon=":material/warning:")
_known = set(state.domain_names())
_src = cfg.get("source")
_gone = [d for d in ([_src] if isinstance(_src, str) else list(_src or [])) + [cfg.get("target")]
         + list(cfg.get("eval_domains") or []) if d and d not in _known and ":" not in d]
_changed = {n: how for n, how in user_domains.stale_domains(summary.get("harmonisation", {}).get("data_versions"),
                                                              state.home()).items() if how == "replaced"}
if _changed:
    st.warning(f"The data of {', '.join(_changed)} was replaced since this run trained: the run's numbers and maps "
               "are of the data it used, but inputs shown from that domain now come from the new upload.",
               icon=":material/published_with_changes:")
if _gone:
    st.warning(f"The data of {', '.join(_gone)} is gone (deleted or renamed since this run trained): its stored record, "
               "numbers and feature snapshots remain, but its images or texts cannot be shown and it cannot be "
               "trained on again.", icon=":material/folder_off:")

if cfg.get("task") == "ranking":  # a recommendation run: HR@10 / NDCG@10 per user group, embeddings, top-10s
    recommend.show(run_id, info)
    st.stop()

MAP_TAB = ":material/scatter_plot: Feature map"
# the map is computed only while its tab is open (a UMAP fit takes seconds to minutes)
tab_acc, tab_map = st.tabs([":material/bar_chart: Accuracy", MAP_TAB], key="explore_tab", on_change="rerun")
with tab_acc:
    figs = explore.accuracy_figures(run_id, explore.baseline_id(cfg, runs))
    st.plotly_chart(figs["bars"], key="acc_bars")
    st.caption("**source-only baseline**: a stored source-only run on the same pair (before adaptation). "
               "**label-free choice**: the epoch picked without target labels. **oracle**: the best epoch by "
               "target test labels — for comparison only, a deployed model cannot know it.")
    explore.show_gap(explore.feature_shift(run_id))
    left, right = st.columns(2)
    if summary.get("per_class"):
        left.plotly_chart(figs["per_class"], key="per_class")
    else:
        left.info("No per-class accuracy: the target has no labels." if any(
            r.get("labelled") is False for r in summary.get("table", [])) else "No per-class accuracy recorded.",
                  icon=":material/info:")
    if figs["confusion"] is not None:
        cell = right.plotly_chart(figs["confusion"], key="confusion", on_select="rerun", selection_mode="points")
        picked_cell = explore.confusion_cell(cell)
        if picked_cell is not None:
            true, pred = picked_cell
            n = explore.select_cell(run_id, true, pred)
            right.info(f"Cell true **{true}**, predicted **{pred}**: {n} target examples of the map's sample "
                       "have that label and, at the last snapshot, that prediction; they are now selected: open the **Feature map** tab to see them highlighted, listed "
                       "and their images.", icon=":material/scatter_plot:")

with tab_map:
    if not tab_map.open:
        st.stop()  # nothing below the map: the rest of the page is drawn
    epochs = info.get("feature_epochs") or []
    if not epochs:
        st.info("This run stored no feature snapshots, so there is no map.", icon=":material/info:")
        st.stop()
    colours = ["domain", "class", "correct"] + (["speaker", "accent"] if explore.is_speech(run_id) else [])
    c1, c2, c3 = st.columns([2.2 if len(colours) > 3 else 1, 1, 2])  # room for every choice (five for speech)
    color_by = c1.segmented_control("Colour by", colours, default="domain", key="color_by", required=True,
                                  bind="query-params")
    method = "umap" if lesson else c2.segmented_control("Projection", ["umap", "pca", "tsne"], default="umap",
                                                        key="projection", required=True, bind="query-params")
    epoch = c3.select_slider("Epoch (0 = before training)", epochs, value=epochs[-1], key="map_epoch")
    aligned = len(epochs) > 1 and st.toggle("Aligned frames: fit all epochs together so the layout stays steady "
                                            "while you step (slower the first time)", key="aligned", value=False)
    classes = [str(c) for c in (info.get("class_names") or [])]
    isolate = st.selectbox("Show", list(explore.ISOLATE) + [f"class {c}" for c in classes], key="isolate", bind="query-params",
                           help="Isolate one domain, the wrong predictions or one true class; the map keeps its axes.")
    try:
        df, fig, pending = explore.map_view(run_id, epoch, method, aligned, color_by, isolate)
    except Exception as e:  # noqa: BLE001 - show, never a traceback
        st.error(f"Cannot draw the map: {e}", icon=":material/error:")
        st.stop()
    if pending:
        explore.wait_for_map(run_id, epoch, method, aligned)
    # a selection keeps across epochs, projections and colourings: the same examples, highlighted on the new map
    view_id = [run_id, int(epoch), method, bool(aligned), color_by, isolate]
    kept = explore.kept_selection(run_id, view_id)
    if kept:
        fig = charts.highlight_rows(fig, kept)
    event = st.plotly_chart(fig, key="map", on_select="rerun", selection_mode=("box", "lasso"))
    st.caption(f"{len(df):,} test points{'' if isolate == 'all' else ' (' + isolate + ')'}. Drag a box or lasso around dots to see those images."
               + "".join(f" {n[0].upper() + n[1:]}." for n in df.attrs.get("notes", [])))
    rows = explore.remember_selection(run_id, view_id, charts.selected_rows(event)) or kept
    if rows:
        sel = df[df["row"].isin(rows)]
        head, clear = st.columns([4, 1])
        head.markdown(f"**{len(sel)} selected**" + ("" if charts.selected_rows(event) else
                                                    " (kept from the map where you made it)"))
        if clear.button("Clear selection", key="clear_selection", icon=":material/deselect:"):
            explore.forget_selection()
            st.rerun()
        counts = pd.crosstab(sel["domain"], sel["label"].astype(str))
        st.dataframe(counts, key="sel_counts")
        st.dataframe(sel[["domain", "label", "pred", "correct"]].rename(columns={"pred": "prediction"}),
                     hide_index=True, key="sel_rows", height=min(400, 38 + 35 * len(sel)))
        explore.neighbours_view(run_id, int(epoch), sel)
        for dom_name, part in sel.groupby("domain", sort=False):
            texts = explore.selection_texts(run_id, part)
            if texts is not None:
                st.caption(f"{dom_name}: {len(texts)} of {len(part)} selected texts")
                st.dataframe(texts, hide_index=True, key=f"sel_texts_{dom_name}",
                             column_config={"text": st.column_config.TextColumn(width="large")})
                continue
            if explore.play_selection(run_id, part):
                st.caption(f"{dom_name}: the first {min(3, len(part))} of {len(part)} selected clips, as the model "
                           "heard them")
            pages = max(1, -(-len(part) // explore.PAGE))
            page = st.number_input(f"{dom_name}: page of {explore.PAGE} images", 1, pages, 1,
                                   key=f"sel_page_{dom_name}") if pages > 1 else 1
            shown = part.iloc[(page - 1) * explore.PAGE: page * explore.PAGE]
            img = explore.selection_images(run_id, shown)
            if img is not None:
                st.image(img, caption=f"{dom_name}: images {(page - 1) * explore.PAGE + 1}–"
                         f"{(page - 1) * explore.PAGE + len(shown)} of {len(part)} selected, in the table's order "
                         "(row by row, 12 a row)")
