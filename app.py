"""Lepton: an interactive lab for transfer learning and domain shift.

Run with ``streamlit run app.py``. This file is the frame shared by all pages: page config, the
navigation over ``pages/`` and a small sidebar. No logic lives here (see ARCHITECTURE.md).
"""
from pathlib import Path

import streamlit as st

from ui import state

st.set_page_config(page_title="Lepton: transfer learning lab", page_icon=":material/science:", layout="wide")
css = Path(__file__).parent / "assets" / "style.css"
if css.exists():
    st.markdown(f"<style>{css.read_text()}</style>", unsafe_allow_html=True)

state.startup()  # once per server: uploaded domains, UMAP warm-up in the background
lesson = state.lesson()

pages = [
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/pipeline.py", title="Pipeline", icon=":material/account_tree:"),
    st.Page("pages/explore.py", title="Explore", icon=":material/scatter_plot:"),
    st.Page("pages/rank.py", title="Transfer from?", icon=":material/leaderboard:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
    st.Page("pages/domains.py", title="Domains", icon=":material/photo_library:"),
]
nav = st.navigation(pages)

with st.sidebar:
    st.markdown("### :material/science: Lepton\n*A lab for learning across domains.*")
    if lesson:
        st.info("Lesson mode: advanced settings are hidden.", icon=":material/school:")
        st.button("Back to the full app", key="leave_lesson", icon=":material/logout:", on_click=state.leave_lesson,
                  help="Leave lesson mode: every setting and page control comes back.")
    active = state.jobs().active()
    if active:
        st.caption(f"{len(active)} run(s) training now")
    if state.kb() is None:
        st.warning("Runs are not being stored: " + state.KB_ERROR.get("message", "the knowledge base is unavailable")
                   + ". Set LEPTON_HOME to a writable folder.", icon=":material/warning:")
    else:
        st.caption(f"Runs are stored in the knowledge base at `{state.home()}`.")
    state.map_status()

nav.run()
