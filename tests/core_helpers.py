"""Helpers shared by the core tests."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_kdhub(args, site=None, env=None, cwd=None, check=True):
    """Run the real launcher in a subprocess (fresh entry-point discovery)."""
    e = {**os.environ, "KDHUB_PROGRESS": "0", **(env or {})}
    if site is not None:
        e["PYTHONPATH"] = os.pathsep.join([str(site)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, "-m", "kdhub", *map(str, args)], capture_output=True, text=True,
                          env=e, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"kdhub {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
