"""kdhub and its plugins installed piece by piece, as a user installs them: from the wheels ``make wheels`` builds
(scripts/build_wheels.py), into a fresh virtual environment, then ``kdhub plugins`` and a short ``kdhub train`` of a
config the wheel ships, by name (``graph::glnn_cora_sage.yaml``), run there from a folder outside the checkout.

Real: the wheels (built as ``make wheels`` builds them, here into a temporary folder), pip resolving and
installing them offline from that folder alone (``--no-index --find-links``), their metadata, entry points,
console script and shipped configs, and the fresh environment's interpreter and site-packages.

Borrowed: the third-party dependencies (torch, torch-geometric, SpeechBrain, numpy, ...). Downloading them into
every fresh environment would take minutes and the network, so the fresh site-packages holds a ``.pth`` line
naming a folder of links to the entries of the project environment's site-packages, every kdhub distribution and
editable-install hook (``__editable__*``, ``*.pth``) left out. pip then sees those requirements as met (at the
tested versions) and installs only the kdhub wheels. A folder named in a ``.pth`` file is only put on
``sys.path``, its own ``.pth`` files are not run, so nothing can point back at the checkout; each test checks
that kdhub, the plugin and the console script come from the fresh environment and that a plugin installed
editable in the project environment is not importable there.
"""
import json
import math
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from core_helpers import ROOT
from kdhub.config import KNOWN_TASK_PACKAGES

SHARED = Path(os.environ.get("KDHUB_SHARED_DATA", ROOT.parent / "shared" / "data"))
PLUGINS = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
#: what the fresh environment's Python prints about itself: where kdhub and its plugins come from
PROBE = """import importlib.metadata as m, importlib.util as u, json, sys
print(json.dumps({
    "modules": {n: (u.find_spec(n).origin if u.find_spec(n) else None)
                for n in ("kdhub", "kdhub_graph", "kdhub_speech", "kdhub_detection")},
    "dists": sorted(str(d._path) for d in m.distributions() if (d.metadata["Name"] or "").startswith("kdhub")),
    "path": sys.path}))
"""


@pytest.fixture(scope="session")
def wheels(tmp_path_factory):
    """Every project's wheel, built once per session by the script behind ``make wheels`` (no mmcv wheelhouse:
    nothing here installs the OpenMMLab plugins); maps distribution name (``kdhub_graph``) to wheel file."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_wheels.py"), "--out", str(out), "--no-wheelhouse"],
                   check=True, capture_output=True, text=True)
    return {w.name.split("-")[0]: w for w in out.glob("*.whl")}


@dataclass
class FreshEnv:
    """A new virtual environment holding only kdhub wheels of its own; ``run`` executes one of its commands."""

    root: Path
    cwd: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def site(self) -> Path:
        return Path(sysconfig.get_path("purelib", vars={"base": str(self.root), "platbase": str(self.root)}))

    def env(self, **extra) -> dict:
        """The calling environment without anything that points Python or pip elsewhere."""
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return {**keep, "PATH": os.pathsep.join([str(self.bin), keep.get("PATH", "")]), "KDHUB_PROGRESS": "0",
                "OMP_NUM_THREADS": "1", "KDHUB_DATA_DIR": str(self.cwd / "data"), "PIP_CONFIG_FILE": os.devnull,
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}

    def run(self, *args, check=True, **extra_env) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=self.cwd,
                              env=self.env(**extra_env))
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kdhub(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.run(self.bin / "kdhub", *args, **kw)

    def probe(self) -> dict:
        return json.loads(self.run(self.bin / "python", "-c", PROBE).stdout)


def fresh_env(tmp_path: Path, wheels: dict, *dists: str) -> FreshEnv:
    """A venv in ``tmp_path`` with the project environment's third-party packages borrowed (module docstring)
    and ``dists`` installed by pip from the built wheels only."""
    env = FreshEnv(tmp_path / "venv", tmp_path / "cwd")
    env.cwd.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env.root)], check=True)
    borrowed = tmp_path / "borrowed"
    borrowed.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        name = entry.name.lower()
        if not (name.startswith(("kdhub", "__editable__")) or name.endswith(".pth")):
            (borrowed / entry.name).symlink_to(entry)
    (env.site / "borrowed-third-party.pth").write_text(f"{borrowed}\n")
    folder = {w.parent for w in wheels.values()}.pop()
    env.run(sys.executable, "-m", "pip", "--python", env.bin / "python", "install", "-q", "--no-index",
            "--find-links", folder, *dists)
    return env


def assert_installed_here(env: FreshEnv, present, absent) -> None:
    """kdhub and ``present`` import from the fresh site-packages, ``absent`` not at all, nothing from the checkout."""
    seen = env.probe()
    for name in ("kdhub", *present):
        origin = seen["modules"][name]
        assert origin and Path(origin).is_relative_to(env.site), (name, origin)
    for name in absent:
        assert seen["modules"][name] is None, (name, seen["modules"][name])
    assert all(Path(d).is_relative_to(env.site) for d in seen["dists"]), seen["dists"]
    assert not [p for p in seen["path"] if p and Path(p).is_relative_to(ROOT)], seen["path"]
    assert (env.bin / "kdhub").read_text().startswith(f"#!{env.bin / 'python'}\n")


def assert_listed_ok(env: FreshEnv, wheels: dict, plugin: str, absent) -> None:
    out = env.kdhub("plugins").stdout
    version = wheels[f"kdhub_{plugin}"].name.split("-")[1]
    assert re.search(rf"^{plugin}  \(kdhub-{plugin} {re.escape(version)}\)  \[ok\]$", out, re.M), out
    assert "broken" not in out and not [p for p in absent if re.search(rf"^{p}  ", out, re.M)], out


def test_every_project_has_a_wheel_and_every_shipped_config_is_in_it(wheels):
    assert set(wheels) == {"kdhub"} | {f"kdhub_{p.name}" for p in PLUGINS}
    for plugin in PLUGINS:
        configs = plugin / "configs"
        if not configs.exists():
            continue
        on_disk = {p.relative_to(configs).as_posix() for p in configs.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        prefix = f"kdhub_{plugin.name}/configs/"
        with zipfile.ZipFile(wheels[f"kdhub_{plugin.name}"]) as z:
            shipped = {n[len(prefix):] for n in z.namelist() if n.startswith(prefix)}
        assert on_disk and shipped == on_disk, (plugin.name, on_disk ^ shipped)


def test_wheels_require_ranges_and_name_what_errors_tell_users_to_install(wheels):
    """Exact pins live in constraints.txt only; kdhub's own packages are asked for by a compatible range; each
    ``pip install kdhub-X`` the launcher suggests names a wheel built here."""
    for name, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as z:
            meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        requires = [Requirement(r) for r in re.findall(r"^Requires-Dist: (.+)$", meta, re.M)]
        assert not [str(r) for r in requires if any(s.operator in ("==", "===") for s in r.specifier)], name
        for req in requires:
            if req.name.startswith("kdhub"):
                assert req.specifier == SpecifierSet(">=0.1,<0.2"), (name, str(req))
    assert {p.replace("-", "_") for p in KNOWN_TASK_PACKAGES.values()} <= set(wheels)


def test_graph_plugin_from_its_wheel_lists_and_trains(wheels, tmp_path):
    cora = SHARED / "npz" / "cora.npz"
    assert cora.is_file(), f"shared test data missing at {cora}: set KDHUB_SHARED_DATA to the folder with npz/"
    env = fresh_env(tmp_path, wheels, "kdhub-graph")
    assert_installed_here(env, present=["kdhub_graph"], absent=["kdhub_speech", "kdhub_detection"])
    assert_listed_ok(env, wheels, "graph", absent=["speech", "detection", "segmentation"])
    assert "requirements of kdhub and its installed plugins are met" in env.kdhub("doctor").stdout

    work = env.cwd / "work"
    env.kdhub("train", "graph::glnn_cora_sage.yaml", "--work-dir", work, "--cfg-options", f"data.path={cora}",
              "seeds=[0]", "teacher.epochs=2", "student.epochs=2", "baseline=false", "device=cpu")
    summary = json.loads((work / "summary.json").read_text())
    assert summary["task"] == "graph" and summary["method"] == "glnn"
    assert all(0.0 < summary[role]["test_acc"] <= 100.0 for role in ("teacher", "student")), summary


def test_speech_plugin_from_its_wheel_lists_trains_and_names_missing_voices(wheels, tmp_path):
    env = fresh_env(tmp_path, wheels, "kdhub-speech")
    assert_installed_here(env, present=["kdhub_speech"], absent=["kdhub_graph", "kdhub_detection"])
    assert_listed_ok(env, wheels, "speech", absent=["graph", "detection", "segmentation"])

    recipe = "speech::demo.yaml"
    tiny = ["--cfg-options", "data.embedded.train=8", "data.embedded.valid=4", "data.embedded.test=2",
            "data.embedded.utterances_per_voice=1", "teacher_training.epochs=1", "training.epochs=1",
            "training.limit=4", "baseline=false"]
    # without espeak-ng and flite on PATH the embedded data cannot be made: one error line names both
    refused = env.kdhub("train", recipe, "--work-dir", env.cwd / "refused", *tiny, check=False, PATH=str(env.bin))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "espeak-ng" in refused.stderr and "flite" in refused.stderr, refused.stderr
    assert not (env.cwd / "refused").exists()

    work = env.cwd / "work"
    env.kdhub("train", recipe, "--work-dir", work, *tiny)
    summary = json.loads((work / "summary.json").read_text())
    assert summary["task"] == "speech"
    assert all(math.isfinite(summary[role]["si-snri"]) for role in ("teacher", "student")), summary
