"""Demo reports: a comparison table on the terminal, ``report.md`` and ``report.png`` (drawn with matplotlib,
the optional ``report`` extra) in the work dir, and ``kdhub demo --json``'s record of one demo run (each
domain's rows and wall time, with the commit and machine that produced them)."""
from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence

from .checkpoint import atomic_write_bytes, atomic_write_text
from .task import DemoResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PANEL_SIZE = (4.8, 4.4)  # inches per domain panel
DPI = 100
NO_PLOT = "matplotlib is not installed; pip install 'kdhub[report]' for the chart"


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _fmt_metric(row) -> str:
    return f"{row.metric:.2f}" + (f" ± {row.std:.2f}" if row.std is not None else "")


def table_lines(result: DemoResult) -> List[str]:
    header = ["model", result.metric_name, "params", "latency (ms)"]
    body = [[r.role, _fmt_metric(r), _fmt_params(r.params), "-" if r.latency_ms is None else f"{r.latency_ms:.3f}"]
            for r in result.rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [result.title, line(header), line(["-" * w for w in widths])] + [line(b) for b in body]


def markdown(results: Sequence[DemoResult], chart: bool = True) -> str:
    out = ["# kdhub demo report", ""]
    for res in results:
        out += [f"## {res.title}", "", f"| model | {res.metric_name} | params | latency (ms) |", "|---|---|---|---|"]
        for r in res.rows:
            lat = "-" if r.latency_ms is None else f"{r.latency_ms:.3f}"
            out.append(f"| {r.role} | {_fmt_metric(r)} | {r.params:,} | {lat} |")
        out.append("")
        out += [f"- {n}" for n in res.notes]
        if res.notes:
            out.append("")
    out.append("![comparison](report.png)" if chart else f"(no chart: {NO_PLOT})")
    return "\n".join(out) + "\n"


def plot(results: Sequence[DemoResult], path: Path) -> List["Axes"]:
    """Draw ``report.png``: one panel per domain with a bar per model (its metric, the std as an error
    bar, negative values below the zero line) and, under each bar, the model's full name, parameters and
    latency. Returns the panels' Axes. Needs matplotlib (``pip install 'kdhub[report]'``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image  # a dependency of matplotlib

    fig = Figure(figsize=(PANEL_SIZE[0] * max(len(results), 1), PANEL_SIZE[1]), dpi=DPI, layout="constrained")
    axes = list(fig.subplots(1, max(len(results), 1), squeeze=False)[0])
    for ax, res in zip(axes, results):
        x = list(range(len(res.rows)))
        stds = [r.std or 0.0 for r in res.rows]
        ax.bar(x, [r.metric for r in res.rows], color=[f"C{i % 10}" for i in x], width=0.6,
               yerr=stds if any(stds) else None, capsize=5, error_kw={"elinewidth": 1.2})
        for i, (r, std) in enumerate(zip(res.rows, stds)):  # the value beyond the bar's end and error bar
            up = r.metric >= 0
            ax.annotate(_fmt_metric(r), (i, r.metric + (std if up else -std)), xytext=(0, 3 if up else -3),
                        textcoords="offset points", ha="center", va="bottom" if up else "top", fontsize=9)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.margins(y=0.15)  # room for the value labels above (or below) the bars
        ax.set_xticks(x, [_bar_caption(r) for r in res.rows], fontsize=8)
        ax.set_ylabel(res.metric_name)
        ax.set_title(textwrap.fill(f"{res.domain}: {res.title}", 48), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    # an opaque chart needs no alpha channel: an RGB PNG is smaller and reads the same everywhere
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    data = io.BytesIO()
    image.save(data, format="PNG")
    atomic_write_bytes(path, data.getvalue())
    return axes


def _bar_caption(row) -> str:
    """The text under a bar: the model's name (wrapped, never cut), its parameters and latency."""
    latency = "not measured" if row.latency_ms is None else f"{row.latency_ms:.3g} ms"
    return f"{textwrap.fill(row.role, 14)}\n{_fmt_params(row.params)} params\nlatency {latency}"


def write_report(results: Sequence[DemoResult], work_dir: Path) -> Path:
    """Write ``report.md`` and, when matplotlib is installed, ``report.png``; returns the markdown's path.
    Without matplotlib the markdown says how to get the chart and a stale chart is removed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    chart = work_dir / "report.png"
    try:
        plot(results, chart)
        drawn = True
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("matplotlib", "PIL"):
            raise
        chart.unlink(missing_ok=True)
        drawn = False
        print(f"kdhub: {chart.name} not drawn: {NO_PLOT}", file=sys.stderr)
    return atomic_write_text(work_dir / "report.md", markdown(results, chart=drawn))


def demo_record(results: Sequence[DemoResult], wall_times: Mapping[str, float], total_s: float,
                reused: Sequence[str] = ()) -> Dict[str, Any]:
    """One demo run as JSON: per domain its metric, each model's value, parameters and latency, the domain's
    wall time and whether its work dir held an earlier demo's runs, whose finished parts were reused (``reused``:
    those domains; their figures and time are not this run's alone); the whole run's wall time; the commit,
    command and machine (:mod:`kdhub.provenance`)."""
    from .provenance import run_info
    domains = {}
    for res in results:
        domains[res.domain] = {
            "title": res.title, "metric": res.metric_name, "wall_time_s": round(wall_times[res.domain], 1),
            "reused_earlier_runs": res.domain in reused,
            "rows": [{"model": r.role, "metric": r.metric, "std": r.std, "params": r.params,
                      "latency_ms": r.latency_ms} for r in res.rows],
            "notes": list(res.notes)}
    return {"benchmark": "kdhub demo", **run_info(), "wall_time_s": round(total_s, 1), "domains": domains}


def write_demo_json(record: Mapping[str, Any], path: Path) -> Path:
    return atomic_write_text(Path(path), json.dumps(record, indent=2) + "\n")
