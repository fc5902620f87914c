"""Domains: what data there is, how each domain looks, how far apart two domains are, and uploads."""
import pandas as pd
import streamlit as st

from lepton.data import DataError, download, user_domains
from ui import charts, images, state, widgets

state.require_app_frame()
lesson = state.lesson()
widgets.intro("Domains", "A <b>domain</b> is one distribution of data: the same classes, seen differently "
              "(rotated, noisy, another dataset). Look at each domain, then compare two of them.")

rows = state.domain_rows()
overview = pd.DataFrame([{"domain": r["name"], "kind": r["modality"], "ready": "yes" if r["available"] else "files missing",
                          "description": r["description"]} for r in rows])
st.dataframe(overview, hide_index=True, key="domain_table", height=38 + 35 * len(overview))

name = st.selectbox("Look at a domain", [r["name"] for r in rows], key="inspect", format_func=state.domain_label)
row = next(r for r in rows if r["name"] == name)
if not row["available"]:
    st.warning(f"**{name}** is a benchmark whose files are not here yet.", icon=":material/download:")
    for p in row["missing"]:
        st.code(p, language=None)
    st.caption("Put the files at the paths above (or set LEPTON_DATA_DIR to a folder that has them), "
               "or download them from their canonical source.")
    if st.button(f"Download {name}", key="download", icon=":material/download:"):
        bar = st.progress(0.0, text="starting download …")
        report = lambda done, total: bar.progress(min(1.0, done / total) if total else 0.0,  # noqa: E731
                                                  text=f"{done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else ""))
        try:
            download.ensure_files(name, state.data_dir(), report)
        except (DataError, KeyError) as e:
            st.error(str(e), icon=":material/cloud_off:")
        else:
            state.clear_domains()
            st.rerun()
else:
    try:
        d = state.domain(name)
    except DataError as e:
        st.error(str(e))
        st.stop()
    m = st.columns(4)
    m[0].metric("training examples", f"{d.sizes()['train']:,}")
    m[1].metric("test examples", f"{d.sizes()['test']:,}")
    m[2].metric("classes", d.n_classes)
    shape = " × ".join(map(str, d.input_shape))
    m[3].metric("input shape", {"text": "text", "audio": " × ".join(map(str, d.input_shape[1:])) + " mel"}
                        .get(d.modality, shape))
    st.caption(f"**Where it comes from:** {d.source or 'not recorded'}")
    left, right = st.columns([3, 2], gap="large")
    with left:
        images.show_grid(name, caption="Four training examples per class (columns)", per_class=4, tile=48)
        if d.modality == "text":
            st.caption("Texts become TF-IDF features (unigrams and bigrams, the 5,000 most frequent terms) when a "
                       "run pairs them, fitted on the source and target training texts without labels.")
    with right:
        st.plotly_chart(charts.class_balance(d.class_counts("train")), key="balance")

st.divider()
st.subheader("How far apart are two domains?")
st.caption("Shift statistics compare the two domains' raw inputs: the further apart, the harder the transfer.")
a, b = st.columns(2)
with a:
    first = widgets.domain_select("First domain", "shift_a", state.DEFAULT_SOURCE)
with b:
    second = widgets.domain_select("Second domain", "shift_b", state.DEFAULT_TARGET)
try:
    stats = state.shift_stats(first, second)
except (DataError, ImportError, ValueError) as e:
    st.info(f"No shift statistics for this pair: {e}", icon=":material/info:")
else:
    m = st.columns(3)
    m[0].metric("proxy A-distance", f"{stats['proxy_a_distance']:.2f}",
                help="0: a linear classifier cannot tell the domains apart; 2: it always can (Ben-David et al.).")
    m[1].metric("MMD (relative)", f"{stats['mmd_relative']:.3f}",
                help="Squared distance between the domains' mean inputs, divided by their spread.")
    mcd = stats["mean_class_distance"]
    m[2].metric("class-centroid distance", "no labels" if mcd != mcd else f"{mcd:.2f}",
                help="Mean distance between the same class's centre in the two domains, in units of spread"
                + ("; it needs labels in both domains." if mcd != mcd else "."))
    if isinstance(stats.get("per_class"), pd.DataFrame) and stats["per_class"]["distance"].notna().any():
        st.plotly_chart(charts.class_distance(stats["per_class"]), key="class_distance")
    st.caption(f"Compared: {stats.get('space', '')}.")
    if state.domain(first).modality == "text" and state.domain(second).modality == "text":
        words = state.words(first, second)
        st.markdown("**What shifted, in words**")
        w1, w2, w3 = st.columns(3)
        w1.caption(f"Most characteristic of **{first}** (log-odds z; counts in {first} / {second})")
        zfmt = {"z": st.column_config.NumberColumn("z", format="%.1f"),
                "count_source": st.column_config.NumberColumn(first), "count_target": st.column_config.NumberColumn(second)}
        w1.dataframe(words["source"], hide_index=True, key="words_a", column_config=zfmt)
        w2.caption(f"Most characteristic of **{second}**")
        w2.dataframe(words["target"], hide_index=True, key="words_b", column_config=zfmt)
        w3.caption(f"Cues a classifier trained on **{first}**'s labels leans on; a low target share is knowledge "
                   "that does not transfer")
        cues = words["cues"][["term", "class", "df_source", "df_target"]].copy()
        cues[["df_source", "df_target"]] *= 100  # % of texts containing the term
        w3.dataframe(cues, hide_index=True, key="words_cues",
                     column_config={"df_source": st.column_config.NumberColumn(first, format="%.1f%%"),
                                    "df_target": st.column_config.NumberColumn(second, format="%.1f%%")})

if not lesson:
    st.divider()
    st.subheader("Add your own domain")
    st.caption("A .zip of an image or audio folder laid out `root/<class>/<image or clip>` (WAV, FLAC, OGG), a "
               "feature table (.csv/.tsv with a `label` column, .npz, .mat; flattened images: name it "
               "`file.csv#shape=16x16` on the command line), or texts (.csv/.tsv/.jsonl with a `text` and a `label` column; no "
               "label column: an unlabelled target), or interactions for recommendation (.csv with `user` and `item` "
               "columns, optional `rating`, `timestamp`, `title`, `genres` and `domain`: one domain per value of "
               f"`domain`, named `<name>-<value>`). Up to {user_domains.upload_limit_bytes() / 1e6:.0f} MB; uploads are "
               "read as data only (no pickles, no links or paths outside the folder).")
    # the form keeps its values (and its file) after an error, so a corrected name is one click away; a
    # successful upload starts a fresh form (new widget keys)
    v = st.session_state.get("upload_form_version", 0)
    with st.form("upload_form", clear_on_submit=False):
        up = st.file_uploader("File", type=["zip", "csv", "tsv", "npz", "mat", "jsonl"], key=f"upload_{v}",
                              max_upload_size=max(1, round(user_domains.upload_limit_bytes() / 1e6)))
        c1, c2 = st.columns(2)
        new_name = c1.text_input("Domain name", key=f"upload_name_{v}", placeholder="e.g. my-photos")
        label = c2.text_input("Label column (tables, optional)", key=f"upload_label_{v}")
        replace = st.checkbox("Replace the domain of that name if there is one (runs stored with it then refer to "
                              "the new data)", key=f"upload_replace_{v}")
        submitted = st.form_submit_button("Add domain", icon=":material/upload:")
    if submitted:
        if up is None:
            st.error("Choose a file first.")
        else:
            try:
                with st.spinner("Checking and reading the upload …"):
                    user_domains.add_user_domain(new_name, up.name, up.getvalue(), label.strip() or None, state.home(),
                                                 replace=replace)
            except DataError as e:
                st.error(str(e), icon=":material/block:")
            else:
                state.clear_domains()
                parts = user_domains.upload_parts(new_name.strip(), state.home())
                st.session_state["upload_form_version"] = v + 1
                st.session_state["upload_ok"] = new_name.strip() + (
                    f"** and, one per value of its domain column, **{'**, **'.join(parts)}" if parts else "")
                st.rerun()
    uploads = user_domains.list_user_domains(state.home())
    if uploads:
        st.markdown("**Your uploaded domains**")
        st.dataframe(pd.DataFrame([{"domain": n, "kind": e.get("kind", ""), "file": e.get("filename", ""),
                                    "added": e.get("added", ""), "MB": round(e.get("bytes", 0) / 1e6, 2)}
                                   for n, e in sorted(uploads.items())]), hide_index=True, key="uploads_table")
        u1, u2, u3 = st.columns([2, 2, 2])
        pick = u1.selectbox("Uploaded domain", sorted(uploads), key="upload_pick")
        new = u2.text_input("New name", key="upload_rename_to", placeholder="e.g. my-photos-v2")
        if u2.button("Rename", key="upload_rename", icon=":material/edit:", disabled=not new.strip()):
            try:
                user_domains.rename_user_domain(pick, new.strip(), state.home())
            except DataError as e:
                st.error(str(e), icon=":material/block:")
            else:
                state.clear_domains()
                st.session_state["upload_ok_msg"] = f"Renamed **{pick}** to **{new.strip()}**; runs stored with " \
                                                    f"{pick} keep their record and say its data is gone."
                st.rerun()
        sure = u3.checkbox(f"Yes, delete {pick} and its files", key="upload_delete_sure")
        if u3.button("Delete", key="upload_delete", icon=":material/delete:", disabled=not sure):
            try:
                user_domains.remove_user_domain(pick, state.home())
            except DataError as e:
                st.error(str(e), icon=":material/block:")
            else:
                state.clear_domains()
                st.session_state["upload_ok_msg"] = f"Deleted **{pick}**; runs stored with it keep their record " \
                                                    "and say its data is gone."
                st.rerun()
    if "upload_ok_msg" in st.session_state:
        st.success(st.session_state.pop("upload_ok_msg"))
    if "upload_ok" in st.session_state:
        st.success(f"Added **{st.session_state.pop('upload_ok')}**: it is now in every domain picker.")
