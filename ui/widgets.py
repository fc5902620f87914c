"""Widgets generated from the core's declarations (methods' hyper-parameters, domain pickers, messages)."""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import streamlit as st

from . import state


def hparam_inputs(method: str, method_cls, prefix: str = "hp", disabled: bool = False,
                  bind: bool = False) -> Dict[str, object]:
    """One widget per declared hyper-parameter (``method_cls.all_hparams()``), with its help text.

    Returns only the values that differ from the defaults, so the stored config stays short. With
    ``bind`` each value that differs from its default also lives in the URL (``?hp_dann_trade_off=0.5``),
    so a shared link carries it.
    """
    b = "query-params" if bind else None
    decl = method_cls.all_hparams()
    values: Dict[str, object] = {}
    cols = st.columns(3)
    for i, (name, hp) in enumerate(decl.items()):
        key, label = f"{prefix}_{method}_{name}", name.replace("_", " ")
        with cols[i % 3]:
            if hp.kind == "choice":
                v = st.selectbox(label, hp.choices, index=list(hp.choices).index(hp.default), help=hp.help,
                                 key=key, disabled=disabled, bind=b)
            elif hp.kind == "bool":
                v = st.toggle(label, value=bool(hp.default), help=hp.help, key=key, disabled=disabled, bind=b)
            elif hp.kind == "int":
                v = st.number_input(label, _bound(hp.low, int), _bound(hp.high, int), int(hp.default), step=1,
                                    help=hp.help, key=key, disabled=disabled, bind=b)
            else:
                v = st.number_input(label, _bound(hp.low, float), _bound(hp.high, float), float(hp.default),
                                    step=_step(hp), format="%g", help=hp.help, key=key, disabled=disabled, bind=b)
        if v != hp.default:
            values[name] = v
    return values


def _bound(v, kind):
    return None if v is None else kind(v)


def _step(hp) -> float:
    """A step of about a tenth of the default's order of magnitude (0.0001 for lr = 0.001)."""
    span = (float(hp.high) - float(hp.low)) / 100 if hp.low is not None and hp.high is not None else 0.0
    ref = abs(float(hp.default)) or span or 0.01
    return float(10 ** math.floor(math.log10(ref)) / (10 if hp.log else 1))


def domain_select(label: str, key: str, default: str, help: Optional[str] = None,
                  names: Optional[List[str]] = None) -> str:
    """A domain selectbox bound to the URL query string (``?key=name``); ``names``: the domains offered
    (default all)."""
    names = state.domain_names() if names is None else list(names)
    index = names.index(default) if default in names else 0
    return st.selectbox(label, names, index=index, key=key, format_func=state.domain_label, help=help,
                        bind="query-params")


def show_problems(problems: List[dict]) -> bool:
    """Draw :func:`lepton.training.jobs.check_config` results; return whether any is an error."""
    icons = {"error": ":material/block:", "warning": ":material/warning:", "info": ":material/info:"}
    for p in problems:
        getattr(st, p["level"])(p["message"], icon=icons[p["level"]])
    return any(p["level"] == "error" for p in problems)


def intro(title: str, text: str, lesson: bool = False) -> None:
    """Page title with a short student-facing explanation."""
    st.title(title)
    st.markdown(f"<p class='lepton-intro'>{text}</p>", unsafe_allow_html=True)


def _fill(lesson) -> None:
    for k, v in (("source", lesson.source), ("target", lesson.target), ("method", lesson.method),
                 ("epochs", lesson.epochs), ("extra_sources", [])):
        st.session_state[k] = v


def lesson_guide() -> None:
    """In lesson mode: with a named lesson, what to press, what to watch and a question to ask; and
    a way back to the full app."""
    x = state.current_lesson()
    if x is not None:
        st.info(f"**Lesson: {x.title}** (`{x.source} → {x.target}`, {x.method}, {x.epochs} epochs)\n\n"
                f"1. Press **Start training** below.\n2. Watch: {x.watch}\n\n**Question:** {x.question}",
                icon=":material/school:")
    st.button("Back to the full app", key="leave_lesson_page", icon=":material/logout:", on_click=state.leave_lesson,
              help="Leave lesson mode: every setting and page control comes back.")


def lessons() -> None:
    """The ready lessons (:mod:`lepton.lessons`): a button each that fills the Train page, and what to watch."""
    from lepton.lessons import LESSONS
    with st.expander("Ready lessons: pick one, press Start, watch", icon=":material/school:"):
        for lesson in LESSONS:
            c1, c2 = st.columns([1, 3])
            c1.button(lesson.title, key=f"lesson_{lesson.key}", on_click=_fill, args=(lesson,),
                      width="stretch")
            c2.caption(f"`{lesson.source} → {lesson.target}`, {lesson.method}, {lesson.epochs} epochs. {lesson.watch}")
