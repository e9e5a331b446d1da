"""Helpers for plugin test suites: third-party plugins installed as users install them, and a real
``kdhub train`` interrupted the hard way.

:func:`pip_install_site` installs distributions (a plugin under test, an observer) with pip into a folder of
their own and returns the environment that puts it on the path, so a subprocess ``kdhub`` discovers them
through their entry points exactly as it would in a user's environment.

A resumable run must survive SIGKILL at any moment: no handler runs, so only what was already written
atomically is left. :func:`kill_when` starts the launcher in a process group of its own and kills the
whole group as soon as a condition on the work dir holds (for example: the first checkpoint exists), so a
test can then run ``--resume`` and compare the result with an uninterrupted run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence


def pip_install_site(target: Path, *projects: Path) -> Dict[str, str]:
    """``pip install`` the project folders into ``target`` (offline, no dependencies: the running environment
    has them); returns the ``PYTHONPATH`` entry of an environment in which they are installed."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), *map(str, projects)], check=True,
                   env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def kill_when(cmd: Sequence[str], ready: Callable[[], bool], env: Optional[Mapping[str, str]] = None,
              timeout: float = 600.0, poll: float = 0.01) -> bool:
    """Run ``cmd`` and SIGKILL it (with its children) once ``ready()`` is true; returns whether it was killed
    (False: it exited first). Raises TimeoutError after ``timeout`` seconds."""
    proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{' '.join(cmd)} still running after {timeout:.0f} s")
            time.sleep(poll)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
