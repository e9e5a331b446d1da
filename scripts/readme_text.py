"""Hard-wrapping shared by the scripts that print README text from ``results/``.

The READMEs paste those scripts' output as it is, so the wrapping must keep Markdown's reading of it: no wrapped line
starts with what Markdown takes for a list item, heading, quote or table row, short code spans are never split, and a
figure stays on the line of its unit.
"""
from __future__ import annotations

import re
import textwrap

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
