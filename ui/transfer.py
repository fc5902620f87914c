"""Glue for the "Transfer from?" page: which stored model will transfer best to a labelled target.

The scores (:func:`lepton.evaluation.transferability.rank_encoders`) are computed in the server's
map process, never here; this module asks for them, labels the rows and fills the Train page.
"""
from __future__ import annotations

from typing import Any, List, Tuple

import pandas as pd
import streamlit as st

from . import explore, state

SCORES = {"logme": "LogME", "leep": "LEEP", "h_score": "H-score"}
UNTRAINED = "untrained"  # the run id rank_encoders gives the floor (a fresh, untrained network)


def target_names() -> List[str]:
    """Domains a ranking can be asked for: every registered domain but recommendation interactions."""
    return [r["name"] for r in state.domain_rows() if r.get("modality") != "interactions"]


def default_target(names: List[str]) -> str:
    """The target of the newest completed run when it can be picked, else the first domain."""
    runs = explore.all_runs()
    done = runs[runs["status"] == "completed"] if not runs.empty else runs
    for t in done.get("target", []):
        if t in names:
            return t
    return names[0] if names else ""


def candidates(target: str) -> List[str]:
    """The stored runs to score for ``target``: completed classification runs of its modality, newest
    first (:func:`lepton.evaluation.transferability.rankable_runs`; reads the store, computes nothing)."""
    from lepton.data.catalog import domain_modality
    from lepton.evaluation.transferability import rankable_runs
    kb, modality = state.kb(), domain_modality(target)
    return rankable_runs(kb, modality) if kb is not None and modality else []


def ranking(target: str, runs: List[str]) -> Tuple[str, Any]:
    """``(status, value)`` of the ranking from the map process: ``("pending", None)``, ``("done", DataFrame)``
    or ``("error", message)``. ``runs`` is part of the question, so a newly stored run is scored."""
    return state.map_worker().submit("rank", target=target, runs=list(runs))


def pending(target: str, runs: List[str]) -> bool:
    """Whether the map process is still scoring (for :func:`ui.explore.wait_for`)."""
    return ranking(target, runs)[0] == "pending"


def label(row) -> str:
    """A bar's and a button's name: method, source and the run id's tail; the floor says what it is."""
    if row["run_id"] == UNTRAINED:
        return "untrained network (the floor)"
    return f"{row['method']} · {row['source']} · {explore.short(row['run_id'])}"


def table(df: pd.DataFrame, score: str) -> pd.DataFrame:
    """The ranking best first by ``score``, with a rank column and each row's label."""
    out = df.sort_values(score, ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "#", range(1, len(out) + 1))
    out.insert(1, "model", [label(r) for _, r in out.iterrows()])
    return out.rename(columns={"run_id": "run id", **SCORES})


def finetune_from(run_id: str, target: str) -> None:
    """Fill the Train page to fine-tune ``run_id``'s encoder on ``target`` and switch to it.

    Same sources as that run (the input space its encoder knows), method ``finetune`` with no source
    pre-training (``pretrain_fraction`` 0: the stored encoder is the pre-training) and ``init_from`` the
    run. Source, target and method also go in the URL, where the Train page reads them first.
    """
    cfg = explore.run_info(run_id)["config"]
    sources = list(cfg["source"]) if isinstance(cfg["source"], (list, tuple)) else [cfg["source"]]
    st.session_state.update({"source": sources[0], "extra_sources": sources[1:], "target": target,
                             "method": "finetune", "hp_finetune_pretrain_fraction": 0.0, "init_from": run_id})
    from lepton.config import SCALINGS
    if cfg.get("scaling") in SCALINGS:
        st.session_state["scaling"] = cfg["scaling"]  # the same input scaling as the encoder was trained with
    st.switch_page("pages/train.py", query_params={"source": sources[0], "target": target, "method": "finetune"})
