"""Transfer from?: which stored model will transfer best to a labelled target (LogME, LEEP, H-score)."""
import streamlit as st

from ui import charts, explore, state, transfer, widgets

state.require_app_frame()
widgets.intro("Which stored model will transfer best?",
              "Before you train anything on a new domain, score every model in the knowledge base on the new "
              "domain's labelled training examples and start a fine-tuning run from the most promising one.")

runs = explore.all_runs()
if state.kb() is None or runs.empty or not (runs["status"] == "completed").any():
    st.info("No stored models yet: train one first on the **Train** page (for example digits → digits-rotated with "
            "source-only, then with dann), and come back to see which of them will transfer best to a new domain.",
            icon=":material/info:")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

names = transfer.target_names()
c1, c2 = st.columns([2, 3])
with c1:
    target = widgets.domain_select("Target domain (labelled)", "rank_target", transfer.default_target(names),
                                   names=names, help="The new domain. Its labels are used to score the stored "
                                   "models (nothing is trained here).")
score = c2.segmented_control("Chart shows", list(transfer.SCORES), format_func=transfer.SCORES.get,
                             default="logme", key="rank_score", required=True)
st.caption("**LogME** asks how well a linear model on a stored model's features could explain the target's labels, "
           "**LEEP** how well its old class predictions, re-mapped, predict them, and **H-score** how much of its "
           "features' spread separates the target's classes. For all three, higher means predicted to transfer "
           "better; the **untrained** network is the floor: a model below it brings nothing worth carrying over.")

ids = transfer.candidates(target)
status, value = transfer.ranking(target, ids)
if status == "pending":
    ready = getattr(state.map_worker(), "ready", None)
    warm = "" if ready is None or ready.is_set() else " (it is still warming up: the first answer waits for that)"
    st.info(f"Scoring {len(ids)} stored model(s) and an untrained network on {target} …", icon=":material/hourglass_top:")
    explore.wait_for(lambda: transfer.pending(target, ids), f"The map process is scoring the models{warm}.")
    st.stop()
if status == "error":
    st.error(f"Cannot rank the stored models for {target}: {value}", icon=":material/error:")
    if not ids or "Train one" in str(value):
        st.page_link("pages/train.py", label="Train a model first", icon=":material/model_training:")
    st.stop()

table = transfer.table(value, score)
name = transfer.SCORES[score]
chart = table.rename(columns={"model": "label", "run id": "run_id"})
st.plotly_chart(charts.transfer_scores(chart, name, name, target), key="rank_chart")
n = int(table["n"].iloc[0])
st.caption(f"{n:,} labelled training examples of {target}, the same seeded sample for every model, each seen in "
           "its own run's input space (size, channels, scaling). Best by " + name + " first.")
for s in value.attrs.get("skipped", []):
    st.caption(f":material/block: Left out: {transfer.label(s)}: {s['reason']} (a fine-tuning run from it would be "
               "refused too).")
st.dataframe(table, hide_index=True, key="rank_table", column_order=["#", "model", *transfer.SCORES.values(), "n",
                                                                     "method", "source", "run id"],
             column_config={v: st.column_config.NumberColumn(v, format="%.3f") for v in transfer.SCORES.values()})

st.subheader("Fine-tune one of them on " + target)
st.caption("Opens **Train** filled in: the run's source domains, this target, method **finetune** (k labelled target "
           "examples per class, no source pre-training) and the run's encoder as the starting weights (advanced "
           "settings). Check the settings, then press Start.")
rows = [r for _, r in table.iterrows() if r["run id"] != transfer.UNTRAINED]
cols = st.columns(2)
for i, r in enumerate(rows):
    if cols[i % 2].button(f"#{r['#']} {r['model']}", key=f"finetune_{r['run id']}", icon=":material/model_training:",
                          width="stretch", help=f"Fine-tune run {r['run id']} on {target}"):
        transfer.finetune_from(r["run id"], target)
