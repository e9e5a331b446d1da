"""Build kdhub and every domain plugin under plugins/ as wheels (``make wheels``), so a machine can install
only the pieces it needs: ``pip install --find-links dist kdhub-graph``.

Each project is built from a clean copy in a temporary folder: its ``pyproject.toml``, README and license files,
and the top-level folders its ``[tool.setuptools.packages.find] include`` patterns name (``*.egg-info`` left
out), symlinks kept as symlinks. setuptools builds a wheel through ``build/lib`` in the project folder and never
deletes from it, so a module removed from the checkout would otherwise still ship.

With ``--wheelhouse`` (the default of ``make wheels``) the mmcv wheel the OpenMMLab plugins need goes into
``OUT/wheelhouse``: the package index has only mmcv's source, whose compiled ops take minutes to build, and pip
keeps the wheel scripts/setup.sh built in its cache, so this reuses it (seconds) and builds only on a machine
where it is missing (same settings as setup.sh). Another machine then installs offline with
``pip install --find-links OUT/wheelhouse --find-links OUT kdhub-detection``.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
#: files beside pyproject.toml that a build may read (the core's ``readme = "README.md"``)
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "LICENSE.txt", "NOTICE")


def projects(root: Path = ROOT) -> List[Path]:
    """The core (the repository root) and each plugin folder with a pyproject.toml, in build order."""
    return [root] + sorted(p.parent for p in root.glob("plugins/*/pyproject.toml"))


def _metadata(project: Path) -> dict:
    with open(project / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def stage(project: Path, into: Path) -> Path:
    """A copy of ``project`` holding only what its wheel is built from; returns the copy's folder."""
    include = _metadata(project).get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}) \
        .get("include")
    if not include:
        raise SystemExit(f"{project / 'pyproject.toml'}: no [tool.setuptools.packages.find] include to build from")
    dest = into / distribution(project)
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (project / name).is_file():
            shutil.copy2(project / name, dest / name)
    for entry in sorted(project.iterdir()):
        if entry.is_dir() and not entry.name.endswith(".egg-info") \
                and any(fnmatch.fnmatchcase(entry.name, pattern.split(".")[0]) for pattern in include):
            shutil.copytree(entry, dest / entry.name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def needs_mmcv(root: Path = ROOT) -> bool:
    """Whether a plugin depends on mmcv (then its wheel belongs in the wheelhouse)."""
    return any(dep.split(";")[0].strip().lower().startswith("mmcv")
               for p in projects(root)[1:] for dep in _metadata(p)["project"].get("dependencies", []))


def distribution(project: Path) -> str:
    """The project's distribution name as its wheel file spells it (``kdhub_graph``)."""
    return _metadata(project)["project"]["name"].lower().replace("-", "_")


def build(out: Path, wheelhouse: bool = True) -> List[Path]:
    """Build every project's wheel into ``out`` (replacing older ones there) and, with ``wheelhouse``, put the
    mmcv wheel into ``out/wheelhouse``; returns their paths."""
    out = out.resolve()  # pip runs in the staging folder
    chosen = projects()
    out.mkdir(parents=True, exist_ok=True)
    for project in chosen:
        for old in out.glob(f"{distribution(project)}-*.whl"):
            old.unlink()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="kdhub-wheels-") as tmp:
        staged = [stage(p, Path(tmp)) for p in chosen]
        subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out),
                        *map(str, staged)], check=True, cwd=tmp)
    built = sorted(w for p in chosen for w in out.glob(f"{distribution(p)}-*.whl"))
    if wheelhouse and needs_mmcv():
        env = {**os.environ, "MMCV_WITH_OPS": "1", "MAX_JOBS": str(os.cpu_count() or 1)}
        subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-c", str(ROOT / "constraints.txt"),
                        "-w", str(out / "wheelhouse"), "mmcv"], check=True, env=env)
        built += sorted((out / "wheelhouse").glob("mmcv-*.whl"))
    return built


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the wheels (default: dist)")
    parser.add_argument("--no-wheelhouse", dest="wheelhouse", action="store_false",
                        help="skip the mmcv wheel (OUT/wheelhouse)")
    args = parser.parse_args(argv)
    for wheel in build(args.out, args.wheelhouse):
        print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
