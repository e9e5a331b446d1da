"""Plugin discovery through real installed distributions, isolation of broken plugins, disabling."""
import json

from core_helpers import ROOT, run_kdhub


def test_third_party_plugin_discovered_and_trains_end_to_end(third_party_site, tmp_path):
    listing = run_kdhub(["plugins"], site=third_party_site).stdout
    assert "toy  (kdhub-toy 0.1.0)  [ok]" in listing
    assert "tasks: toy" in listing and "distillers: toy_kd" in listing

    work = tmp_path / "run"
    run_kdhub(["train", ROOT / "examples" / "kdhub-toy" / "toy.json", "--work-dir", work,
               "--cfg-options", "teacher.epochs=15", "student.epochs=10"], site=third_party_site)
    summary = json.loads((work / "summary.json").read_text())
    assert summary["task"] == "toy" and summary["method"] == "toy_kd"
    assert set(summary) >= {"teacher", "student", "params", "student_checkpoint", "wall_time_s"}
    assert summary["params"]["teacher"] > summary["params"]["student"]
    assert summary["student"]["acc"] > 50  # 4 classes: chance is 25
    # the plugin observed its run through the lifecycle hooks
    events = [json.loads(line)["event"] for line in (work / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_start" and events[-1] == "run_end"
    assert events.count("metrics") == 10 and "checkpoint" in events and "evaluation" in events
    # the exported student evaluates through the launcher
    out = run_kdhub(["eval", ROOT / "examples" / "kdhub-toy" / "toy.json", summary["student_checkpoint"]],
                    site=third_party_site).stdout
    assert f"acc: {summary['student']['acc']:.4f}" in out


def test_broken_plugin_reported_while_others_work(third_party_site):
    proc = run_kdhub(["plugins"], site=third_party_site)
    assert "broken  (kdhub-broken 0.0.1)  [broken]" in proc.stdout
    assert "ImportError: kdhub_broken needs the package 'not-a-real-dependency'" in proc.stdout
    assert "tasks: toy" in proc.stdout  # the healthy plugin still registered
    listing = run_kdhub(["list"], site=third_party_site).stdout
    assert "toy_kd" in listing and "kd " in listing


def test_disable_variable_blocks_plugins(third_party_site):
    proc = run_kdhub(["plugins"], site=third_party_site, env={"KDHUB_DISABLE_PLUGINS": "broken,kdhub-toy"})
    assert "[disabled]" in proc.stdout and "[broken]" not in proc.stdout
    assert "tasks: toy" not in proc.stdout
    listing = run_kdhub(["list"], site=third_party_site, env={"KDHUB_DISABLE_PLUGINS": "toy"}).stdout
    assert "toy_kd" not in listing


def test_plugin_failing_in_register_is_rolled_back(tmp_path):
    from kdhub import hookimpl
    from kdhub.plugins import load_plugins, _register_all

    plugins = load_plugins()

    class Half:
        @hookimpl
        def kdhub_register(self, registry):
            registry.add_loss("half_registered", object)
            raise RuntimeError("boom")

    plugins.pm.register(Half(), name="half")
    plugins.registry.tables["losses"].clear()
    _register_all(plugins)
    assert "half_registered" not in plugins.registry.tables["losses"]
    assert "kd" in plugins.registry.tables["losses"]
    assert plugins.info["half"].error == "in kdhub_register: RuntimeError: boom"


RAISING_LOADER = '''
from kdhub.hookspecs import hookimpl


@hookimpl
def kdhub_load_config(path, overrides):
    raise AttributeError("'NoneType' object has no attribute 'suffix'")
'''


def test_a_config_loader_that_raises_is_switched_off_and_the_next_one_reads_the_config(tmp_path):
    """A third-party ``kdhub_load_config`` with a bug (asked first: its entry point registers last) no longer
    stops every launch with its traceback: it is reported once and switched off, the graph plugin reads its own
    config, and the launch gets as far as the missing checkpoint."""
    from dist_helpers import make_distribution

    site = make_distribution(tmp_path / "site", "kdhub-bad-loader", entry_points={"zzz_loader": "kdhub_bad_loader"},
                             modules={"kdhub_bad_loader": RAISING_LOADER})
    proc = run_kdhub(["eval", "graph::demo.yaml", tmp_path / "missing.pth"], site=site, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "plugin 'zzz_loader' (kdhub-bad-loader) raised in kdhub_load_config: AttributeError" in proc.stderr
    assert "KDHUB_DISABLE_PLUGINS=zzz_loader" in proc.stderr
    assert proc.stderr.rstrip().endswith(f"kdhub: error: checkpoint not found: {tmp_path / 'missing.pth'}")


def test_a_raising_builtin_observer_is_not_sent_to_the_disable_variable(monkeypatch, capsys):
    """Built-in plugins cannot be disabled, so the report of one that raises does not advise it."""
    import kdhub.tensorboard
    from kdhub import hookimpl
    from kdhub.plugins import load_plugins
    from kdhub.runs import RunInfo

    @hookimpl
    def kdhub_run_start(run):
        raise FileExistsError("events file")

    monkeypatch.setattr(kdhub.tensorboard, "kdhub_run_start", kdhub_run_start)
    plugins = load_plugins()
    plugins.notify("kdhub_run_start", run=RunInfo("t", "m", "w"))
    err = capsys.readouterr().err
    assert "plugin 'kdhub.tensorboard' (kdhub) raised in kdhub_run_start: FileExistsError" in err
    assert "part of kdhub" in err and "KDHUB_DISABLE_PLUGINS" not in err
    assert plugins.info["kdhub.tensorboard"].error.startswith("in kdhub_run_start")


def test_a_disabled_domain_is_named_disabled_not_missing():
    proc = run_kdhub(["train", "graph::demo.yaml"], env={"KDHUB_DISABLE_PLUGINS": "graph"}, check=False)
    assert proc.returncode == 2
    assert "belongs to kdhub-graph, which is installed but disabled by KDHUB_DISABLE_PLUGINS" in proc.stderr
    assert "not installed" not in proc.stderr


def test_the_disable_variable_takes_a_distribution_name_as_pip_spells_it(third_party_site):
    """``kdhub_toy`` and ``KDHub-Toy`` name the distribution ``kdhub-toy`` (PEP 503), as in pip."""
    for spelling in ("kdhub_toy", "KDHub-Toy"):
        listing = run_kdhub(["plugins"], site=third_party_site, env={"KDHUB_DISABLE_PLUGINS": spelling}).stdout
        assert "toy  (kdhub-toy 0.1.0)  [disabled]" in listing, listing


def test_two_distributions_with_one_entry_point_name_are_reported(tmp_path):
    from dist_helpers import make_distribution

    site = make_distribution(tmp_path / "site", "kdhub-first", entry_points={"samename": "kdhub_first"},
                             modules={"kdhub_first": ""})
    make_distribution(site, "kdhub-second", entry_points={"samename": "kdhub_second"}, modules={"kdhub_second": ""})
    listing = run_kdhub(["plugins"], site=site).stdout
    assert "samename  (kdhub-first 0.1.0)  [ok]" in listing
    assert "samename  (kdhub-second 0.1.0)  [broken]" in listing
    assert "its entry point name 'samename' is already taken by kdhub-first, which is loaded instead" in listing
