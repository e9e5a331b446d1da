"""What the scripts that print README text from ``results/`` share: hard-wrapping, the commit a JSON records, and
a JSON as an earlier commit holds it.

The READMEs paste those scripts' output as it is, so the wrapping must keep Markdown's reading of it: no wrapped line
starts with what Markdown takes for a list item, heading, quote or table row, short code spans are never split, and a
figure stays on the line of its unit.
"""
from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]

WIDTH = 120
#: stands for a space that wrapping must not break (inside a code span, between a figure and its unit); callers may
#: put it in their own text for the same purpose
KEEP = "\ue000"
#: a space before one of these may not become a line break: the next line would start with what Markdown reads as a
#: list item, heading, quote or table row
BLOCK_START = r" (?=(?:[-+*]|1[.)]) |[#>|])"
UNITS = r"(min|s|ms|dB|MB|GB|AP|mIoU)"


def wrap(text: str, width: int = WIDTH, first: str = "", rest: str = "") -> str:
    """``text`` as one paragraph wrapped to ``width`` (``first``/``rest``: the first and the other lines' indent,
    e.g. ``"- "`` and ``"  "`` for a list item), with the guarantees of the module docstring."""
    text = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", KEEP) if len(m.group(0)) <= width // 2
                  else m.group(0), text)
    text = re.sub(rf"(\d) {UNITS}\b", rf"\1{KEEP}\2", text)
    text = re.sub(r"\bmin (\d)", rf"min{KEEP}\1", text)
    text = re.sub(BLOCK_START, KEEP, text)
    return "\n".join(textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                                    break_long_words=False, break_on_hyphens=False)).replace(KEEP, " ")


def json_commit(record: dict) -> str:
    """The short commit a benchmark's JSON records (at its top level, under ``provenance`` or under ``machine``, as
    the benchmarks write it), or "not recorded"."""
    commit = (record.get("commit") or (record.get("provenance") or {}).get("commit")
              or (record.get("machine") or {}).get("commit"))
    return commit[:7] if commit else "not recorded"


def from_history(commit: str, path: str) -> Optional[dict]:
    """The JSON at ``path`` as committed at ``commit`` (``git show``), or None where git or that commit is missing
    (a copy without history, a shallow clone): the callers then leave their sentence out."""
    try:
        old = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True)
    except OSError:  # no git on this machine
        return None
    return json.loads(old.stdout) if old.returncode == 0 else None
