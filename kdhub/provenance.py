"""Where a result's numbers come from: the commit, the command and the machine, recorded in its JSON.

``kdhub demo --json`` and the benchmarks write this next to their figures, so a number quoted in a README
can be traced to the one run that measured it.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import torch


def run_info(root: Optional[Path] = None) -> Dict[str, Any]:
    """The commit of the checkout holding ``root`` (default: the one kdhub itself runs from, wherever the command
    is started; "unknown" for an installed wheel or outside a git checkout), whether that checkout had uncommitted
    changes (``results/`` does not count: an earlier result of the same run may have been written there), this
    process's command line and the machine."""
    def git(*args: str) -> str:
        try:
            proc = subprocess.run(["git", *args], cwd=root or Path(__file__).resolve().parent, capture_output=True,
                                  text=True)
        except OSError:  # no git on this machine
            return "unknown"
        return proc.stdout.strip() if proc.returncode == 0 else "unknown"

    commit = git("rev-parse", "HEAD")
    changed = (git("status", "--porcelain", "-uno", "--", ":(top)", ":(top,exclude)results")
               if commit != "unknown" else "")
    return {"commit": commit, "uncommitted_changes": bool(changed),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "threads": torch.get_num_threads(), "python": platform.python_version(),
                        "torch": torch.__version__, "platform": platform.platform()}}
