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
