"""Demo reports: a comparison table on the terminal, ``report.md`` and ``report.png`` in the work dir."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from .checkpoint import atomic_write_text
from .png import PALETTE, Canvas
from .task import DemoResult


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


def markdown(results: Sequence[DemoResult]) -> str:
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
    out.append("![comparison](report.png)")
    return "\n".join(out) + "\n"


def plot(results: Sequence[DemoResult], path: Path) -> Path:
    """One panel per domain: a bar per model with its metric above it and its name (two lines) below."""
    panel_w, panel_h, margin, gap = 480, 320, 30, 30
    canvas = Canvas(margin + len(results) * (panel_w + margin), panel_h + 2 * margin)
    for p, res in enumerate(results):
        x0 = margin + p * (panel_w + margin)
        canvas.text(x0, 8, f"{res.domain}: {res.metric_name}"[:38])
        top = max([r.metric for r in res.rows] + [1e-9])
        base_y, height = margin + panel_h - 60, panel_h - 110
        bar_w = min(80, (panel_w - 20) // max(len(res.rows), 1) - gap)
        chars = max(1, (bar_w + gap - 4) // 12)
        canvas.rect(x0, base_y, x0 + panel_w, base_y + 2, (0, 0, 0))
        for i, r in enumerate(res.rows):
            bx = x0 + 10 + i * (bar_w + gap)
            h = int(height * max(r.metric, 0.0) / top)
            canvas.rect(bx, base_y - h, bx + bar_w, base_y, PALETTE[i % len(PALETTE)])
            label = f"{r.metric:.1f}"
            canvas.text(bx + (bar_w - Canvas.text_width(label)) // 2, base_y - h - 20, label)
            first, _, rest = r.role.partition(" ")
            for line, y in ((first, base_y + 10), (rest, base_y + 30)):
                line = line[:chars]
                canvas.text(bx + (bar_w - Canvas.text_width(line)) // 2, y, line)
    return canvas.save(path)


def write_report(results: Sequence[DemoResult], work_dir: Path) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    plot(results, work_dir / "report.png")
    return atomic_write_text(work_dir / "report.md", markdown(results))
