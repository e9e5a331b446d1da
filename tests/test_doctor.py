"""``kdhub doctor`` checks what installed kdhub distributions declare (Requires-Dist), not a list of its own."""
import sys

from kdhub.stack import check_stack

from core_helpers import run_kdhub
from dist_helpers import make_distribution

NEEDS = ["pluggy<1.0",                                   # installed, but too new: MISMATCH
         "kdhub-no-such-dependency>=2",                 # not installed: MISSING
         "kdhub-only-with-extra; extra == 'gpu'",       # nobody asked for the extra: not required
         "kdhub-only-elsewhere; sys_platform == 'nonexistent-os'",  # marker false here
         "torch"]                                       # met


def needy_site(tmp_path):
    """A plugin distribution (entry point in group kdhub) whose requirements are not met."""
    return make_distribution(tmp_path / "site", "kdhub-needy", requires=NEEDS,
                             entry_points={"needy": "kdhub_needy"}, modules={"kdhub_needy": ""})


def test_unmet_requirements_of_an_installed_plugin(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(needy_site(tmp_path)))
    checks = {c.package: c for c in check_stack()}
    assert checks["pluggy"].state == "MISMATCH" and "kdhub-needy" in checks["pluggy"].needed_by
    assert not checks["pluggy"].specifier.contains(checks["pluggy"].installed)
    assert checks["kdhub-no-such-dependency"].state == "MISSING" and checks["kdhub-no-such-dependency"].direct
    assert checks["torch"].state == "ok"
    assert "kdhub-only-with-extra" not in checks and "kdhub-only-elsewhere" not in checks


def test_doctor_reports_and_fails_on_unmet_requirements(tmp_path):
    proc = run_kdhub(["doctor"], site=needy_site(tmp_path), check=False)
    assert proc.returncode == 1
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert "MISMATCH" in rows["pluggy"] and "<1.0" in rows["pluggy"] and "kdhub-needy" in rows["pluggy"]
    assert "MISSING" in rows["kdhub-no-such-dependency"] and "needed by kdhub-needy" in rows["kdhub-no-such-dependency"]
    assert " ok " in rows["torch"]
    assert "pip install 'kdhub-no-such-dependency>=2'" in proc.stdout
    assert "kdhub-only-with-extra" not in proc.stdout and "kdhub-only-elsewhere" not in proc.stdout


def test_real_environment_passes():
    proc = run_kdhub(["doctor"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MISMATCH" not in proc.stdout and "MISSING" not in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("pluggy "))
    assert "needed by kdhub" in row and "ok" in row
    import torch
    probes = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if line.split(":")[0] in
                  ("cuda", "mmcv ops", "speech voices"))
    assert set(probes) == {"cuda", "mmcv ops", "speech voices"}, proc.stdout  # every plugin of this checkout
    assert all(v.startswith("ok ") for v in probes.values()), probes
    assert f"built with CUDA {torch.version.cuda or 'none'}" in probes["cuda"]


def test_missing_voices_fail_with_the_packages_to_install(tmp_path):
    """Without espeak-ng and flite on PATH the speech probe fails and names the Debian packages."""
    proc = run_kdhub(["doctor"], env={"PATH": str(tmp_path)}, check=False)
    assert proc.returncode == 1
    assert "speech voices: FAILED  espeak-ng, flite not on PATH" in proc.stdout
    assert "speech voices: sudo apt-get install espeak-ng flite" in proc.stdout


PROBING = '''
from kdhub import hookimpl
from kdhub.stack import Probe

@hookimpl
def kdhub_doctor():
    return [Probe("licence server", False, "no answer from licence.example", "start the licence server")]
'''
RAISING = '''
from kdhub import hookimpl

@hookimpl
def kdhub_doctor():
    raise RuntimeError("probe crashed")
'''


def test_plugin_probes_are_shown_with_their_fix_and_a_raising_one_is_isolated(tmp_path):
    site = make_distribution(tmp_path / "site", "kdhub-probing", entry_points={"probing": "kdhub_probing"},
                             modules={"kdhub_probing": PROBING})
    make_distribution(site, "kdhub-raising", entry_points={"raising": "kdhub_raising"},
                      modules={"kdhub_raising": RAISING})
    proc = run_kdhub(["doctor"], site=site, check=False)
    assert proc.returncode == 1
    assert "licence server: FAILED  no answer from licence.example" in proc.stdout
    assert "licence server: start the licence server" in proc.stdout
    assert "plugin 'raising' (kdhub-raising) raised in kdhub_doctor: RuntimeError: probe crashed" in proc.stderr
    assert "cuda: ok" in proc.stdout  # the other probes still ran
