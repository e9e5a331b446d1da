"""The READMEs' measured figures are the committed JSONs' own: every script that prints README text from
``results/`` prints exactly what the README holds, so a rerun whose JSON is committed without its text (or a
figure edited by hand) fails here instead of leaving the README stale."""
from __future__ import annotations

import subprocess
import sys

import pytest

from core_helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from profile_readme import BEFORE_TEACHER_FIRST, EARLIER_SPEECH_PROFILE  # noqa: E402
from speech_readme import EARLIER_GPU_TEACHER  # noqa: E402

PRINTERS = [
    (["profile_readme.py"], "README.md"),
    *[(["profile_readme.py", name], "README.md")
      for name in ("summary", "tiny", "scale", "speech", "speech_recipe", "speech_cache", "detection", "segmentation",
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
    (["accuracy_check_readme.py"], "README.md"),
]
#: the printers that compare with a JSON of an earlier commit, read with ``git show`` (and that commit)
FROM_HISTORY = {("profile_readme.py", "summary"): BEFORE_TEACHER_FIRST, ("speech_readme.py",): EARLIER_GPU_TEACHER,
                ("profile_readme.py", "speech"): EARLIER_SPEECH_PROFILE}


def _has_commit(commit: str) -> bool:
    try:
        return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT,
                              capture_output=True).returncode == 0
    except OSError:  # no git on this machine
        return False


@pytest.mark.parametrize("args,readme", PRINTERS, ids=[" ".join(a) for a, _ in PRINTERS])
def test_readme_holds_what_the_script_prints(args, readme):
    commit = FROM_HISTORY.get(tuple(args))
    if commit and not _has_commit(commit):
        pytest.skip(f"this checkout lacks commit {commit[:7]}, whose JSON the text compares with (a shallow clone)")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.rstrip("\n")
    assert printed and printed in (ROOT / readme).read_text(encoding="utf-8"), (
        f"{readme} does not hold what scripts/{' '.join(args)} prints from results/; paste its output")
