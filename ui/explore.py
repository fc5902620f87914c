"""Cached reads of the knowledge base for the Explore and Runs pages (thin wrappers over lepton.kb)."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import streamlit as st

from . import charts, images, state

FINISHED = ("completed", "stopped")


def all_runs() -> pd.DataFrame:
    """``kb.list_runs()`` (never cached: runs appear while you watch)."""
    kb = state.kb()
    return kb.list_runs() if kb is not None else pd.DataFrame()


def require_runs(runs: pd.DataFrame, hint: str = "") -> None:
    """Stop the page with a pointer to Train when the knowledge base is missing or holds no runs."""
    if state.kb() is None or runs.empty:
        st.info(f"No stored runs yet: train one on the **Train** page{hint}.", icon=":material/info:")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()


def short(run_id: str) -> str:
    """The distinctive tail of a run id (ids start with the date)."""
    return str(run_id)[-6:]


def finished_runs() -> pd.DataFrame:
    """Completed or stopped runs, newest first."""
    df = all_runs()
    return df[df["status"].isin(FINISHED)].reset_index(drop=True) if not df.empty else df


def run_label(runs: pd.DataFrame) -> Callable[[str], str]:
    """``format_func`` for a run picker: method, domains, target accuracy, date."""
    by_id = runs.set_index("run_id").to_dict("index")

    def fmt(rid: str) -> str:
        r = by_id.get(rid, {})
        acc = r.get("target_acc")
        what = "NDCG@10" if r.get("task") == "ranking" else "target"  # a ranking run's main metric, not accuracy
        acc = "" if acc is None or (isinstance(acc, float) and math.isnan(acc)) else f" · {what} {100 * acc:.1f}%"
        when = str(r.get("created", ""))[:16].replace("T", " ")
        flag = " · ⚠ diverged" if r.get("diverged") else ""
        return f"{r.get('method')}: {r.get('source')} → {r.get('target')}{acc}{flag} · {when} · {short(rid)}"
    return fmt


@st.cache_data(show_spinner=False, max_entries=64, ttl=600)
def run_info(run_id: str) -> Dict:
    """``kb.get_run(run_id)`` without the folder path (cached; a finished run does not change)."""
    info = dict(state.kb().get_run(run_id))
    info["run_dir"] = str(info.get("run_dir", ""))
    return info


def baseline_id(cfg: Dict, runs: pd.DataFrame) -> Optional[str]:
    """The newest stored source-only run on the same source -> target pair ("before adaptation")."""
    if cfg.get("method") == "source-only" or runs.empty:
        return None
    src = cfg.get("source")
    src = " + ".join(src) if isinstance(src, list) else src
    base = runs[(runs["method"] == "source-only") & (runs["source"] == src)
                & (runs["target"] == cfg.get("target"))]
    return None if base.empty else str(base.iloc[0]["run_id"])


def stage_table(info: Dict, baseline: Optional[Dict]) -> List[dict]:
    """The run's accuracy table plus the baseline run's selected accuracies, if any."""
    table = [dict(r) for r in info["summary"].get("table", [])]
    if baseline is not None:
        for r in baseline["summary"].get("table", []):
            if r["checkpoint"] == "selected" and r["role"] in ("source", "target"):
                table.append({**r, "checkpoint": "source-only baseline"})
    order = {"source-only baseline": 0, "selected": 1, "last": 2, "oracle": 3}
    return sorted(table, key=lambda r: (r["role"] != "source", order.get(r["checkpoint"], 9)))


@st.cache_resource(show_spinner=False, max_entries=32)
def accuracy_figures(run_id: str, baseline: Optional[str]) -> Dict:
    """Figures of the Accuracy tab (built once per run: a rerun only re-sends them)."""
    info = run_info(run_id)
    summary = info["summary"]
    names = info.get("class_names") or [r["class"] for r in summary.get("per_class", [])]
    return {"bars": charts.accuracy_bars(stage_table(info, run_info(baseline) if baseline else None)),
            "per_class": charts.per_class_bars(summary.get("per_class", [])),
            "confusion": charts.confusion_heatmap(summary["confusion"], names) if summary.get("confusion") else None}


def show_gap(gap: Optional[Dict]) -> None:
    """Metrics of the domain gap in the features, before -> after training (lower is better aligned)."""
    if not gap:
        return
    b, a = gap["before"], gap["after"]
    st.markdown(f"**Domain gap in the model's features** (epoch {b['epoch']} → epoch {a['epoch']})")
    cols = st.columns(3)
    for col, (key, label, fmt, hlp) in zip(cols, [
            ("proxy_a_distance", "proxy A-distance", ".2f", "0: the domains' features are indistinguishable; 2: fully separable."),
            ("mmd_relative", "MMD (relative)", ".3f", "Distance between the domains' mean features, divided by their spread."),
            ("mean_class_distance", "class-centroid distance", ".2f", "Mean distance between a class's centres in the two domains.")]):
        if a[key] != a[key]:  # NaN: the class-centroid distance needs labels in both domains
            col.metric(label, "no labels", help=hlp + " Needs labels in both domains; the target has none.")
            continue
        change = a[key] - b[key]
        same = format(change, fmt).lstrip("-").strip("0.") == ""  # rounds to zero at the shown precision
        saturated = key == "proxy_a_distance" and min(a[key], b[key]) >= 1.98
        col.metric(label, format(a[key], fmt), None if same else format(change, "+" + fmt), delta_color="inverse",
                   help=hlp + (" Both values are at the ceiling of 2 (a linear classifier separates the domains "
                               "perfectly before and after): read the MMD instead." if saturated else ""))
        if same:
            col.caption("unchanged" + (" (at its ceiling of 2: read the MMD)" if saturated else ""))


@st.cache_data(show_spinner=False, max_entries=32)
def feature_shift(run_id: str) -> Optional[Dict]:
    """:func:`lepton.evaluation.shift.shift_statistics` (before vs after training), or ``None`` if unavailable."""
    try:
        from lepton.evaluation import shift
        out = shift.shift_statistics(state.kb(), run_id)
    except Exception:  # noqa: BLE001 - no snapshots, too few points: the page simply leaves it out
        return None
    out.pop("per_class", None)
    return out


@st.cache_data(show_spinner="Computing the map …", max_entries=32)
def _aligned_pca(run_id: str) -> pd.DataFrame:
    from lepton.evaluation import projection
    return _clean(projection.aligned_maps(state.kb(), run_id, method="pca"))


@st.cache_data(show_spinner="Computing the map …", max_entries=64)
def _single_pca(run_id: str, epoch: int, domains: Optional[tuple] = None) -> pd.DataFrame:
    from lepton.evaluation import projection
    return _clean(projection.compute_map(state.kb(), run_id, epoch=epoch, method="pca",
                                         domains=list(domains) if domains else None))


def _frames(run_id: str, epoch: int, method: str, aligned: bool,
            domains: Optional[tuple] = None) -> Tuple[Optional[pd.DataFrame], bool]:
    """``(frames, pending)``: PCA here (milliseconds); UMAP and t-SNE from the server's map process.
    ``domains``: snapshot domain ids to map (default all; not with ``aligned``)."""
    if method == "pca":
        return (_aligned_pca(run_id) if aligned else _single_pca(run_id, epoch, domains)), False
    kw = {"run_id": run_id, "method": method} if aligned else {"run_id": run_id, "epoch": epoch, "method": method}
    if domains:
        kw["domains"] = list(domains)
    status, value = state.map_worker().submit("aligned" if aligned else "map", **kw)
    if status == "error":
        raise RuntimeError(value)
    return (_clean(value) if status == "done" else None), status == "pending"


def _frame(df: pd.DataFrame) -> tuple:
    """Axis ranges ``((x0, x1), (y0, y1))`` holding every point of a map, with a 5 % margin."""
    pad = lambda s: (float(s.min()) - 0.05 * float(np.ptp(s)), float(s.max()) + 0.05 * float(np.ptp(s)))  # noqa: E731
    return pad(df["x"]), pad(df["y"])


def map_frame(run_id: str, epoch: int, method: str, aligned: bool,
              domains: Optional[tuple] = None) -> Tuple[pd.DataFrame, Optional[tuple], str]:
    """``(points, axis ranges or None, the projection drawn)`` of the map at one epoch. While the map
    process fits a UMAP / t-SNE map, the PCA map is drawn at once (``"pca"`` is returned then)."""
    df, pending = _frames(run_id, int(epoch), method, aligned, domains)
    shown = method
    if pending:
        df, _ = _frames(run_id, int(epoch), "pca", aligned, domains)
        shown = "pca"
    if not aligned:
        return df, None, shown
    return df[df["epoch"] == int(epoch)].reset_index(drop=True), _frame(df), shown


@st.cache_resource(show_spinner=False, max_entries=64)
def _figure(run_id: str, epoch: int, shown: str, aligned: bool, color_by: str, isolate: str, _df: pd.DataFrame,
            _ranges):
    fig = charts.feature_map(_df, color_by, title=f"{shown.upper()} of the features at epoch {epoch}"
                             + ("" if isolate == "all" else f" — only {isolate}"))
    if _ranges:
        fig.update_xaxes(range=_ranges[0]).update_yaxes(range=_ranges[1])
    return fig


#: What the map can isolate besides ``all``: a domain role, the wrong predictions, or ``class NAME``.
ISOLATE = ("all", "source", "target", "wrong predictions")


def isolate_rows(df: pd.DataFrame, isolate: str) -> pd.DataFrame:
    """The map's points to draw: ``all``, one role (``source``, ``target``), the ``wrong predictions``
    (labelled points whose prediction differs) or ``class NAME`` (true label)."""
    if isolate == "all":
        return df
    if isolate in ("source", "target"):
        return df[df["role"] == isolate] if "role" in df else df
    if isolate == "wrong predictions":
        return df[df["correct"].eq(False).fillna(False).astype(bool)]
    if isolate.startswith("class "):
        return df[df["label"].astype(str) == isolate[len("class "):]]
    raise ValueError(f"cannot isolate {isolate!r}")


def map_view(run_id: str, epoch: int, method: str, aligned: bool, color_by: str, isolate: str = "all"):
    """``(points, figure, pending)``: ``pending`` while the asked-for projection is still being fitted
    (a PCA map is shown meanwhile; :func:`wait_for_map` reruns the page when it is ready). With
    ``isolate`` (:func:`isolate_rows`) only those points are drawn, on the whole map's axes."""
    df, ranges, shown = map_frame(run_id, epoch, method, aligned)
    df = with_meta(run_id, with_snippets(run_id, df))
    if isolate != "all" and ranges is None and len(df):  # keep the whole map's frame, so points stay put
        ranges = _frame(df)
    part = isolate_rows(df, isolate)
    return part, _figure(run_id, int(epoch), shown, aligned, color_by, isolate, part, ranges), shown != method


def wait_for(pending: Callable[[], bool], message: str) -> None:
    """A small fragment that asks ``pending()`` once a second (a map-process answer not in yet; a
    ``RuntimeError`` counts as in) and reruns the page when it is in; shows ``message`` meanwhile."""
    @st.fragment(run_every=1.0)
    def poll() -> None:
        try:
            still = pending()
        except RuntimeError:
            still = False
        if not still:
            st.rerun()
        st.caption(f":material/hourglass_top: {message}")
    poll()


def wait_for_map(run_id: str, epoch: int, method: str, aligned: bool, domains: Optional[tuple] = None) -> None:
    """Poll the map process (:func:`wait_for`) and rerun the page when the map is in."""
    wait_for(lambda: _frames(run_id, int(epoch), method, aligned, domains)[1],
             f"{method.upper()} is being fitted in the map process; the PCA map is shown meanwhile.")


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("domain", "label", "pred"):
        df[c] = df[c].astype(str)
    df["correct"] = df["correct"].astype("boolean")  # NA: a row without a label (unlabelled target)
    return df


def selection_texts(run_id: str, part: pd.DataFrame) -> Optional[pd.DataFrame]:
    """The selected rows of one text domain with their texts, label and prediction (``None`` for
    other domains): :meth:`lepton.kb.KnowledgeBase.snapshot_texts`."""
    texts = _texts(run_id, int(part["domain_id"].iloc[0]), tuple(int(i) for i in part["index"][:200]))
    if texts is None:
        return None
    out = part.iloc[:len(texts)][["domain", "label", "pred"]].copy()
    out.insert(0, "text", texts)
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def _texts(run_id: str, domain_id: int, index: tuple) -> Optional[list]:
    """:meth:`lepton.kb.KnowledgeBase.snapshot_texts`, once per run, domain and rows (the map asks on
    every rerun, for image runs too); ``None`` for a domain without texts or one that is gone."""
    try:
        return state.kb().snapshot_texts(run_id, domain_id, list(index))
    except Exception:  # noqa: BLE001 - the domain may be gone: no texts
        return None


def with_snippets(run_id: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``text`` column (the first 120 characters behind each point) for a run of text
    domains; unchanged otherwise."""
    parts = []
    for d, part in df.groupby("domain_id", sort=False):
        texts = _texts(run_id, int(d), tuple(int(i) for i in part["index"]))
        if texts is None:
            return df
        parts.append(pd.Series([t[:120] + ("…" if len(t) > 120 else "") for t in texts], index=part.index))
    return df.assign(text=pd.concat(parts)) if parts else df


#: Per-row metadata a map can be coloured by, when the run's domains carry it (audio: speakers).
META_COLOURS = ("speaker", "accent", "gender")


@st.cache_data(show_spinner=False, max_entries=64)
def _meta(run_id: str, domain_id: int, index: tuple) -> Dict[str, list]:
    """:meth:`lepton.kb.KnowledgeBase.snapshot_meta` once per run, domain and rows; ``{}`` when gone."""
    try:
        return state.kb().snapshot_meta(run_id, domain_id, list(index))
    except Exception:  # noqa: BLE001 - the domain may be gone: no metadata
        return {}


def is_speech(run_id: str) -> bool:
    """Whether the run's domains are audio (only those carry speakers, clips and accents)."""
    return run_info(run_id).get("modality") == "audio"


def with_meta(run_id: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the :data:`META_COLOURS` columns its domains carry (``"–"`` for rows of a domain
    without them); unchanged for a run that is not speech (its domains are not read again)."""
    if not is_speech(run_id):
        return df
    cols: Dict[str, pd.Series] = {}
    for d, part in df.groupby("domain_id", sort=False):
        meta = _meta(run_id, int(d), tuple(int(i) for i in part["index"]))
        for k in META_COLOURS:
            if k in meta:
                cols.setdefault(k, pd.Series("–", index=df.index, dtype=object))
                cols[k].loc[part.index] = meta[k]
    return df.assign(**cols) if cols else df


def play_selection(run_id: str, part: pd.DataFrame, n: int = 3) -> bool:
    """Players for the first ``n`` selected clips of one audio domain; ``False`` for other runs."""
    if not is_speech(run_id):
        return False
    try:
        d, rows = state.kb().snapshot_rows(run_id, int(part["domain_id"].iloc[0]), [int(i) for i in part["index"][:n]])
    except Exception:  # noqa: BLE001 - the domain may be gone
        return False
    if d.modality != "audio":
        return False
    images.play_clips(d, "test", rows)
    return True


PAGE = 60  # selected images shown at a time, per domain
SELECTION_KEY = "map_selection"  # {"run", "rows", "view"}: the last lasso/box selection and the map it was made on


def remember_selection(run_id: str, view: list, rows: List[int]) -> List[int]:
    """Keep a selection made on the map ``view`` (``rows``, the snapshot row ids); an empty event on
    the very map it was made on means the user cleared it. Returns ``rows``."""
    saved = st.session_state.get(SELECTION_KEY)
    if rows:
        st.session_state[SELECTION_KEY] = {"run": run_id, "rows": list(rows), "view": list(view)}
    elif saved and saved["view"] == list(view):
        st.session_state.pop(SELECTION_KEY, None)
    return rows


def kept_selection(run_id: str, view: list) -> List[int]:
    """The rows selected on another view of the same run (another epoch, projection, colouring), to
    show and highlight on this one; ``[]`` when none (or it was made on this very view)."""
    saved = st.session_state.get(SELECTION_KEY)
    if not saved or saved["run"] != run_id or saved["view"] == list(view):
        return []
    return list(saved["rows"])


def confusion_cell(event) -> Optional[Tuple[str, str]]:
    """``(true class, predicted class)`` of a click on the confusion matrix, or ``None``."""
    try:
        p = event["selection"]["points"][0]
        return str(p["y"]), str(p["x"])
    except (KeyError, IndexError, TypeError):
        return None


def select_cell(run_id: str, true: str, pred: str) -> int:
    """Select on the map (as a kept selection) the target examples of the last feature snapshot whose
    label is ``true`` and prediction ``pred``; returns how many there are."""
    f = state.kb().load_features(run_id)
    cls = [str(c) for c in f["class_names"]]
    tgt = [i for i, r in enumerate(f["domain_roles"]) if r == "target"]
    if true not in cls or pred not in cls:
        return 0
    rows = np.flatnonzero(np.isin(f["domain"], tgt) & (f["labels"] == cls.index(true)) & (f["preds"] == cls.index(pred)))
    st.session_state[SELECTION_KEY] = {"run": run_id, "rows": [int(r) for r in rows], "view": ["confusion", true, pred]}
    return len(rows)


def forget_selection() -> None:
    st.session_state.pop(SELECTION_KEY, None)


@st.cache_data(show_spinner="Finding the nearest neighbours …", max_entries=64)
def _neighbours(run_id: str, epoch: int, row: int) -> pd.DataFrame:
    from lepton.evaluation.neighbours import nearest_in_each_domain
    return nearest_in_each_domain(state.kb(), run_id, row, epoch=epoch, k=6)


def neighbours_view(run_id: str, epoch: int, sel: pd.DataFrame) -> None:
    """Pick one selected example and see its nearest neighbours in the features, from every domain."""
    options = [int(r) for r in sel["row"][:200]]
    labels = {int(r.row): f"row {int(r.row)}: {r.domain}, label {r.label}, predicted {r.pred}" for r in sel.itertuples()}
    pick = st.selectbox("Nearest neighbours in the features of", [None] + options, key="nn_pick",
                        format_func=lambda r: "pick a selected example …" if r is None else labels.get(r, str(r)),
                        help="The examples of each domain closest to it in the model's feature space (not on the "
                             "2-D map): what the model sees as alike across the domains.")
    if pick is None:
        return
    try:
        nn = _neighbours(run_id, int(epoch), int(pick))
    except Exception as e:  # noqa: BLE001 - a snapshot gone meanwhile: say so, never a traceback
        st.error(f"Cannot find the neighbours: {e}", icon=":material/error:")
        return
    st.dataframe(nn[["domain", "label", "pred", "distance"]].rename(columns={"pred": "prediction"}), hide_index=True,
                 key="nn_table", column_config={"distance": st.column_config.NumberColumn(format="%.3f")})
    for dom_name, part in nn.groupby("domain", sort=False):
        img = selection_images(run_id, part)
        if img is not None:
            st.image(img, caption=f"{dom_name}: the {len(part)} nearest, nearest first")


def selection_images(run_id: str, part: pd.DataFrame) -> Optional[np.ndarray]:
    """A mosaic of (up to :data:`PAGE` of) the selected test images of one domain of a run: the inputs
    behind the snapshot rows, exactly as the run saw them (:meth:`lepton.kb.KnowledgeBase.snapshot_inputs`)."""
    try:
        x = state.kb().snapshot_inputs(run_id, int(part["domain_id"].iloc[0]), [int(i) for i in part["index"][:PAGE]])
    except Exception:  # noqa: BLE001 - the domain may be gone (an upload removed); skip the pictures
        return None
    return images.mosaic(x, cols=12, tile=36) if len(x) and x.ndim == 4 else None


def ranking_table(summary: dict) -> pd.DataFrame:
    """A ranking run's results: one row per checkpoint and user group, HR@10 / NDCG@10 in %, n users."""
    names = {"selected": "label-free choice [model]", "last": "last epoch", "oracle": "oracle (test items)"}
    rows = [{"checkpoint": names.get(r["checkpoint"], r["checkpoint"]),
             "epoch": summary["checkpoints"][r["checkpoint"]]["epoch"], "users": r["users"],
             "HR@10 %": round(100 * r["hr@10"], 1), "NDCG@10 %": round(100 * r["ndcg@10"], 1), "n": r["n"]}
            for r in summary.get("table", [])]
    return pd.DataFrame(rows)
