"""The live training panel: a fragment that polls the background job; the worker never calls Streamlit."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import streamlit as st

from lepton.training.jobs import format_seconds

from . import charts, state

POLL_S = float(os.environ.get("LEPTON_POLL_S", "1.0"))
FIRST_POLL_S = min(POLL_S, 0.25)  # while a job is starting, so its first step shows at once
STATUS_ICON = {"starting": ":material/hourglass_top:", "running": ":material/directions_run:",
               "stopping": ":material/stop_circle:", "completed": ":material/check_circle:",
               "stopped": ":material/stop_circle:", "failed": ":material/error:"}


ACTIVE = ("starting", "running", "stopping")
JUST_STARTED = "lepton_just_started"  # set by the page that started a job in this run


def _poll(job_id: str, draw, draw_slow=None) -> None:
    """Draw a job with ``draw(snapshot)`` (cheap: text and a bar) and ``draw_slow(snapshot)`` (charts),
    each a fragment that re-draws while the job runs: ``draw`` every ``FIRST_POLL_S`` seconds until the
    job's first step is on screen, then both every ``POLL_S`` seconds."""
    status = state.jobs().get(job_id).snapshot()["status"]
    active = status in ACTIVE
    # fast polling until the first step is on screen, then one full rerun (it also disables the Start
    # button of the run that started the job)
    fast = status == "starting" or bool(st.session_state.pop(JUST_STARTED, False))
    shown = []  # fast polling: ticks that drew a started job (kept across the fragment's reruns)

    @st.fragment(run_every=(FIRST_POLL_S if fast else POLL_S) if active else None)
    def panel() -> None:
        s = state.jobs().get(job_id).snapshot()
        if active and s["status"] not in ACTIVE:
            st.rerun()  # full rerun: stops the timers and shows the final results
        if fast and shown:
            st.rerun()  # the first progress is on screen: a full rerun polls at the normal pace
        draw(s)
        if fast and s["step"] >= 1:
            shown.append(s["step"])  # (a rerun now would discard this drawing before it is seen)

    panel()
    if draw_slow is not None:
        @st.fragment(run_every=POLL_S if active else None)
        def charts_panel() -> None:
            draw_slow(state.jobs().get(job_id).snapshot())

        charts_panel()


def job_panel(job_id: str, watch: bool = False) -> None:
    """Draw a training job's panel (progress, metrics, live curves and map), polled while it runs.

    ``watch``: another session's run, drawn read-only (a Stop button only for a teacher), with its
    widgets and charts under their own keys so it can sit beside this session's own panel."""
    _poll(job_id, lambda s: _draw(s, watch), (lambda s: _draw_charts(s, "watch_")) if watch else _draw_charts)


def _stop_button(s: dict, label: str, key: str) -> None:
    """A Stop button when this session may stop the job (its own, or a teacher's session), else a note."""
    job = state.jobs().get(s["id"])
    if not state.may_stop(job):
        st.caption(":material/visibility: Watching a run started in another browser session: only that "
                   "session (or the teacher) can stop it.")
        return
    if st.button(label, key=key, icon=":material/stop:"):
        try:
            state.stop(s["id"])
        except PermissionError as e:
            st.error(str(e))
        else:
            st.toast("Stopping after the current step …")


def _draw(s: dict, watch: bool = False) -> None:
    c = s["config"]
    src = " + ".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    diverged = "diverged" in (s.get("flags") or [])
    icon = ":material/warning:" if diverged else STATUS_ICON.get(s['status'], '')
    st.subheader(f"{icon} {c['method']}: {src} → {c['target']}")
    done = s["status"] in ("completed", "stopped", "failed")
    frac = 1.0 if s["status"] == "completed" else s["fraction"]
    status = f"{s['status']} (diverged: its numbers are not results)" if diverged else s["status"]
    text = (f"{s['status']} — {s['phase']} · epoch {s['epoch']}/{s['epochs'] or '?'} · step {s['step']}/{s['total'] or '?'}"
            if not done else f"{status} after {len(s['history'])} of {s['epochs']} epochs")
    st.progress(min(1.0, max(0.0, frac)), text=text)
    last = s["history"][-1] if s["history"] else {}
    chosen = _chosen(s) if done else None
    m = st.columns(4)
    if chosen is not None and not is_ranking(c):  # the run's result: its label-free checkpoint, as everywhere
        sel, lst, ora = chosen
        m[0].metric(f"source accuracy (epoch {sel.get('epoch')})", _pct(sel.get("source_acc")))
        m[1].metric(f"target, label-free (epoch {sel.get('epoch')})",
                    "no labels" if sel.get("target_acc") is None else _pct(sel.get("target_acc")),
                    help="The checkpoint a score without target labels picked: the run's model and result.")
        if sel.get("target_acc") is not None:
            st.caption(f"Beside it: last epoch {_pct(lst.get('target_acc'))} (epoch {lst.get('epoch')}) · oracle-best "
                       f"{_pct(ora.get('target_acc'))} (epoch {ora.get('epoch')}, picked with target labels, for "
                       "comparison only).")
    elif is_ranking(c):
        m[0].metric("NDCG@10, all test users", _pct(last.get("target_acc")))
        m[1].metric("NDCG@10, cold-start", _pct(last.get("target_cold")),
                    help="Users who kept only cold_start_k target interactions for training.")
    else:
        m[0].metric("source accuracy", _pct(last.get("source_acc")))
        m[1].metric("target accuracy", "no labels" if last.get("target_labelled") is False else
                    _pct(last.get("target_acc")), help="The target has no labels: it is adapted to, but its accuracy "
                    "cannot be measured." if last.get("target_labelled") is False else None)
    m[2].metric("elapsed", format_seconds(s["elapsed_s"]))
    m[3].metric("remaining", "-" if done else format_seconds(s["remaining_s"]))
    if s["error"]:
        st.error(s["error"], icon=":material/error:")
    if s["status"] in ("starting", "running"):
        _stop_button(s, "Stop", "stop_watched" if watch else "stop_job")
    if not s["history"] and s["status"] in ("starting", "running"):
        st.caption("The first point appears after the first epoch; the losses of the current step: "
                   + (", ".join(f"{k} {v:.3f}" for k, v in s["last_losses"].items()) or "…"))


def _chosen(s: dict):
    """A finished run's ``(selected, last, oracle)`` checkpoint dicts, or ``None`` before it has them."""
    res = state.jobs().get(s["id"]).result
    ck = getattr(res, "checkpoints", None) or {}
    if not ck.get("selected"):
        return None
    return ck["selected"], ck.get("last") or {}, ck.get("oracle") or {}


def is_ranking(config: dict) -> bool:
    """Whether a job's config (a dict) is a recommendation run (its method ranks items)."""
    from lepton.methods import METHODS
    return getattr(METHODS.get(config["method"]), "task", "classification") == "ranking"


def _draw_charts(s: dict, prefix: str = "") -> None:
    acc, loss = _curves(s["id"], len(s["history"]), s["history"], s["epochs"], is_ranking(s["config"]))
    epochs = _snapshot_epochs(s["run_id"])
    left, right = st.columns(2)
    left.plotly_chart(acc, key=prefix + "live_acc")
    if epochs:
        right.plotly_chart(_live_map(s["run_id"], tuple(epochs)), key=prefix + "live_map")
        left, right = st.columns(2)
    (left if epochs else right).plotly_chart(loss, key=prefix + "live_loss")
    if charts.has_diagnostics(s["history"]):
        diag = charts.loss_curves(s["history"], "Diagnostics per epoch (schedules and rates, not losses)",
                                  diagnostics=True)
        (right if epochs else st).plotly_chart(diag, key=prefix + "live_diagnostics")


def _snapshot_epochs(run_id) -> list:
    """Epochs with a stored feature snapshot so far (the recorder writes them while the run trains)."""
    kb = state.kb()
    if not run_id or kb is None:
        return []
    try:
        return kb.feature_epochs(run_id)
    except Exception:  # noqa: BLE001 - not stored (yet): no live map
        return []


@st.cache_resource(max_entries=16, show_spinner=False)
def _live_map(run_id: str, epochs: tuple):
    """The feature map of the latest snapshot: PCA frames of all snapshots so far, each rotated onto
    the one before (Procrustes), on fixed axes, so points move between epochs rather than jump."""
    from lepton.evaluation import projection
    df = projection.aligned_maps(state.kb(), run_id, epochs=list(epochs), method="pca")
    last = df[df["epoch"] == epochs[-1]].reset_index(drop=True)
    for c in ("domain", "label", "pred"):
        last[c] = last[c].astype(str)
    fig = charts.feature_map(last, "domain", title=f"Feature map (PCA) at epoch {epochs[-1]}", height=320)
    pad = lambda v: (float(v.min()) - 0.05 * float(np.ptp(v)), float(v.max()) + 0.05 * float(np.ptp(v)))  # noqa: E731
    return fig.update_xaxes(range=pad(df["x"])).update_yaxes(range=pad(df["y"]))


@st.cache_resource(max_entries=16, show_spinner=False, hash_funcs={list: lambda _: 0})
def _curves(job_id: str, n_epochs_done: int, history: list, epochs: int, ranking: bool = False):
    """The two live figures, rebuilt only when an epoch ends (not on every poll)."""
    return (charts.ranking_curves if ranking else charts.accuracy_curves)(history, epochs), charts.loss_curves(history)


def results(job_id: str) -> None:
    """After a run: the per-domain accuracy table and a link to explore the stored run."""
    s = state.jobs().get(job_id).snapshot()
    res = state.jobs().get(job_id).result
    if res is None or not res.table:
        return
    for msg in res.diagnosis:
        st.warning(msg[0].upper() + msg[1:], icon=":material/warning:")
    if is_ranking(s["config"]):
        from . import explore
        st.dataframe(explore.ranking_table({"table": res.table, "checkpoints": res.checkpoints}), hide_index=True,
                     key="result_ranking")
        st.caption("HR@10 / NDCG@10: where each user's held-out target item ranked. **cold-start**: users who kept "
                   "only cold_start_k target interactions. The label-free choice is judged on warm users' "
                   "validation items; the oracle on the test items, only for comparison.")
        if s["run_id"]:
            st.session_state[state.EXPLORE_RUN_KEY] = s["run_id"]
            st.page_link("pages/explore.py", label="Explore this run: the user and item map and each user's top-10",
                         icon=":material/scatter_plot:")
        return
    st.plotly_chart(charts.accuracy_bars(res.table), key="result_bars")
    from lepton.training.health import selection_gap
    gap = selection_gap(res.checkpoints)
    if gap:
        st.markdown(gap[0].upper() + gap[1:] + ".")
    st.caption("**label-free choice**: the epoch a score without target labels picked (what you could deploy). "
               "**oracle**: the best epoch judged with the target's test labels — only for comparison.")
    if s["run_id"]:
        st.session_state[state.EXPLORE_RUN_KEY] = s["run_id"]
        st.page_link("pages/explore.py", label="Explore this run: per-class accuracy and the feature map",
                     icon=":material/scatter_plot:")


def _pct(v) -> str:
    return "-" if v is None or pd.isna(v) else f"{100 * v:.1f}%"


# ----- pipelines -------------------------------------------------------------------------------------
def pipeline_panel(job_id: str, watch: bool = False) -> None:
    """Draw a pipeline job: one box per stage with its progress and, once finished, its result.
    ``watch``: another session's pipeline, read-only (see :func:`job_panel`)."""
    _poll(job_id, lambda s: _draw_pipeline(s, "watch_" if watch else ""))


STAGE_ICON = {**STATUS_ICON, "pending": ":material/schedule:", "not run": ":material/block:"}


def _draw_pipeline(s: dict, prefix: str = "") -> None:
    st.subheader(f"{STATUS_ICON.get(s['status'], '')} Pipeline {' + '.join(s['domains'])} → {s['target']}")
    done = s["status"] in ("completed", "stopped", "failed")
    st.progress(min(1.0, max(0.0, s["fraction"])),
                text=f"{s['status']} — {s['phase']} · {format_seconds(s['elapsed_s'])}" if not done else
                f"{s['status']} in {format_seconds(s['elapsed_s'])}")
    if s["error"]:
        st.error(s["error"], icon=":material/error:")
    if s["status"] in ("starting", "running"):
        _stop_button(s, "Stop the pipeline", prefix + "stop_pipeline")
    for r in s["stages"]:
        with st.container(border=True):
            _draw_stage(r, s["k"], prefix)


def _draw_stage(r: dict, k: int, prefix: str = "") -> None:
    head, right = st.columns([3, 2])
    head.markdown(f"**{r['index'] + 1}. {r['stage']}** · {r['kind']} · {STAGE_ICON.get(r['status'], '')} "
                  f"{r['status']}" + (f" · run `{r['run_id']}`" if r["run_id"] else ""))
    if r["wall_time_s"] is not None:
        right.caption(f"{format_seconds(r['wall_time_s'])}")
    if r["status"] == "running":
        ep = f"epoch {r['epoch']}/{r['epochs']} · " if r["epochs"] else ""
        st.progress(min(1.0, r["fraction"]), text=f"{ep}step {r['step']}/{r['total'] or '?'}")
    if r["error"]:
        st.error(r["error"], icon=":material/error:")
    m = r["metrics"]
    if r["kind"] == "evaluate" and m.get("rows"):
        rows = pd.DataFrame(m["rows"])
        for c in ("mean", "std"):
            rows[c] = (100 * rows[c]).round(1)
        st.dataframe(rows.drop(columns=["values"], errors="ignore").rename(
            columns={"mean": "accuracy %", "std": "± std %"}), hide_index=True, key=f"{prefix}eval_{r['index']}")
    elif m:
        c = st.columns(3)
        c[0].metric("source accuracy", _pct(m.get("source_acc")))
        c[1].metric("target accuracy", _pct(m.get("target_acc")))
        p = m.get("probe") or {}
        c[2].metric(f"linear probe k={k}", _pct(p.get("mean")),
                    help="Target accuracy of a logistic regression on the frozen features, k labels per class.")


# ----- other sessions' runs --------------------------------------------------------------------------
def other_runs(kind: str = "run") -> None:
    """The jobs of this kind that other browser sessions are running on this server: listed
    read-only with a Watch button each; the watched one is drawn below (a teacher may stop it)."""
    others = state.others(kind)
    watched = state.watched_job_id()
    if watched is not None and state.jobs().get(watched).kind != kind:
        watched = None
    if not others and watched is None:
        return
    teacher = state.teacher()
    what = "pipeline(s)" if kind == "pipeline" else "run(s)"
    label = (f"{len(others)} other {what} on this server, started in other browser sessions "
             + ("(teacher: you can stop them)" if teacher else "(watch only)"))
    with st.expander(label, expanded=watched is not None, icon=":material/visibility:"):
        for j in others:
            s = j.snapshot()
            c = st.columns([5, 3, 1])
            c[0].markdown(f"**{j.title}**")
            c[1].caption(f"{s['status']} · step {s['step']}/{s['total'] or '?'} · {format_seconds(s['elapsed_s'])}")
            if c[2].button("Watch", key=f"watch_{j.id}", disabled=j.id == watched):
                st.session_state[state.WATCH_KEY] = watched = j.id
        if watched is not None and st.button("Stop watching", key=f"unwatch_{kind}"):
            st.session_state.pop(state.WATCH_KEY, None)
            watched = None
    if watched is not None:
        st.divider()
        (pipeline_panel if kind == "pipeline" else job_panel)(watched, watch=True)
