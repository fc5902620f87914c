"""Runs: the history of stored runs; compare several, see the transfer matrix, delete or export."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from lepton.kb import matrix, repeats
from ui import charts, explore, state, widgets

REFRESH_S = 5.0  # how often the table looks for runs that finished while it is shown

state.require_app_frame()
lesson = state.lesson()
widgets.intro("Runs", "Every run is stored in the knowledge base. Select rows to compare their curves and "
              "settings; the transfer matrix shows which source → target pairs are easy or hard.")

kb = state.kb()
runs = explore.all_runs()
explore.require_runs(runs)

pct = st.column_config.NumberColumn(format="percent")
view = runs[["run_id", "created", "status", "method", "source", "target", "epochs", "seed", "source_acc",
             "target_acc", "target_acc_oracle", "wall_time_s"]].copy()
view.insert(6, "metric", runs["task"].map({"ranking": "NDCG@10"}).fillna("accuracy"))  # what the target column holds
if "flags" in runs:
    view.insert(3, "flags", runs["flags"].fillna(""))  # "diverged": losses ran away or accuracy is at chance
# stored in UTC (ISO 8601); shown in the browser's time zone when it tells one
view["created"] = pd.to_datetime(view["created"], utc=True, errors="coerce")
tz = getattr(st.context, "timezone", None) or "UTC"
try:
    view["created"] = view["created"].dt.tz_convert(tz)
except Exception:  # noqa: BLE001 - an unknown zone name from the browser: keep UTC
    tz = "UTC"
version = st.session_state.get("runs_table_version", 0)  # bumped after a delete: clears the selection
event = st.dataframe(view, hide_index=True, key="runs_table" + (f"_{version}" if version else ""), on_select="rerun", selection_mode="multi-row",
                     column_config={"source_acc": st.column_config.NumberColumn("source acc", format="percent"),
                                    "target_acc": st.column_config.NumberColumn("target", format="percent",
                                                                                help="label-free checkpoint: accuracy, or "
                                                                                "NDCG@10 for a recommendation run (see metric)"),
                                    "target_acc_oracle": st.column_config.NumberColumn("oracle", format="percent"),
                                    "wall_time_s": st.column_config.NumberColumn("time (s)", format="%.1f"),
                                    "flags": st.column_config.TextColumn(
                                        "flags", help="diverged: its losses ran away or its accuracy is at chance, so "
                                        "its numbers are not results; chance: target accuracy at chance"),
                                    "created": st.column_config.DatetimeColumn(
                                        "started", format="YYYY-MM-DD HH:mm:ss", help=f"local time ({tz})"),
                                    "run_id": st.column_config.TextColumn(
                                        "run", width="medium", help="the run id: date-time-suffix")})
st.session_state["runs_seen"] = list(zip(runs["run_id"], runs["status"]))
if state.jobs().active():  # runs are still training: look again every few seconds, so finished runs appear
    @st.fragment(run_every=REFRESH_S)
    def _refresh() -> None:
        now = explore.all_runs()
        if list(zip(now["run_id"], now["status"])) != st.session_state.get("runs_seen"):
            st.rerun()  # a run was stored or finished: redraw the page
    _refresh()
picked = [runs.iloc[i]["run_id"] for i in (event["selection"]["rows"] if event else []) if i < len(runs)]

groups = repeats.seed_groups(kb, runs)
if not groups.empty:
    st.subheader("Repeats over seeds")
    st.caption("Runs whose settings differ only in their seed (train several with `--seeds 0 1 2`), as mean ± "
               "sample std over seeds (n = seeds; the newest run when a seed repeats). Tick a row to compare its "
               "runs below.")
    gview = groups[["method", "source", "target", "epochs", "seeds", "source_acc_text", "target_acc_text",
                    "target_acc_last_text", "target_acc_oracle_text", "wall_time_s_mean"]].copy()
    gview.insert(5, "metric", groups["task"].map({"ranking": "NDCG@10"}).fillna("accuracy"))
    gev = st.dataframe(gview, hide_index=True, key="seed_groups" + (f"_{version}" if version else ""),
                       on_select="rerun", selection_mode="multi-row",
                       column_config={"source_acc_text": st.column_config.TextColumn("source acc (%)"),
                                      "target_acc_text": st.column_config.TextColumn(
                                          "target (%)", help="label-free checkpoint, mean ± std (n seeds)"),
                                      "target_acc_last_text": st.column_config.TextColumn("last epoch (%)"),
                                      "target_acc_oracle_text": st.column_config.TextColumn(
                                          "oracle (%)", help="checkpoint picked with target labels, for comparison only"),
                                      "wall_time_s_mean": st.column_config.NumberColumn("time per run (s)", format="%.1f")})
    for i in (gev["selection"]["rows"] if gev else []):
        if i < len(groups):
            picked += [r for r in groups.iloc[i]["run_ids"] if r not in picked]
st.caption("Tick rows (left edge) to compare runs." if not picked else f"{len(picked)} run(s) selected.")

if picked:
    label = explore.run_label(runs)
    curves = {label(r).split(" · ")[0] + f" · {explore.short(r)}": kb.history(r) for r in picked}
    st.plotly_chart(charts.overlay_curves(curves), key="overlay")
    configs = pd.DataFrame({explore.short(r): pd.json_normalize(explore.run_info(r)["config"]).iloc[0] for r in picked})
    # a setting one run lacks (another method's hyper-parameter) differs from any value: shown as "—"
    configs = configs.astype(object).where(configs.notna(), "—").astype(str)
    differ = configs.nunique(axis=1) > 1
    only = st.toggle("Only settings that differ", value=len(picked) > 1, key="diff_only")
    st.dataframe(configs[differ] if only and differ.any() else configs, key="config_diff")

    if not lesson:
        c1, c2 = st.columns(2)
        with c1:
            one = picked[0]
            if st.button(f"Prepare export of {explore.short(one)}", key="export", icon=":material/archive:"):
                out = Path(tempfile.mkdtemp(prefix="lepton-export-")) / f"lepton-run-{one}.zip"
                try:
                    kb.export_run(one, out)
                    st.session_state["export_file"] = (out.name, out.read_bytes())
                except Exception as e:  # noqa: BLE001
                    st.error(f"Export failed: {e}")
            if "export_file" in st.session_state:
                name, data = st.session_state["export_file"]
                st.download_button(f"Download {name}", data, file_name=name, key="download_export",
                                   icon=":material/download:")
        with c2:
            sure = st.checkbox(f"Yes, delete {len(picked)} run(s) for good", key="confirm_delete")
            if st.button("Delete selected", key="delete", disabled=not sure, icon=":material/delete:"):
                for r in picked:
                    kb.delete_run(r)
                explore.run_info.clear()
                st.session_state["runs_table_version"] = version + 1
                st.rerun()

st.divider()
CHECKPOINTS = {"selected": "label-free selected", "last": "last epoch",
               "oracle": "oracle checkpoint (uses target labels)"}


@st.cache_data(show_spinner=False, ttl=600)
def oracle_methods() -> list:
    """Registered methods that train on target labels (``Method.oracle``); ``target-only`` is always one."""
    try:
        from lepton.methods_listing import method_listing
        return sorted(m["name"] for m in method_listing() if m.get("oracle") or m.get("target_labels") == "all")
    except Exception:  # noqa: BLE001 - the listing is a nicety: matrix.ORACLE_METHODS still applies
        return []


oracles = oracle_methods()
c1, c2, c3 = st.columns([2, 3, 2])
with_oracles = c3.checkbox("Include oracle methods", key="tm_oracle_methods",
                           help="Methods that train on labelled target data (target-only): an upper bound, "
                                "not adaptation. Listed after the others and labelled.")
options = matrix.method_options(runs, oracles, include_oracle=with_oracles)
if not options:
    st.info("No completed runs for a transfer matrix yet" + ("" if with_oracles else
            " (oracle methods are left out: tick **Include oracle methods** to see them)") + ".",
            icon=":material/info:")
else:
    if st.session_state.get("tm_method") not in options:
        st.session_state.pop("tm_method", None)  # e.g. an oracle method after unticking: back to the default
    method = c1.selectbox("Method", options, key="tm_method", format_func=lambda m: matrix.method_label(m, oracles),
                          help="One method at a time; the default has the most completed runs.")
    ck = c2.radio("Checkpoint", list(CHECKPOINTS), format_func=CHECKPOINTS.get, key="tm_checkpoint",
                  horizontal=True, help="label-free selected: the run's model, chosen without target labels. "
                                        "oracle: the epoch picked with target test labels, for comparison only.")
    try:
        tm = matrix.transfer_matrix(runs, method, ck, oracles)
    except ValueError as e:
        tm = None
        st.info(f"No transfer matrix: {e}", icon=":material/info:")
    if tm is not None and tm.empty:
        st.info(f"No completed run of {matrix.method_label(method, oracles)} has a {CHECKPOINTS[ck]} accuracy"
                + (f" ({tm.diverged} diverged run(s) left out)" if tm.diverged else "") + ".", icon=":material/info:")
    elif tm is not None:
        st.plotly_chart(charts.transfer_matrix(tm), key="transfer_matrix")
        st.caption(tm.caption() + " Rows: source, columns: target; the diagonal is in-domain accuracy.")
