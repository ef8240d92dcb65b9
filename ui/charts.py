"""Plotly figures built from a run's time series; every axis has units and time runs along x."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

GIB = 2**30
MIB = 2**20


@dataclass(frozen=True)
class Style:
    """Chart height and font sizes (px): for a screen, or for a projector read from the back of a room."""

    height: int
    font: int  # axis titles and legend
    title: int
    tick: int


SCREEN = Style(height=300, font=14, title=16, tick=12)
PROJECTOR = Style(height=420, font=18, title=22, tick=18)
HEIGHT = SCREEN.height


def _figure(title: str, y_title: str, y_range=None, style: Style = SCREEN) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "font": {"size": style.title}},
        font={"size": style.font},
        height=style.height,
        margin={"l": 10, "r": 10, "t": 40 + style.title, "b": 10},
        xaxis_title="time since Launch (s)",
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.3, "font": {"size": style.font}},
        hovermode="x unified",
    )
    # Streamlit's theme sets tick and axis-title sizes of its own, which a layout-wide font does not reach
    fig.update_xaxes(tickfont_size=style.tick, title_font_size=style.font)
    fig.update_yaxes(tickfont_size=style.tick, title_font_size=style.font)
    if y_range:
        fig.update_yaxes(range=y_range)
    fig.update_xaxes(rangemode="tozero")
    return fig


def _series(points: list[dict], key: str, scale: float = 1.0) -> tuple[list, list]:
    xs, ys = [], []
    for p in points:
        xs.append(p["t"])
        value = p.get(key)
        ys.append(None if value is None else value / scale)
    return xs, ys


def throughput(
    points: list[dict],
    ceiling: float | None = None,
    name: str = "",
    previous: tuple[str, list[dict]] | None = None,
    style: Style = SCREEN,
) -> go.Figure:
    """Images/sec (smoothed) and the average since Launch; `previous` (label, points) faintly, to compare with."""
    fig = _figure("Throughput", "images / s", style=style)
    if previous:
        label, before = previous
        xs, ys = _series(before, "images_per_sec")
        fig.add_scatter(x=xs, y=ys, name=label, mode="lines", line={"width": 2, "color": "#999999"}, opacity=0.45)
    xs, ys = _series(points, "images_per_sec")
    fig.add_scatter(x=xs, y=ys, name=f"{name}images/s", mode="lines", line={"width": 2})
    xs, ys = _series(points, "cumulative_images_per_sec")
    fig.add_scatter(x=xs, y=ys, name=f"{name}average since Launch", mode="lines", line={"dash": "dash", "width": 2})
    fig.update_yaxes(rangemode="tozero")
    if ceiling:
        fig.add_hline(y=ceiling, line_dash="dash", line_color="gray", annotation_text="GPU ceiling")
    return fig


def _gpu_series(points: list[dict], node: str | None):
    """(label, readings per point) for each GPU, on one node or all of them."""
    keys = sorted({(g.get("node", ""), g["index"]) for p in points for g in p.get("gpus") or []})
    keys = [k for k in keys if node is None or k[0] == node]
    several_nodes = len({k[0] for k in keys}) > 1
    for key in keys:
        label = f"{key[0]} GPU {key[1]}" if several_nodes else f"GPU {key[1]}"
        yield label, [next((g for g in p.get("gpus") or [] if (g.get("node", ""), g["index"]) == key), None)
                      for p in points]  # fmt: skip


def gpu_util(points: list[dict], node: str | None = None, style: Style = SCREEN) -> go.Figure:
    """Utilisation of each GPU, in percent; dashed in its colour, its JPEG decoders' on GPUs that have them."""
    from plotly.colors import qualitative

    fig = _figure("GPU utilisation", "%", [0, 105], style=style)
    xs = [p["t"] for p in points]
    for i, (label, gpus) in enumerate(_gpu_series(points, node)):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]  # plotly's own order, set so both lines share it
        util = [g["util_pct"] if g else None for g in gpus]
        fig.add_scatter(x=xs, y=util, name=label, mode="lines", line={"color": color})
        jpeg = [g.get("jpeg_util_pct") if g else None for g in gpus]
        if any(v is not None for v in jpeg):
            fig.add_scatter(x=xs, y=jpeg, name=f"{label} JPEG engines", mode="lines",
                            line={"dash": "dash", "color": color})  # fmt: skip
    return fig


def gpu_memory(points: list[dict], node: str | None = None, style: Style = SCREEN) -> go.Figure:
    """Memory used on each GPU, against its size."""
    fig = _figure("GPU memory", "GiB", style=style)
    xs = [p["t"] for p in points]
    for label, gpus in _gpu_series(points, node):
        used = [g["mem_used_bytes"] / GIB if g and g["mem_used_bytes"] is not None else None for g in gpus]
        fig.add_scatter(x=xs, y=used, name=f"{label} used", mode="lines")
        total = next((g["mem_total_bytes"] for g in gpus if g and g["mem_total_bytes"]), None)
        if total:
            fig.add_hline(y=total / GIB, line_dash="dash", line_color="gray", annotation_text=f"{label} size")
    return fig


def object_store(points: list[dict], node: str | None = None, style: Style = SCREEN) -> go.Figure:
    """Ray object store used and spilled, against its capacity.

    The capacity line is drawn once use comes within sight of it; until then it
    is named in the title, so small use stays readable, and the axis reaches at
    least 5 % of it, so a store almost empty never fills the chart.
    """
    capacity = max((p.get("object_store_capacity_bytes") or 0 for p in points), default=0)
    peak = max((p.get("object_store_used_bytes") or 0 for p in points), default=0)
    near = capacity and peak > 0.2 * capacity
    scale, unit = (GIB, "GiB") if near or peak > GIB else (MIB, "MiB")
    y_title = unit if near or not capacity else f"{unit} (of {capacity / GIB:.1f} GiB)"
    fig = _figure("Ray object store", y_title, style=style)
    if node is None:
        xs, ys = _series(points, "object_store_used_bytes", scale)
    else:
        xs = [p["t"] for p in points]
        ys = [(p.get("object_store_by_node") or {}).get(node, 0) / scale for p in points]
        fig.update_layout(title={"text": f"Ray object store on {node}"})
    fig.add_scatter(x=xs, y=ys, name="used", mode="lines", line={"width": 2}, fill="tozeroy")
    xs, ys = _series(points, "object_store_spilled_bytes", scale)
    fig.add_scatter(
        x=xs, y=ys, name="spilled to disk (total)", mode="lines", line={"dash": "dot", "color": "firebrick"}
    )
    if near:
        fig.add_hline(y=capacity / scale, line_dash="dash", line_color="gray", annotation_text="capacity")
        fig.update_yaxes(rangemode="tozero")
    else:
        fig.update_yaxes(range=[0, max(peak * 1.15, 0.05 * capacity) / scale])
    return fig


def host(points: list[dict], style: Style = SCREEN) -> go.Figure:
    """CPU % (left axis) and RAM used (right axis) of the machine running the app."""
    fig = _figure("CPU and RAM (this machine)", "CPU %", [0, 105], style=style)
    xs, ys = _series(points, "cpu_pct")
    fig.add_scatter(x=xs, y=ys, name="CPU %", mode="lines")
    xs, ys = _series(points, "ram_used_bytes", GIB)
    fig.add_scatter(x=xs, y=ys, name="RAM used (GiB)", mode="lines", yaxis="y2")
    fig.update_layout(yaxis2={"title": {"text": "RAM GiB", "font": {"size": style.font}}, "overlaying": "y",
                              "side": "right", "rangemode": "tozero", "tickfont": {"size": style.tick}})  # fmt: skip
    return fig


def overlay(runs: list[tuple[str, list[dict]]]) -> go.Figure:
    """Images/sec of several runs on one time axis."""
    fig = _figure("Throughput, overlaid", "images / s")
    for label, points in runs:
        xs, ys = _series(points, "images_per_sec")
        fig.add_scatter(x=xs, y=ys, name=label, mode="lines")
    return fig


def legend_at_foot(fig: go.Figure, plot_height: int, style: Style = SCREEN) -> None:
    """Put a bar chart's legend under its axis title (above the plot, its rows ran into the chart's title)."""
    top, foot = 40 + style.title, round(7.5 * style.font)  # the foot holds the axis title and 2-3 legend rows
    fig.update_layout(
        height=top + foot + plot_height,
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0, "traceorder": "normal"},
        margin={"l": 10, "r": 10, "t": top, "b": foot},
    )


def startup_timeline(startup: dict[str, float] | None, loads: list[dict], style: Style = SCREEN) -> go.Figure:
    """Launch -> first result as one stacked bar, and every model load as its own bar."""
    fig = _figure("Start-up: from Launch to the first result", "", style=style)
    fig.update_layout(barmode="stack", xaxis_title_text="seconds after Launch")
    legend_at_foot(fig, 70 + 22 * min(len(loads), 20), style)
    if startup:
        for phase, seconds in startup.items():
            fig.add_bar(y=["start-up"], x=[seconds], name=phase.replace("_", " "), orientation="h")
    for i, load in enumerate(loads[:20]):
        fig.add_bar(
            y=[f"load {i + 1}"],
            x=[load["end_s"] - load["start_s"]],
            base=[load["start_s"]],
            orientation="h",
            marker_color="indianred",
            showlegend=i == 0,
            name="each model load (its own row)",
        )
    fig.update_yaxes(autorange="reversed", title_text=None)
    return fig


COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa")  # plotly's first colours, so a run's marks match its line


def store_side_by_side(runs: list[tuple[str, list[dict], float | None]]) -> go.Figure:
    """Object store used by each run in its own panel, on one MiB scale; a dotted line where its first result arrived.

    Each panel keeps its own time axis: runs pay different start-ups, so the
    shape within a run is what compares, not where it sits on a shared clock.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(runs), shared_yaxes=True, subplot_titles=[r[0] for r in runs])
    for col, (label, points, first_read) in enumerate(runs, 1):
        color = COLORS[(col - 1) % len(COLORS)]
        xs, ys = _series(points, "object_store_used_bytes", MIB)
        fig.add_scatter(x=xs, y=ys, name=label, mode="lines", line={"width": 2, "color": color}, row=1, col=col)
        if first_read is not None:
            fig.add_vline(
                x=first_read, line_dash="dot", line_color=color, annotation_text="first result read", row=1, col=col
            )
        fig.update_xaxes(title_text="time since Launch (s)", rangemode="tozero", row=1, col=col)
    fig.update_yaxes(title_text="MiB", rangemode="tozero", row=1, col=1)
    fig.update_layout(
        title={"text": "Ray object store", "font": {"size": SCREEN.title}},
        height=HEIGHT + 20,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        showlegend=False,
        hovermode="x unified",
    )
    return fig


STAGE_TIMES = {
    "wall_s": "operator wall time (first task start to last end)",
    "task_wall_s": "task wall time (sum over tasks)",
    "task_cpu_s": "task CPU time (sum over tasks)",
    "submission_backpressure_s": "held back: no new tasks launched",
    "output_backpressure_s": "held back: outputs not read (downstream full)",
}


def stage_times(rows: list) -> go.Figure:
    """Seconds per executed operator, source at the top: its own times, and the time Ray held it back."""
    fig = _figure("Where the time went, per operator", "")
    names = [r.operator for r in rows]
    for attr, label in STAGE_TIMES.items():
        fig.add_bar(y=names, x=[getattr(r, attr) for r in rows], name=label, orientation="h")
    fig.update_layout(barmode="group", height=200 + 90 * len(rows), xaxis_title_text="seconds", hovermode="y unified")
    fig.update_yaxes(autorange="reversed", title_text=None)
    return fig


CELL_MARKS = {"oom": "out of memory", "failed": "failed", "stopped": "stopped", "skipped": "skipped",
              "pending": "…", "running": "running"}  # fmt: skip


def sweep_heatmap(cells: list[dict], value: str, title: str, scale: float = 1.0, unit: str = "") -> go.Figure:
    """Batch size across, concurrency down; each cell shows its figure, or why it has none."""
    batches = sorted({c["batch_size"] for c in cells})
    concurrencies = sorted({c["concurrency"] for c in cells})
    by_point = {(c["batch_size"], c["concurrency"]): c for c in cells}
    fig = go.Figure()
    z = [[None] * len(batches) for _ in concurrencies]
    for row, conc in enumerate(concurrencies):
        for col, batch in enumerate(batches):
            cell = by_point.get((batch, conc))
            if cell is None:
                continue
            figure = cell.get(value) if cell["status"] == "finished" else None
            if figure is not None:
                z[row][col] = figure / scale
            label = f"{figure / scale:,.1f}{unit}" if figure is not None else CELL_MARKS.get(cell["status"], "n/a")
            fig.add_annotation(x=col, y=row, text=label, showarrow=False, font={"color": "black", "size": 13},
                               bgcolor="rgba(255,255,255,0.7)")  # fmt: skip
    columns, rows = list(range(len(batches))), list(range(len(concurrencies)))
    # every grid point as a grey cell first, so the whole grid shows from the start
    fig.add_heatmap(z=[[0] * len(columns) for _ in rows], x=columns, y=rows, showscale=False, hoverinfo="skip",
                    colorscale=[[0, "#eeeeee"], [1, "#eeeeee"]], xgap=3, ygap=3)  # fmt: skip
    if any(v is not None for line in z for v in line):
        fig.add_heatmap(z=z, x=columns, y=rows, colorscale="Viridis", hoverongaps=False, xgap=3, ygap=3,
                        colorbar={"title": unit.strip() or None})  # fmt: skip
    fig.update_layout(
        title={"text": title, "font": {"size": SCREEN.title}},
        height=max(HEIGHT, 90 * len(concurrencies) + 120),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    fig.update_xaxes(title="batch size", tickvals=columns, ticktext=[str(b) for b in batches], showgrid=False)
    fig.update_yaxes(title="concurrency", tickvals=rows, ticktext=[str(c) for c in concurrencies], showgrid=False)
    return fig
