"""Plotly figures for the pages. Source is always blue and target always orange, on every page."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

SOURCE, TARGET, EXTRA = "#2563eb", "#ea580c", "#16a34a"
ROLE_COLORS = {"source": SOURCE, "target": TARGET, "eval": EXTRA}
ROLE_SYMBOLS = {"source": "circle", "target": "diamond", "eval": "square"}  # marker shapes on the maps
CORRECT_COLORS = {"correct": "#16a34a", "wrong": "#dc2626", "no label": "#94a3b8"}
CHECKPOINT_NAMES = {"selected": "label-free choice", "last": "last epoch", "oracle": "oracle (uses target labels)"}
#: One colour per checkpoint kind on every chart (the baseline is another run's label-free choice).
CHECKPOINT_COLORS = {"label-free choice": "#1e3a8a", "last epoch": "#94a3b8", "oracle (uses target labels)": "#a855f7",
                     "source-only baseline": "#f59e0b"}
WEBGL_ABOVE = 1000  # points; plotly's own threshold for scattergl


def _layout(fig: go.Figure, title: str = "", height: int = 320, **kw) -> go.Figure:
    fig.update_layout(title=dict(text=title, font=dict(size=15)), height=height,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0), **kw)
    return fig


def history_frame(history: Sequence[dict]) -> pd.DataFrame:
    """Flatten per-epoch rows (``epoch``, ``source_acc``, ``target_acc``, ``losses{}``) into a table."""
    rows = []
    for h in history:
        r = {"epoch": h.get("epoch"), "source": h.get("source_acc"), "target": h.get("target_acc")}
        r.update({f"loss:{k}": v for k, v in (h.get("losses") or {}).items()})
        rows.append(r)
    return pd.DataFrame(rows)


def accuracy_curves(history: Sequence[dict], epochs: Optional[int] = None, title: str = "Accuracy per epoch") -> go.Figure:
    """Source and target test accuracy per epoch."""
    df = history_frame(history)
    fig = go.Figure()
    for col, color in (("source", SOURCE), ("target", TARGET)):
        if col in df:
            fig.add_trace(go.Scatter(x=df["epoch"], y=df[col], name=f"{col} accuracy", mode="lines+markers",
                                     line=dict(color=color, width=3)))
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title=None)
    fig.update_xaxes(title=None, dtick=1, range=[0.8, max(epochs or 1, len(df)) + 0.2] if len(df) else None)
    return _layout(fig, title)


def ranking_curves(history: Sequence[dict], epochs: Optional[int] = None, title: str = "NDCG@10 per epoch") -> go.Figure:
    """A ranking run's NDCG@10 per epoch: all and cold-start test users, and the warm users'
    validation items (the label-free checkpoint score)."""
    fig = go.Figure()
    x = [h.get("epoch") for h in history]
    for key, name, color, dash in (("target_acc", "test users", TARGET, None), ("target_cold", "cold-start test users",
                                   SOURCE, None), ("score", "validation (label-free choice)", EXTRA, "dot")):
        fig.add_trace(go.Scatter(x=x, y=[h.get(key) for h in history], name=name, mode="lines+markers",
                                 line=dict(color=color, width=3, dash=dash)))
    fig.update_yaxes(rangemode="tozero", tickformat=".0%", title=None)
    fig.update_xaxes(title=None, dtick=1, range=[0.8, max(epochs or 1, len(x)) + 0.2] if x else None)
    return _layout(fig, title)


def is_diagnostic(name: str) -> bool:
    """Whether a reported value is a schedule or a rate (``lambda``, ``domain_acc``, ``mask_rate``), not a loss."""
    return name == "lambda" or name.endswith(("_acc", "_rate"))


def loss_curves(history: Sequence[dict], title: str = "Losses per epoch (mean over steps)",
                diagnostics: bool = False) -> go.Figure:
    """Each loss the method reports, per epoch; with ``diagnostics`` the schedules and rates instead
    (``lambda``, the discriminator's ``domain_acc``, self-training's ``mask_rate``), in a chart of their own."""
    df = history_frame(history)
    fig = go.Figure()
    for col in [c for c in df.columns if c.startswith("loss:") and is_diagnostic(c[5:]) == diagnostics]:
        fig.add_trace(go.Scatter(x=df["epoch"], y=df[col], name=col[5:], mode="lines+markers"))
    fig.update_xaxes(title=None, dtick=1)
    return _layout(fig, title)


def has_diagnostics(history: Sequence[dict]) -> bool:
    """Whether any epoch reported a schedule or rate besides its losses."""
    return any(is_diagnostic(k) for h in history for k in (h.get("losses") or {}))


def accuracy_bars(table: List[dict]) -> go.Figure:
    """Per-domain test accuracy: source and target; the target at each checkpoint (label-free vs oracle)."""
    df = pd.DataFrame(table)
    if df.empty:
        return _layout(go.Figure(), "No accuracy recorded")
    title = "Test accuracy per domain"
    if "labelled" in df:
        unlabelled = sorted(set(df.loc[df["labelled"] == False, "domain"]))  # noqa: E712 (NaN-safe)
        df = df[df["labelled"] != False]  # noqa: E712
        if unlabelled:
            title += f" — {', '.join(unlabelled)}: no labels, no accuracy"
    df["checkpoint"] = df["checkpoint"].map(lambda c: CHECKPOINT_NAMES.get(c, c))
    split = df["split"].map({"all": "all rows", "test": "test"}) if "split" in df else "test"
    df["bar"] = df["role"] + ": " + df["domain"] + " (" + split + (", n=" + df["n"].astype(str) if "n" in df else "") + ")"
    fig = px.bar(df, x="bar", y="accuracy", color="checkpoint", barmode="group", text_auto=".1%",
                 color_discrete_map=CHECKPOINT_COLORS, color_discrete_sequence=["#475569"],
                 hover_data={"n": True, "domain": True, "bar": False})
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", title=None)
    fig.update_xaxes(title=None)
    return _layout(fig, title, height=340)


def per_class_bars(per_class: List[dict]) -> go.Figure:
    df = pd.DataFrame(per_class)
    if df.empty:
        return _layout(go.Figure(), "No per-class accuracy")
    fig = px.bar(df, x="class", y="accuracy", text_auto=".0%", hover_data=["n"], color_discrete_sequence=[TARGET])
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", title=None)
    fig.update_xaxes(type="category")
    return _layout(fig, "Target accuracy per class")


def confusion_heatmap(confusion: List[List[int]], class_names: Sequence[str]) -> go.Figure:
    names = [str(c) for c in class_names][:len(confusion)]
    fig = px.imshow(confusion, x=names, y=names, text_auto=True, color_continuous_scale="Oranges",
                    labels=dict(x="predicted", y="true", color="count"), aspect="auto")
    fig.update_xaxes(type="category", side="bottom")
    fig.update_yaxes(type="category")
    return _layout(fig, "Target confusion matrix", height=380, coloraxis_showscale=False)


def feature_map(df: pd.DataFrame, color_by: str, title: str = "", height: int = 520) -> go.Figure:
    """Scatter of a projection (``x``, ``y``, ``domain``, ``label``, ``pred``, ``correct``, ``row``).

    Row ids travel in ``custom_data`` (selections map back through them); WebGL above ~1,000 points.
    """
    df = df.copy()
    df["label"] = df["label"].astype(str)
    df["pred"] = df["pred"].astype(str)
    df["result"] = df["correct"].astype(object).map({True: "correct", False: "wrong"}).fillna("no label")
    color = {"domain": "domain", "class": "label", "correct": "result"}.get(color_by, color_by)  # or a metadata column
    cmap = CORRECT_COLORS if color_by == "correct" else None
    if color_by == "domain":  # by role: the target keeps its colour whatever the number of sources
        doms = list(dict.fromkeys(df["domain"]))
        roles = dict(zip(df["domain"], df["role"])) if "role" in df else {}
        if roles:
            src = iter([SOURCE, "#9333ea", "#0891b2", "#65a30d", "#be185d"])
            cmap = {d: TARGET if roles[d] == "target" else EXTRA if roles[d] == "eval" else next(src, EXTRA)
                    for d in doms}
        else:
            cmap = {d: c for d, c in zip(doms, [SOURCE, TARGET, EXTRA, "#9333ea", "#0891b2"])}
    fig = px.scatter(df, x="x", y="y", color=color, custom_data=["row"], color_discrete_map=cmap,
                     category_orders={"label": sorted(df["label"].unique(), key=_natural)},
                     render_mode="webgl" if len(df) > WEBGL_ABOVE else "svg",
                     hover_data={"x": False, "y": False, "domain": True, "label": True, "pred": True, "row": False,
                                 **({"text": True} if "text" in df else {}),
                                 **{c: True for c in ("speaker", "accent") if c in df}})
    fig.update_traces(marker=dict(size=6 if len(df) < 3000 else 4, opacity=0.8))
    if color_by != "domain" and "role" in df:  # colour by class or result: the marker shape tells the domains apart
        role = dict(zip(df["row"], df["role"]))
        for tr in fig.data:
            tr.marker.symbol = [ROLE_SYMBOLS.get(role.get(cd[0]), "square") for cd in tr.customdata]
        title = (title + " · " if title else "") + "● source  ◆ target" + ("  ■ other" if (df["role"] == "eval").any() else "")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig = _layout(fig, title, height=height, dragmode="lasso", legend_title_text="", plot_bgcolor="#fafafa")
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
                      margin=dict(t=60))
    return fig


def highlight_rows(fig: go.Figure, rows: Sequence[int]) -> go.Figure:
    """A copy of a :func:`feature_map` figure with the points of snapshot ``rows`` selected (the others
    dimmed), as plotly draws a selection."""
    keep = set(int(r) for r in rows)
    out = go.Figure(fig)
    for tr in out.data:
        tr.selectedpoints = [i for i, cd in enumerate(tr.customdata) if int(cd[0]) in keep]
    return out


def _natural(s: str):
    return (0, int(s)) if s.lstrip("-").isdigit() else (1, s)


def selected_rows(event) -> List[int]:
    """Row ids of a plotly selection event (``customdata`` may be a list or a dict ``{"0": id}``)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return []
    out = []
    for p in points:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if cd is None:
            continue
        v = list(cd.values())[0] if isinstance(cd, dict) else (cd[0] if isinstance(cd, (list, tuple)) else cd)
        out.append(int(v))
    return sorted(set(out))


def overlay_curves(curves: Dict[str, Sequence[dict]]) -> go.Figure:
    """Target (solid) and source (dotted) accuracy of several runs, one colour per run."""
    fig = go.Figure()
    palette = px.colors.qualitative.Bold
    for i, (name, hist) in enumerate(curves.items()):
        df = history_frame(hist)
        if df.empty:
            continue
        c = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=df["epoch"], y=df["target"], name=f"{name} target", line=dict(color=c, width=3)))
        fig.add_trace(go.Scatter(x=df["epoch"], y=df["source"], name=f"{name} source",
                                 line=dict(color=c, dash="dot"), opacity=0.7))
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    fig.update_xaxes(title=None, dtick=1)
    return _layout(fig, "Accuracy per epoch (solid: target, dotted: source)", height=380)


def transfer_matrix(tm) -> go.Figure:
    """Heatmap source x target of one method at one checkpoint (a :class:`lepton.kb.matrix.TransferMatrix`):
    colour = mean target accuracy over seeds, text = ``mean ± std (n)``."""
    mean, hover = tm.mean, tm.text.where(tm.text != "", "no run with a value here")
    fig = go.Figure(go.Heatmap(z=mean.to_numpy(dtype=float), x=[str(c) for c in mean.columns],
                               y=[str(i) for i in mean.index], text=tm.text.to_numpy(), texttemplate="%{text}",
                               customdata=hover.to_numpy(), zmin=0, zmax=1, colorscale="Blues",
                               colorbar=dict(title="mean", tickformat=".0%"),
                               hovertemplate="%{y} → %{x}<br>%{customdata}<br>target accuracy in %: mean ± std (n seeds)"
                                             "<extra></extra>"))
    fig.update_xaxes(title="target", type="category", side="bottom")
    fig.update_yaxes(title="source", type="category", autorange="reversed")
    what = {"selected": "label-free checkpoint", "last": "last epoch",
            "oracle": "oracle checkpoint, uses target labels"}[tm.checkpoint]
    who = f"{tm.method} (oracle: uses target labels)" if tm.oracle_method else tm.method
    return _layout(fig, f"Transfer matrix: {who}, {what}, mean ± std over seeds (n)", height=360)


def class_balance(counts: Dict[str, int], title: str = "Examples per class (train)") -> go.Figure:
    df = pd.DataFrame({"class": list(counts), "n": list(counts.values())})
    fig = px.bar(df, x="class", y="n", text_auto=True, color_discrete_sequence=["#475569"])
    fig.update_xaxes(type="category", title=None)
    fig.update_yaxes(title=None)
    return _layout(fig, title, height=260)


def class_distance(per_class: pd.DataFrame) -> go.Figure:
    """Per-class centroid distance between two domains (``class``, ``distance_relative``)."""
    col = "distance_relative" if "distance_relative" in per_class else per_class.columns[-1]
    fig = px.bar(per_class, x="class", y=col, color_discrete_sequence=[TARGET], text_auto=".2f")
    fig.update_xaxes(type="category", title=None)
    fig.update_yaxes(title="distance / spread")
    return _layout(fig, "How far each class moved between the two domains", height=260)


MODEL_BAR, FLOOR_BAR = "#1e3a8a", "#94a3b8"


def transfer_scores(df: pd.DataFrame, score: str, name: str, target: str, floor: str = "untrained") -> go.Figure:
    """One horizontal bar per scored model (rows of ``df``: ``label``, ``run_id``, ``score``), best on
    top; the floor (``run_id == floor``, an untrained network) grey and hatched, with a dashed line.

    Bars start a little left of the lowest score, not at 0: LEEP is never positive and LogME can be
    negative, so a longer bar is always a better score.
    """
    d = df.sort_values(score, ascending=True, kind="stable")  # plotly draws the first row at the bottom
    vals = d[score].astype(float)
    lo, hi = float(vals.min()), float(vals.max())
    pad = 0.1 * (hi - lo) or 0.1 * abs(hi) or 0.1
    base = lo - pad
    is_floor = (d["run_id"] == floor).to_list()
    fig = go.Figure(go.Bar(
        y=d["label"], x=vals - base, base=base, orientation="h", text=[f"{v:.3f}" for v in vals],
        textposition="outside", cliponaxis=False, customdata=d[["run_id"]].to_numpy(),
        marker=dict(color=[FLOOR_BAR if f else MODEL_BAR for f in is_floor],
                    pattern=dict(shape=["/" if f else "" for f in is_floor], fgcolor="#475569")),
        hovertemplate=f"%{{y}}<br>{name} %{{text}}<br>run %{{customdata[0]}}<extra></extra>"))
    if any(is_floor):
        fig.add_vline(x=float(vals[d["run_id"] == floor].iloc[0]), line_dash="dash", line_color="#475569",
                      annotation_text="untrained floor", annotation_position="top")
    fig.update_xaxes(range=[base, hi + 2.5 * pad], title=f"{name} (higher: predicted to transfer better)",
                     zeroline=False)
    fig.update_yaxes(title=None, type="category")
    return _layout(fig, f"{name} of each stored model on {target}", height=max(240, 90 + 38 * len(d)),
                   showlegend=False)
