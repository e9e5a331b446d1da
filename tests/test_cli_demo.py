"""kdhub demo's early refusals, and the provenance its --json record (and every benchmark's JSON) carries."""
import json
import subprocess
import sys
from pathlib import Path

import kdhub
from core_helpers import run_kdhub


def test_a_disabled_domain_is_called_disabled_and_a_work_dir_under_a_file_is_refused(tmp_path):
    disabled = run_kdhub(["demo", "graph", "--work-dir", tmp_path / "d"], env={"KDHUB_DISABLE_PLUGINS": "graph"},
                         check=False)
    assert disabled.returncode == 2 and "installed but disabled by KDHUB_DISABLE_PLUGINS" in disabled.stderr
    afile = tmp_path / "afile"
    afile.write_text("")
    under = run_kdhub(["demo", "graph", "--work-dir", afile / "x"], check=False)
    assert under.returncode == 2 and "Traceback" not in under.stderr
    assert f"{afile} is a file, not a folder" in under.stderr and not (tmp_path / "d").exists()


def test_the_recorded_commit_is_kdhubs_own_wherever_the_command_starts(tmp_path):
    """Started inside another git repository, the record still names the checkout kdhub runs from."""
    other = tmp_path / "other"
    other.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], cwd=other, check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "x"], cwd=other, check=True)
    theirs = subprocess.run(["git", "rev-parse", "HEAD"], cwd=other, capture_output=True, text=True).stdout.strip()
    ours = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(kdhub.__file__).parent, capture_output=True,
                          text=True).stdout.strip()
    code = "import json; from kdhub.provenance import run_info; print(json.dumps(run_info()))"
    info = json.loads(subprocess.run([sys.executable, "-c", code], cwd=other, capture_output=True, text=True,
                                     check=True).stdout)
    assert info["commit"] == (ours or "unknown") != theirs  # unknown: kdhub installed outside a git checkout


def test_the_record_says_which_domains_reused_an_earlier_demos_runs(tmp_path):
    """A second demo into the same work dir reuses the finished runs there; its record says so, rather than
    presenting their figures and a short wall time as a run of its own."""
    import textwrap

    site = tmp_path / "site"
    (site / "kdhub_demoprobe").mkdir(parents=True)
    (site / "kdhub_demoprobe" / "__init__.py").write_text(textwrap.dedent('''
        from kdhub import hookimpl
        from kdhub.task import DemoResult, ModelResult, Task

        class Probe(Task):
            """A demo that writes its run once and reuses it."""
            def train(self, loaded, work_dir, resume=False, launcher="none"):
                return {}
            def evaluate(self, loaded, checkpoint):
                return {}
            def demo(self, work_dir):
                work_dir.mkdir(parents=True, exist_ok=True)
                (work_dir / "result.txt").write_text("1.0")
                return DemoResult("probe", "Probe", "score", [ModelResult("teacher", 1.0, 10)])

        @hookimpl
        def kdhub_register(registry):
            registry.add_task("probe", Probe(), demo=True)
    '''))
    dist = site / "kdhub_demoprobe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kdhub-demoprobe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[kdhub]\ndemoprobe = kdhub_demoprobe\n")
    for name in ("first", "second"):
        run_kdhub(["demo", "probe", "--work-dir", tmp_path / "w", "--json", tmp_path / f"{name}.json"], site=site)
    first, second = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second"))
    assert first["domains"]["probe"]["reused_earlier_runs"] is False
    assert second["domains"]["probe"]["reused_earlier_runs"] is True
