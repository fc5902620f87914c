"""Runs: the history of stored runs; compare several, see the transfer matrix, delete or export."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from ui import charts, explore, state, widgets

state.require_app_frame()
lesson = state.lesson()
widgets.intro("Runs", "Every run is stored in the knowledge base. Select rows to compare their curves and "
              "settings; the transfer matrix shows which source → target pairs are easy or hard.")

kb = state.kb()
runs = explore.all_runs()
explore.require_runs(runs)

pct = st.column_config.NumberColumn(format="percent")
view = runs[["run_id", "created", "status", "method", "source", "target", "epochs", "seed", "source_acc",
             "target_acc", "target_acc_oracle", "wall_time_s"]]
version = st.session_state.get("runs_table_version", 0)  # bumped after a delete: clears the selection
event = st.dataframe(view, hide_index=True, key="runs_table" + (f"_{version}" if version else ""), on_select="rerun", selection_mode="multi-row",
                     column_config={"source_acc": st.column_config.NumberColumn("source acc", format="percent"),
                                    "target_acc": st.column_config.NumberColumn("target acc", format="percent",
                                                                                help="label-free checkpoint"),
                                    "target_acc_oracle": st.column_config.NumberColumn("oracle", format="percent"),
                                    "wall_time_s": st.column_config.NumberColumn("time (s)", format="%.1f"),
                                    "run_id": st.column_config.TextColumn("run", width="small")})
picked = [runs.iloc[i]["run_id"] for i in (event["selection"]["rows"] if event else []) if i < len(runs)]
st.caption("Tick rows (left edge) to compare runs." if not picked else f"{len(picked)} run(s) selected.")

if picked:
    label = explore.run_label(runs)
    curves = {label(r).split(" · ")[0] + f" · {explore.short(r)}": kb.history(r) for r in picked}
    st.plotly_chart(charts.overlay_curves(curves), key="overlay")
    configs = pd.DataFrame({explore.short(r): pd.json_normalize(explore.run_info(r)["config"]).iloc[0] for r in picked})
    differ = configs.astype(str).nunique(axis=1) > 1
    only = st.toggle("Only settings that differ", value=len(picked) > 1, key="diff_only")
    st.dataframe((configs[differ] if only and differ.any() else configs).astype(str), key="config_diff")

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
done = runs[runs["status"].isin(explore.FINISHED)]
if done["target_acc"].notna().any():
    st.plotly_chart(charts.transfer_matrix(done), key="transfer_matrix")
    st.caption("Each cell: the best target accuracy (label-free checkpoint) of the stored runs from that source "
               "to that target. The diagonal is in-domain accuracy.")
