"""Streamlit-only glue: cached resources, session-state keys and URL (query-string) state.

Everything here is a thin wrapper over :mod:`lepton`; nothing trains or computes here.
"""
from __future__ import annotations

import json
import os
import threading
from typing import Dict, List, Optional

import streamlit as st

# Session-state keys used across pages (one place, so pages agree).
JOB_KEY = "lepton_job_id"        # the job this session started or follows
PIPELINE_KEY = "lepton_pipeline_job_id"  # the pipeline job this session started or follows
EXPLORE_RUN_KEY = "explore_run"  # run id the Explore page opens with
LESSON_KEY = "lepton_lesson"     # lesson mode seen in the URL once, kept for the session

DEFAULT_SOURCE, DEFAULT_TARGET, DEFAULT_METHOD = "digits", "digits-small", "dann"  # lepton.lessons "mild"


KB_ERROR: Dict[str, str] = {}  # why the knowledge base could not be opened (shown in the sidebar)


@st.cache_resource(show_spinner=False)
def kb():
    """The process-wide :class:`lepton.kb.KnowledgeBase` (``$LEPTON_HOME``), or ``None`` if unavailable."""
    try:
        from lepton.kb import KnowledgeBase
        return KnowledgeBase()
    except Exception as e:  # noqa: BLE001 - e.g. an unwritable LEPTON_HOME: the app still trains, unrecorded
        KB_ERROR["message"] = str(e)
        return None


@st.cache_resource(show_spinner=False)
def jobs():
    """The process-wide :class:`lepton.training.jobs.JobManager`: every session sees every job."""
    from lepton.training.jobs import JobManager
    return JobManager(kb=kb() or False)


@st.cache_resource(show_spinner=False)
def map_worker():
    """The server's one map process (:class:`lepton.evaluation.mapworker.MapWorker`): UMAP and t-SNE
    maps are fitted there, never in this process."""
    from lepton.data.user_domains import lepton_home
    from lepton.evaluation.mapworker import MapWorker
    base = kb()
    return MapWorker(getattr(base, "home", None) or lepton_home())


def map_status() -> None:
    """A sidebar line saying whether UMAP maps are ready; re-checked every 2 s while the map process warms up."""
    ready = getattr(map_worker(), "ready", None)
    if ready is None:
        return

    @st.fragment(run_every=None if ready.is_set() else 2.0)
    def line() -> None:
        if ready.is_set():
            st.caption("UMAP maps: ready")
        else:
            st.caption("UMAP maps: warming up the map process (PCA maps meanwhile) …")
    line()


@st.cache_resource(show_spinner=False)
def startup() -> Dict[str, object]:
    """Run once per server process: register uploaded domains and warm up the worker processes.

    In the background: the training workers' forkserver imports torch and the core once, and the
    map process compiles UMAP with a tiny fit, so the first run and the first map are quick. No
    heavy work runs in this process. ``LEPTON_NO_WARMUP=1`` skips it (tests).
    """
    from lepton.data import user_domains
    base = kb()
    home = getattr(base, "home", None)
    user_domains.load_user_domains(home)
    ready = threading.Event()

    def warm() -> None:
        try:
            if os.environ.get("LEPTON_NO_WARMUP"):
                return
            jobs().warm()
            map_worker().start()
        except Exception:  # noqa: BLE001 - warm-up is best effort; the first run or map is just slower
            pass
        finally:
            ready.set()

    threading.Thread(target=warm, name="lepton-warmup", daemon=True).start()
    return {"ready": ready, "home": home}


def home():
    """The lepton home folder (where runs and uploaded domains live)."""
    from lepton.data.user_domains import lepton_home
    base = kb()
    return getattr(base, "home", None) or lepton_home()


@st.cache_data(ttl=5, show_spinner=False)
def domain_rows() -> List[dict]:
    """``lepton.data.list_domains()`` with built-in (available) domains first."""
    from lepton.data import list_domains
    rows = list_domains()
    return sorted(rows, key=lambda r: (not r["available"], not r["name"].startswith("digits"), r["name"]))


def domain_names() -> List[str]:
    return [r["name"] for r in domain_rows()]


def domain_label(name: str) -> str:
    """Picker label: the name, marked when its files are missing."""
    row = next((r for r in domain_rows() if r["name"] == name), None)
    return name if row is None or row["available"] else f"{name} (files missing)"


@st.cache_resource(show_spinner="Loading domain ...", max_entries=32)
def domain(name: str):
    """A loaded :class:`lepton.data.Domain` (shared, read-only)."""
    from lepton.data import load_domain
    return load_domain(name)


@st.cache_data(show_spinner="Checking the choice ...", max_entries=256)
def check(config_json: str) -> List[dict]:
    """:func:`lepton.training.jobs.check_config` of a JSON config (cached: a rerun costs nothing)."""
    from lepton.config import RunConfig
    from lepton.training.jobs import check_config
    return check_config(RunConfig.from_dict(json.loads(config_json)), kb=kb())


@st.cache_data(show_spinner="Comparing the domains ...", max_entries=64)
def shift_stats(first: str, second: str) -> Dict[str, object]:
    """:func:`lepton.evaluation.shift.domain_shift` of two domains (cached)."""
    from lepton.evaluation import shift
    return shift.domain_shift(domain(first), domain(second))


@st.cache_data(show_spinner="Finding the words that shifted ...", max_entries=32)
def words(first: str, second: str) -> Dict[str, object]:
    """:func:`lepton.evaluation.words.shifted_terms` and :func:`~lepton.evaluation.words.source_cues` (cached)."""
    from lepton.evaluation.words import shifted_terms, source_cues
    st_ = shifted_terms(domain(first), domain(second), top=12)
    return {"source": st_["source"], "target": st_["target"], "cues": source_cues(domain(first), domain(second), top=12)}


def data_dir():
    """The benchmark data folder (``$LEPTON_DATA_DIR`` or the user cache)."""
    from lepton.data import resolve_data_dir
    return resolve_data_dir()


def clear_domains() -> None:
    """Forget cached domain listings and data (after an upload or a download)."""
    domain_rows.clear()
    domain.clear()
    check.clear()
    shift_stats.clear()


def require_app_frame() -> None:
    """Make sure a page runs inside ``app.py``'s navigation frame.

    Streamlit keeps a legacy mode for apps with a ``pages/`` folder: until some session of the
    server has run ``st.navigation``, a page opened by its URL (``/explore``, a shared link) runs
    alone, without ``app.py`` (no page config, no sidebar, wrong menu). A page calls this first; in
    that mode it switches the server to navigation mode and reruns through ``app.py``, which then
    opens the same page. (Streamlit sets the same flag itself whenever ``st.navigation`` runs.)
    """
    try:
        from streamlit import config
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a future Streamlit without the legacy mode
        return
    if config.get_option("global.appTest"):
        return  # AppTest resets the mode before every run; tests address pages directly
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def lesson() -> bool:
    """Lesson mode: ``?lesson=1`` (or ``?lesson=<a lesson's key>``, :mod:`lepton.lessons`) in the URL
    hides advanced controls (kept for the session)."""
    qp = st.query_params.get("lesson")
    if qp is not None:
        st.session_state[LESSON_KEY] = qp.lower() not in ("0", "false", "no", "off")
        st.session_state[LESSON_KEY + "_name"] = qp
    return bool(st.session_state.get(LESSON_KEY, False))


def current_lesson():
    """The :class:`lepton.lessons.Lesson` the URL named (``?lesson=mild``), in lesson mode; else ``None``."""
    from lepton.lessons import find_lesson
    return find_lesson(st.session_state.get(LESSON_KEY + "_name", "")) if lesson() else None


def leave_lesson() -> None:
    """Back to the full app: lesson mode off (in the URL too, so a reload stays out)."""
    st.session_state[LESSON_KEY] = False
    st.session_state.pop(LESSON_KEY + "_name", None)
    st.query_params["lesson"] = "0"


OWNER_KEY = "lepton_owner"        # this browser session's token: the runs it starts are its own
TEACHER_KEY = "lepton_teacher"    # the session proved the teacher key once (kept for the session)
WATCH_KEY = "lepton_watch"        # another session's job this session watches (read-only)


def owner() -> str:
    """This browser session's token (random, kept in session state): the jobs it starts carry it,
    and only they (or a teacher's session) can be stopped from here."""
    if OWNER_KEY not in st.session_state:
        import uuid
        st.session_state[OWNER_KEY] = uuid.uuid4().hex
    return st.session_state[OWNER_KEY]


def teacher() -> bool:
    """Teacher mode: the server sets ``LEPTON_TEACHER_KEY`` and the URL carries ``?teacher=<that key>``
    once; a teacher's session may stop every run on the server (kept for the session)."""
    key = os.environ.get("LEPTON_TEACHER_KEY", "")
    given = st.query_params.get("teacher")
    if given is not None and key:
        import hmac
        st.session_state[TEACHER_KEY] = hmac.compare_digest(given, key)
    return bool(key) and bool(st.session_state.get(TEACHER_KEY, False))


def may_stop(job) -> bool:
    """Whether this session may stop ``job`` (its own, or any when a teacher)."""
    return jobs().may_stop(job, owner(), teacher())


def stop(job_id: str) -> None:
    """Stop a job on behalf of this session (:meth:`JobManager.stop` checks that it may)."""
    jobs().stop(job_id, by=owner(), teacher=teacher())


def current_job_id(kind: str = "run") -> Optional[str]:
    """The job of this kind (``run`` or ``pipeline``) this session started (newest), or ``None``.

    Another session's jobs are never adopted: they are listed to watch (:func:`watched_job_id`)."""
    key = PIPELINE_KEY if kind == "pipeline" else JOB_KEY
    jm = jobs()
    jid = st.session_state.get(key)
    if jid is not None:
        try:
            jm.get(jid)
            return jid
        except KeyError:
            st.session_state.pop(key, None)
    mine = [j for j in jm.owned(owner()) if getattr(j, "kind", "run") == kind]
    if mine:
        st.session_state[key] = mine[0].id
        return mine[0].id
    return None


def others(kind: Optional[str] = None) -> List:
    """Active jobs on this server that this session did not start (newest first); ``kind`` filters."""
    me = owner()
    return [j for j in jobs().active() if j.owner != me and (kind is None or getattr(j, "kind", "run") == kind)]


def watched_job_id() -> Optional[str]:
    """The other session's job this session chose to watch, while the server still knows it."""
    jid = st.session_state.get(WATCH_KEY)
    if jid is None:
        return None
    try:
        jobs().get(jid)
    except KeyError:
        st.session_state.pop(WATCH_KEY, None)
        return None
    return jid
