"""Explore, for a recommendation (ranking) run: results per user group, the map of user and item
embeddings, and the per-user recommendation view. Reads what the run stored; runs no model."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pandas as pd
import streamlit as st

from lepton.evaluation import recommendations as rec

from . import charts, explore, state

#: Snapshot domain ids of each kind of point (see lepton.training.ranking.embedding_snapshot).
PARTS = {"users": (0, 1), "items": (2, 3)}


@st.cache_data(show_spinner=False, max_entries=32)
def arrays(run_id: str) -> Optional[Dict[str, np.ndarray]]:
    """The run's stored recommendations, or ``None`` (a run from before they were stored)."""
    try:
        return rec.load(state.kb(), run_id)
    except Exception:  # noqa: BLE001 - shown as "not stored" by the callers
        return None


def show(run_id: str, info: dict) -> None:
    """The whole Explore page of a ranking run."""
    cfg, summary = info["config"], info["summary"]
    tab_res, tab_map, tab_user = st.tabs([":material/leaderboard: Results", ":material/scatter_plot: Map",
                                          ":material/person_search: Recommendations"])
    with tab_res:
        st.subheader("Where each user's held-out item ranked")
        st.caption(summary.get("harmonisation", {}).get("protocol", "") + ". **cold-start**: users who kept only "
                   f"{cfg['hparams'].get('cold_start_k', 0)} target interaction(s) for training. The label-free "
                   "choice is judged on warm users' validation items; the oracle on the test items, for comparison "
                   "only.")
        st.dataframe(explore.ranking_table(summary), hide_index=True, key="ranking_table")
    with tab_map:
        _map(run_id, info)
    with tab_user:
        _user_view(run_id)


def _map(run_id: str, info: dict) -> None:
    epochs = info.get("feature_epochs") or []
    if not epochs:
        st.info(f"{info['config']['method']} learns no embeddings, so there is no map." if info["config"]["method"]
                == "popularity" else "This run stored no embeddings, so there is no map.", icon=":material/info:")
        return
    c1, c2, c3 = st.columns([1, 1.2, 1.4])
    part = c1.segmented_control("Points", list(PARTS), default="users", key="rank_points", required=True)
    colours = ["domain", "cold-start"] if part == "users" else ["domain", "genre"]
    color_by = c2.segmented_control("Colour by", colours, default="domain", key=f"rank_colour_{part}", required=True)
    method = c3.segmented_control("Projection", ["umap", "pca", "tsne"], default="umap", key="rank_projection",
                                  required=True)
    try:
        df, _, shown = explore.map_frame(run_id, epochs[-1], method, False, PARTS[part])
    except Exception as e:  # noqa: BLE001 - show, never a traceback
        st.error(f"Cannot draw the map: {e}", icon=":material/error:")
        return
    if shown != method:
        explore.wait_for_map(run_id, epochs[-1], method, False, PARTS[part])
    arr = arrays(run_id)
    df = df.copy()
    if arr is not None:
        details = rec.point_table(arr, df["domain_id"].to_numpy(), df["index"].to_numpy())
        df["text"] = details["name"].to_numpy()
    fig = charts.feature_map(df, "class" if color_by != "domain" else "domain",
                             title=f"{shown.upper()} of the {part[:-1]} embeddings (epoch {epochs[-1]}, the model)")
    if df["label"].nunique() > 6 and color_by != "domain":  # 18 genres: a legend beside the map, not over its title
        fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.01))
    event = st.plotly_chart(fig, key=f"rank_map_{part}", on_select="rerun", selection_mode=("box", "lasso"))
    what = ("Each dot is a user, in the source or the target embedding space. Cold-start users kept only "
            f"{info['config']['hparams'].get('cold_start_k', 0)} target interaction(s): when transfer works they "
            "land among the warm target users." if part == "users" else
            "Each dot is a movie (an item) of the source or the target. Colour by genre shows the first genre "
            "that not every item of its domain has (in a drama domain, a movie's other genre).")
    st.caption(f"{len(df):,} points. {what} Drag a box or lasso around dots to list them."
               + "".join(f" {n[0].upper() + n[1:]}." for n in df.attrs.get("notes", [])))
    rows = charts.selected_rows(event)
    if rows and arr is not None:
        sel = df[df["row"].isin(rows)]
        table = rec.point_table(arr, sel["domain_id"].to_numpy(), sel["index"].to_numpy())
        table.insert(1, "domain", sel["domain"].to_numpy())
        st.markdown(f"**{len(sel)} selected**")
        st.dataframe(table.drop(columns=["genres"] if part == "users" else ["group", "held-out item", "rank"]),
                     hide_index=True, key=f"rank_sel_{part}")


def _user_view(run_id: str) -> None:
    arr = arrays(run_id)
    if arr is None:
        st.info("This run stored no recommendations (it ended before its first epoch, or an older Lepton "
                "recorded it); train it again.", icon=":material/info:")
        return
    kb = state.kb()
    runs = explore.finished_runs()
    others = rec.comparable_runs(kb, run_id)
    ids = rec.users(arr)
    c1, c2 = st.columns([1, 2])
    user = c1.selectbox("User (cold-start users first)", ids, key="rec_user",
                        format_func=lambda u: f"{u} ({'cold-start' if arr['cold'][arr['user_id'] == u][0] else 'warm'})")
    label = explore.run_label(runs)
    compare = c2.selectbox("Compare with (a run on the same split; bpr-mf is the no-transfer baseline)",
                           [None] + others, index=1 if others else 0, key=f"rec_compare_{run_id}",
                           format_func=lambda r: "nothing" if r is None else label(r))
    try:
        view = rec.user_view(kb, run_id, user, compare)
    except Exception as e:  # noqa: BLE001 - show, never a traceback
        st.error(str(e), icon=":material/error:")
        return
    st.markdown(f"**User {view['user']}** ({'cold-start' if view['cold'] else 'warm'}) liked "
                f"{len(view['history'])} source item(s). Held-out target item: **{view['held_out']}**")
    with st.expander(f"Source history ({len(view['history'])} titles)", expanded=view["cold"]):
        st.dataframe(pd.DataFrame({"title": view["history"]}), hide_index=True, key="rec_history")
    cols = st.columns(len(view["runs"]))
    for col, r in zip(cols, view["runs"]):
        col.markdown(f"**{r['method']}** · {explore.short(r['run_id'])}")
        col.metric("held-out item's rank", f"{r['rank']} of {view['candidates']}",
                   help=f"Among the protocol's candidates (HR@10 counts a rank up to 10). Over all "
                   f"{view['catalogue']} target items but the user's training positives: {r['catalogue_rank']}.")
        top = pd.DataFrame(r["top"]).rename(columns={"held_out": "held out"})
        col.dataframe(top[["position", "held out", "title", "genres"]], hide_index=True, key=f"rec_top_{r['run_id']}",
                      column_config={"held out": st.column_config.CheckboxColumn(width="small")})
    st.caption(f"Top 10 of all {view['catalogue']} target items but the user's training positives; **held out** "
               "marks the user's held-out item." + ("" if others else " Train bpr-mf on this pair with the same settings to compare "
                                   "with the no-transfer baseline."))
