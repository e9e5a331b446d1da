"""The READMEs' measured figures are the committed JSONs' own: every script that prints README text from
``results/`` prints exactly what the README holds, so a rerun whose JSON is committed without its text (or a
figure edited by hand) fails here instead of leaving the README stale."""
from __future__ import annotations

import subprocess
import sys

import pytest

from core_helpers import ROOT

#: the commits whose JSONs some paragraphs compare with, read with ``git show``
COMPARED_COMMITS = ("471c642", "6669f38")

PRINTERS = [
    (["profile_readme.py"], "README.md"),
    *[(["profile_readme.py", name], "README.md")
      for name in ("summary", "tiny", "scale", "speech", "speech_cache", "detection", "segmentation",
                   "detection_recipe", "segmentation_recipe", "graph", "core")],
    (["demo_readme.py", "results/demo.json"], "README.md"),
    (["demo_readme.py", "results/demo_graph.json"], "README.md"),
    (["graph_readme.py", "beside the test suite and short profiling runs on the other core"], "README.md"),
    (["graph_readme.py", "plugin"], "plugins/graph/README.md"),
    (["graph_readme.py", "plugin-scale", "the test suite"], "plugins/graph/README.md"),
    (["speech_readme.py"], "README.md"),
    (["segmentation_readme.py"], "README.md"),
    (["segmentation_readme.py", "configs"], "plugins/segmentation/README.md"),
    (["segmentation_readme.py", "plugin"], "plugins/segmentation/README.md"),
    (["detection_readme.py"], "README.md"),
    (["detection_readme.py", "plugin"], "plugins/detection/README.md"),
    (["gpu_readme.py"], "README.md"),
    (["gpu_readme.py", "startup"], "README.md"),
    (["suite_timing.py", "--readme"], "README.md"),
]


def _history() -> bool:
    """Whether this checkout has the commits the comparisons read (a shallow clone may not)."""
    return all(subprocess.run(["git", "cat-file", "-e", f"{c}^{{commit}}"], cwd=ROOT, capture_output=True).returncode
               == 0 for c in COMPARED_COMMITS)


@pytest.mark.parametrize("args,readme", PRINTERS, ids=[" ".join(a) for a, _ in PRINTERS])
def test_readme_holds_what_the_script_prints(args, readme):
    if not _history():
        pytest.skip("a shallow checkout: the compared commits' JSONs cannot be read")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.rstrip("\n")
    assert printed and printed in (ROOT / readme).read_text(encoding="utf-8"), (
        f"{readme} does not hold what scripts/{' '.join(args)} prints from results/; paste its output")
