import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def third_party_site(tmp_path_factory):
    """A site dir where the example plugin kdhub-toy and the broken fixture plugin are really installed
    by pip (dist-info with entry points), as a user's third-party plugins would be."""
    target = tmp_path_factory.mktemp("site")
    for src in (ROOT / "examples" / "kdhub-toy", ROOT / "tests" / "fixtures" / "kdhub-broken"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(src)], check=True,
                       env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    return target


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
