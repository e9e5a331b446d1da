"""The demo report's chart (matplotlib): full labels, negative bars, error bars, parameters and latency;
without matplotlib the markdown is still written and says how to get the chart."""
import sys

import pytest

from kdhub.report import DPI, PANEL_SIZE, plot, write_report
from kdhub.task import DemoResult, ModelResult

matplotlib = pytest.importorskip("matplotlib")

ROWS = [ModelResult("teacher (big)", 8.5, 2_300_000, 12.0),
        ModelResult("baseline", -1.5, 150_000, 1.25, std=0.5),
        ModelResult("distilled with a long method name", 2.0, 150_000, None, std=0.75)]


def results():
    return [DemoResult("speech", "separation", "SI-SNRi (dB)", list(ROWS)),
            DemoResult("graph", "node classification", "accuracy (%)", [ModelResult("teacher", 80.0, 90_000, 0.4)])]


def test_chart_is_a_png_of_the_expected_size_with_negative_and_error_bars(tmp_path):
    from matplotlib.colors import to_rgb
    from matplotlib.container import BarContainer
    from matplotlib.image import imread

    axes = plot(results(), tmp_path / "report.png")
    image = imread(tmp_path / "report.png")
    assert image.shape == (round(PANEL_SIZE[1] * DPI), round(2 * PANEL_SIZE[0] * DPI), 3)

    ax = axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == [8.5, -1.5, 2.0]  # the negative value is a bar below zero, not an empty one
    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    segments = bars.errorbar.lines[2][0].get_segments()  # one vertical error line per bar
    assert [(round(s[0][1], 6), round(s[1][1], 6)) for s in segments] == [(8.5, 8.5), (-2.0, -1.0), (1.25, 2.75)]
    captions = [t.get_text() for t in ax.get_xticklabels()]
    assert captions[0] == "teacher (big)\n2.30M params\nlatency 12 ms"
    assert captions[2].replace("\n", " ").startswith("distilled with a long method name 150.0k params")
    assert captions[2].endswith("latency not measured")
    assert [t.get_text() for t in ax.texts] == ["8.50", "-1.50 ± 0.50", "2.00 ± 0.75"]

    # the pixel in the middle of the negative bar has that bar's colour
    x, y = ax.transData.transform((1, -0.75))
    pixel = image[int(image.shape[0] - y), int(x)]
    assert pixel == pytest.approx(to_rgb(bars.patches[1].get_facecolor()), abs=0.02)


def test_without_matplotlib_the_markdown_says_how_to_get_the_chart(tmp_path, monkeypatch, capsys):
    (tmp_path / "report.png").write_bytes(b"stale")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    md = write_report(results(), tmp_path).read_text()
    assert "| baseline | -1.50 ± 0.50 | 150,000 | 1.250 |" in md
    assert "pip install 'kdhub[report]'" in md and "report.png" not in md
    assert not (tmp_path / "report.png").exists()
    assert "pip install 'kdhub[report]'" in capsys.readouterr().err
