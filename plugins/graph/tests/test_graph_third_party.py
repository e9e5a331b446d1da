"""A method added to the graph domain by a separately installed distribution (examples/kdhub-extra-methods),
selected by name from the registry and run through the real launcher."""
import json
from pathlib import Path

import pytest

from kdhub.testing import pip_install_site

from graph_helpers import run_cli

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """kdhub-extra-methods (the new method) and kdhub-toy (an observer logging every run's metrics to
    ``events.jsonl``) installed by pip into a site dir, as a user's third-party plugins would be."""
    return pip_install_site(tmp_path_factory.mktemp("site"), EXAMPLES / "kdhub-extra-methods", EXAMPLES / "kdhub-toy")


def test_third_party_graph_method_listed_trained_and_its_loss_computed(site, tiny, tmp_path):
    listing = run_cli(["list"], env=site).stdout
    line = next(x for x in listing.splitlines() if x.split()[:1] == ["plain_kl"])
    assert line.split()[1:3] == ["graph", "[extra]"]

    cfg = tiny(**{"teacher__epochs": 20, "student__epochs": 15, "baseline": False})
    work = tmp_path / "run"
    run_cli(["train", cfg, "--work-dir", work, "--cfg-options", "method=plain_kl",
             "distill.plain_kl.temperature=2.0"], env=site)
    summary = json.loads((work / "summary.json").read_text())
    assert summary["method"] == "plain_kl" and 0 <= summary["student"]["test_acc"] <= 100
    events = [json.loads(x) for x in (work / "seed_0" / "student" / "events.jsonl").read_text().splitlines()]
    logged = [e["metrics"] for e in events if e["event"] == "metrics"]
    assert len(logged) == 15 and all("loss_plain_kl" in m and "loss_ce" not in m for m in logged)
    assert events[0]["method"] == "plain_kl:student"


def test_third_party_method_section_is_checked_before_training(site, tiny, tmp_path):
    cfg, work = tiny(), tmp_path / "w"
    proc = run_cli(["train", cfg, "--work-dir", work, "--cfg-options", "method=plain_kl",
                    "distill.plain_kl.temprature=2"], env=site, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{cfg}: distill.plain_kl: unknown key(s) temprature; valid keys: temperature" in proc.stderr
    assert not work.exists()


def test_unknown_method_lists_the_registered_ones(site, tiny, tmp_path):
    cfg, work = tiny(), str(tmp_path / "w")  # every run below must fail before writing anything
    proc = run_cli(["train", cfg, "--work-dir", work, "--cfg-options", "method=plain_k"], check=False)
    assert proc.returncode == 2 and "valid choices: ffg2m, glnn, none" in proc.stderr  # extra not installed
    proc = run_cli(["train", cfg, "--work-dir", work, "--cfg-options", "method=plain_k"], env=site, check=False)
    assert "(did you mean 'plain_kl'?); valid choices: ffg2m, glnn, none, plain_kl" in proc.stderr
    proc = run_cli(["train", cfg, "--work-dir", work, "--cfg-options", "distill.glnn=3"], env=site, check=False)
    assert "distill.glnn must be a mapping (the own hyper-parameters of method 'glnn'), got int 3" in proc.stderr
