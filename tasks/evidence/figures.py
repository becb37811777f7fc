"""The HTML report's two figures (plotly), from the same `StudyReport` as every other surface.

The front (dev quality vs cost, p95 latency as colour) is drawn so a person can read it:
- every trial is one marker, in exactly one trace (its kind: incumbent, the decision's config,
  front, naive swap, other candidate); trials measured at the same point share one marker whose
  label names them all, so no marker hides another;
- every marker is labelled with its trial id(s) (the hover gives the config);
- the selected (or least-bad) config carries a ring and its own legend entry;
- the cost axis is logarithmic when the costs span a decade or more (eight models between $0.09 and
  $0.44 per 1k still read on a linear axis; $0.0004 and $0.44 do not);
- the legend sits under the plot, the latency colour bar at its right: they never overlap.
The slice chart names each bar group by its config, not by a trial number alone.
"""

from __future__ import annotations

from typing import Any

from offramp.tasks.evidence import display
from offramp.tasks.evidence.report import StudyReport, fmt
from offramp.tasks.evidence.reviewer import config_name, focus_trial_id
from offramp.tasks.evidence.verdicts import verdict_text
from offramp.warehouse.records import Trial

DECADE = 10.0  # costs spanning this ratio or more get a log axis


def cost_axis(costs: list[float | None]) -> str:
    """'log' when the positive costs span a decade or more (and none is zero or missing), else 'linear'."""
    known = [c for c in costs if c is not None]
    if not known or min(known) <= 0:
        return "linear"
    return "log" if max(known) / min(known) >= DECADE else "linear"


def _kind(r: StudyReport, t: Trial, focus: int | None) -> str:
    if t.role == "incumbent":
        return "incumbent"
    if t.trial_id == focus:
        return "selected" if r.selection.get("trial_id") == focus else "least bad"
    if r.on_front(t):
        return "front" if t.role != "naive_swap" else "front (naive swap)"
    return "naive swap" if t.role == "naive_swap" else "other candidates"


# kind -> (symbol, size, outline width); drawn in this order, so the important ones are on top. Every marker is
# filled with its p95 colour and outlined (an open marker in a light colour vanishes on the plot's background).
STYLE = {
    "other candidates": ("circle", 8, 0.5),
    "naive swap": ("diamond", 12, 1),
    "front": ("circle", 15, 2),
    "front (naive swap)": ("diamond", 15, 2),
    "incumbent": ("star", 18, 1),
    "least bad": ("square", 17, 3),
    "selected": ("square", 17, 3),
}
_RANK = {k: i for i, k in enumerate(STYLE)}


def front_points(r: StudyReport) -> list[dict[str, Any]]:
    """One point per distinct (cost, quality) of the dev trials: the trials there, its kind (the most
    important of theirs), its label and hover text."""
    focus = focus_trial_id(r)
    dev = [t for t in r.trials if t.split == "dev" and t.measurement.quality is not None and t.measurement.cost_per_1k_usd is not None]
    points: dict[tuple[float, float], dict[str, Any]] = {}
    for t in dev:
        m = t.measurement
        key = (float(f"{m.cost_per_1k_usd:.6g}"), round(m.quality, 4))
        p = points.setdefault(key, {"x": m.cost_per_1k_usd, "y": m.quality, "trials": [], "kind": "other candidates"})
        p["trials"].append(t)
        kind = _kind(r, t, focus)
        if _RANK[kind] > _RANK[p["kind"]]:
            p["kind"] = kind
    for p in points.values():
        ts = sorted(p["trials"], key=lambda t: t.trial_id)
        p["label"] = ",".join(str(t.trial_id) for t in ts) if len(ts) <= 3 else f"{ts[0].trial_id},… ({len(ts)})"
        p["hover"] = "<br>".join(f"trial {t.trial_id} ({t.role}): {t.label}; quality {fmt(t.measurement.quality)} "
                                 f"[{fmt(t.measurement.quality_ci_low)}, {fmt(t.measurement.quality_ci_high)}], "
                                 f"{display.usd(t.measurement.cost_per_1k_usd)}/1k, p95 {display.seconds(t.measurement.latency_p95_s)}"
                                 for t in ts)
        p["p95"] = max((t.measurement.latency_p95_s or 0.0) for t in ts)
        lead = next(t for t in ts if _kind(r, t, focus) == p["kind"])
        p["low"], p["high"] = lead.measurement.quality_ci_low, lead.measurement.quality_ci_high
    return sorted(points.values(), key=lambda p: (_RANK[p["kind"]], p["x"]))


def front_figure(r: StudyReport):
    import plotly.graph_objects as go

    points = front_points(r)
    fig = go.Figure()
    for kind, (symbol, size, outline) in STYLE.items():
        items = [p for p in points if p["kind"] == kind]
        if not items:
            continue
        name = f"{kind}: trial {focus_trial_id(r)}" if kind in ("selected", "least bad") else kind
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in items], y=[p["y"] for p in items], mode="markers+text", name=name,
            text=[p["label"] for p in items], textposition="top center", textfont={"size": 11},
            customdata=[[t.trial_id for t in p["trials"]] for p in items],
            hovertext=[p["hover"] for p in items], hoverinfo="text",
            marker={"symbol": symbol, "size": size, "color": [p["p95"] for p in items], "coloraxis": "coloraxis",
                    "opacity": 0.6 if kind == "other candidates" else 1.0,
                    "line": {"width": outline, "color": "crimson" if kind in ("selected", "least bad") else "#222"}},
            error_y={"type": "data", "symmetric": False, "thickness": 1, "width": 3,
                     "array": [(p["high"] - p["y"]) if p["high"] is not None else 0 for p in items],
                     "arrayminus": [(p["y"] - p["low"]) if p["low"] is not None else 0 for p in items]},
        ))
    axis = cost_axis([p["x"] for p in points])
    fig.update_layout(
        title=f"Dev split: quality vs cost (labels: trial ids; colour: p95 latency; cost axis {axis})",
        xaxis={"title": "cost per 1,000 requests (USD" + (", log scale)" if axis == "log" else ")"), "type": axis},
        yaxis={"title": "quality (95% CI)"},
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": max([p["p95"] for p in points] + [1e-3]),
                   "colorbar": {"title": "p95 s", "x": 1.02, "len": 0.8}},
        legend={"orientation": "h", "x": 0, "y": -0.22, "yanchor": "top"},
        margin={"b": 140}, height=560,
    )
    return fig


def slice_figure(r: StudyReport):
    """Per slice and config: candidate - incumbent on the held-out split, with its paired interval."""
    import plotly.graph_objects as go

    slices = [x for x in r.regressions if x["slice_field"] != "(all)"]
    if not slices:
        return None
    fig = go.Figure()
    for trial_id in sorted({x["trial_id"] for x in slices}):
        rows = [x for x in slices if x["trial_id"] == trial_id]
        fig.add_trace(go.Bar(
            name=config_name(r, trial_id), x=[f"{x['slice_field']}={x['slice_value']}" for x in rows],
            y=[x["diff"] for x in rows],
            error_y={"type": "data", "symmetric": False, "array": [x["diff_ci_high"] - x["diff"] for x in rows],
                     "arrayminus": [x["diff"] - x["diff_ci_low"] for x in rows]},
            hovertext=[f"n={x['n']}: {verdict_text(x)}; detectable before the study: {fmt(x.get('detectable_drop'))}" for x in rows],
        ))
    fig.update_layout(title="Per slice and config: candidate - incumbent on the held-out split (paired 95% CI)", barmode="group",
                      legend={"orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"}, margin={"b": 160}, height=480)
    return fig
