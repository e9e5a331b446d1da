"""The benchmarks' provenance record: :func:`kdhub.provenance.run_info` for this checkout."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from kdhub.provenance import run_info as _run_info

ROOT = Path(__file__).resolve().parents[1]


def run_info() -> Dict[str, Any]:
    """The commit, command and machine of a benchmark run of this checkout (wherever it is started from)."""
    return _run_info(ROOT)
