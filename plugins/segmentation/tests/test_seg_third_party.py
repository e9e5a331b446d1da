"""A distiller added to the segmentation domain by a separately installed distribution
(examples/kdhub-extra-methods): found in the kdhub registry by ``model.distiller.type``, registered into
mmseg's MODELS, and run through the real launcher."""
import json
from pathlib import Path

import pytest

from kdhub.testing import pip_install_site

from seg_helpers import run_cli, write_configs

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """kdhub-extra-methods (the new distiller) and kdhub-toy (an observer logging every run's metrics to
    ``events.jsonl``) installed by pip into a site dir, as a user's third-party plugins would be."""
    return pip_install_site(tmp_path_factory.mktemp("site"), EXAMPLES / "kdhub-extra-methods", EXAMPLES / "kdhub-toy")


def _config(folder: Path) -> Path:
    write_configs(folder, iters=4, teacher_iters=4)
    path = folder / "logit_mse.py"
    path.write_text("""task = 'segmentation'
_base_ = ['./student.py']
model = dict(_delete_=True, type='SegDistiller', student=dict(config='student.py'),
             teacher=dict(config='teacher.py', checkpoint=None),
             distiller=dict(type='LogitMSEDistiller', weight=2.0))
baseline = False
""")
    return path


def test_third_party_segmentation_distiller_runs_from_a_config(site, tmp_path):
    listing = run_cli(["list"], env=site).stdout
    line = next(x for x in listing.splitlines() if x.split()[:1] == ["LogitMSEDistiller"])
    assert line.split()[1:3] == ["segmentation", "[extra]"]

    cfg, work = _config(tmp_path), tmp_path / "work"
    run_cli(["train", cfg, "--work-dir", work], env=site)
    summary = json.loads((work / "summary.json").read_text())
    assert summary["method"] == "LogitMSEDistiller" and "baseline" not in summary
    assert 0 <= summary["student"]["mIoU"] <= 100
    events = [json.loads(x) for x in (work / "student" / "events.jsonl").read_text().splitlines()]
    logged = [e["metrics"] for e in events if e["event"] == "metrics"]
    assert logged and all("loss_logit_mse" in m for m in logged)
    assert all(m["loss_logit_mse"] > 0 for m in logged)


def test_unknown_distiller_type_lists_the_registered_ones(site, tmp_path):
    cfg = _config(tmp_path)
    proc = run_cli(["train", cfg, "--work-dir", tmp_path / "w"], check=False)  # the extra plugin not installed
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{cfg}: model.distiller.type: unknown segmentation distiller 'LogitMSEDistiller'" in proc.stderr
    assert "valid choices: TermsDistiller, TransKDDistiller; install the plugin that provides it" in proc.stderr
    proc = run_cli(["train", cfg, "--work-dir", tmp_path / "w", "--cfg-options", "model.distiller.type=LogitMSE"],
                   env=site, check=False)
    assert "(did you mean 'LogitMSEDistiller'?)" in proc.stderr
