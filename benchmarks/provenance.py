"""Where a benchmark's numbers come from: the commit, the command and the machine, recorded in its JSON."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

ROOT = Path(__file__).resolve().parents[1]


def run_info() -> Dict[str, Any]:
    """The checkout's commit (and whether its code had uncommitted changes: results/ does not count, since an
    earlier benchmark of the same run may have written there), this process's command line and the machine."""
    import torch

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else "unknown"

    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain", "-uno", "--", ".", ":!results")),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "threads": torch.get_num_threads(), "python": platform.python_version(),
                        "torch": torch.__version__, "platform": platform.platform()}}
