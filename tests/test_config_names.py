"""Configs by name: ``kdhub train DOMAIN::NAME`` finds a config in the installed plugin package, ``kdhub configs``
lists every one with its description, config keys naming another config accept the same names, and a name
that cannot be found says where it looked and what is close."""
import importlib.util
import json
import os
import textwrap
from pathlib import Path

import pytest

from core_helpers import run_kdhub
from kdhub.cli import main as kdhub_main
from kdhub.config import ConfigError, config_folder, peek_task, resolve_config
from kdhub.plugins import Plugins
from kdhub.registry import Registry, RegistryError

DOMAINS = {"graph": "kdhub_graph", "speech": "kdhub_speech", "detection": "kdhub_detection",
           "segmentation": "kdhub_segmentation"}
INSTALLED = {d: p for d, p in DOMAINS.items() if importlib.util.find_spec(p) is not None}


def shipped_folder(package: str) -> Path:
    """Where the installed package keeps its configs, found from the package's own location."""
    return Path(importlib.util.find_spec(package).origin).parent / "configs"


def listing(folder: Path) -> list:
    """Every config file under ``folder`` (sub-folders too), relative and '/'-separated, from a directory walk."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        out += [(Path(dirpath) / f).relative_to(folder).as_posix() for f in filenames
                if f.endswith((".py", ".yaml", ".yml", ".json")) and f != "__init__.py"]
    return sorted(out)


def first_comment(path: Path) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith("#")).lstrip("#").strip()


@pytest.mark.parametrize("domain", sorted(INSTALLED))
def test_every_shipped_config_resolves_by_name(domain):
    folder = shipped_folder(INSTALLED[domain])
    names = listing(folder)
    assert len(names) >= 4
    for name in names:
        assert resolve_config(f"{domain}::{name}") == folder / name
    stem = names[-1].rsplit(".", 1)[0]  # the suffix may be left out
    assert resolve_config(f"{domain}::{stem}") == folder / names[-1]


def test_kdhub_configs_lists_every_file_with_its_first_line(capsys):
    assert kdhub_main(["configs"]) == 0
    sections = {}
    for line in capsys.readouterr().out.splitlines():
        if line and not line.startswith(" "):
            scope, rest = line.split(": ", 1)
            sections[scope] = {"header": rest, "rows": {}}
        elif line.strip():
            name, text = line.split(None, 1)
            sections[scope]["rows"][name] = text
    assert set(INSTALLED) <= set(sections)
    for domain, package in INSTALLED.items():
        folder, section = shipped_folder(package), sections[domain]
        names = listing(folder)
        assert section["header"].startswith(f"{len(names)} configs in {folder} ")
        assert sorted(section["rows"]) == sorted(f"{domain}::{n}" for n in names)
        for name in names:
            text = section["rows"][f"{domain}::{name}"]
            described = first_comment(folder / name)
            runnable = peek_task(folder / name) is not None
            assert text == (described if runnable else f"[base] {described}")
            # a good first line: one sentence that stands alone
            assert described.endswith(".") and len(described) <= 120, (name, described)


def test_unknown_names_say_where_they_looked(capsys):
    pytest.importorskip("kdhub_graph")
    assert kdhub_main(["train", "graph::glnn_cora_sag.yaml"]) == 2
    err = capsys.readouterr().err
    assert f"unknown graph config 'glnn_cora_sag.yaml' (did you mean 'glnn_cora_sage.yaml'" in err
    assert f"searched {shipped_folder('kdhub_graph')}" in err
    assert kdhub_main(["eval", "grph::demo.yaml", "student.pth"]) == 2
    assert "unknown config scope 'grph' (did you mean 'graph'?)" in capsys.readouterr().err
    assert kdhub_main(["configs", "graph", "grph"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "unknown config scope 'grph'" in out.err
    with pytest.raises(ConfigError, match="unknown config scope 'mmdet'.*named inside a config"):
        resolve_config("mmdet::retinanet/retinanet_r50_fpn_1x_coco.py")


def test_a_declared_folder_that_is_not_installed_is_named():
    registry = Registry(current_plugin="p")
    registry.add_configs("nofolder", "kdhub", "no_such_configs")
    registry.add_configs("nopackage", "kdhub_no_such_package_anywhere")
    registry.add_task("bare", "kdhub_no_such_package_anywhere:Task")
    plugins = Plugins(pm=None, registry=registry)
    with pytest.raises(ConfigError, match=r"plugin 'p' ships its nofolder configs in kdhub/no_such_configs, but "
                                          r".*no_such_configs is not installed; reinstall the plugin"):
        config_folder("nofolder", plugins)
    with pytest.raises(RegistryError, match="package 'kdhub_no_such_package_anywhere' cannot be found"):
        config_folder("nopackage", plugins)
    with pytest.raises(ConfigError, match="domain 'bare' \\(plugin 'p'\\) ships no configs by name"):
        config_folder("bare", plugins)


def test_a_domain_that_is_not_installed_names_its_package():
    """Not installed: the package to install; installed but switched off by the disable variable: that."""
    import pluggy

    from kdhub.config import install_hint
    from kdhub.plugins import Plugins
    from kdhub.registry import Registry

    nothing = Plugins(pm=pluggy.PluginManager("kdhub"), registry=Registry())
    assert install_hint("speech", nothing) == ("is provided by the kdhub-speech package, which is not installed. "
                                               "Install it: pip install kdhub-speech (from a checkout: pip install "
                                               "-e plugins/speech)")
    off = {"KDHUB_DISABLE_PLUGINS": "*"}
    proc = run_kdhub(["train", "speech::demo.yaml"], env=off, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert ("speech::demo.yaml: domain 'speech' belongs to kdhub-speech, which is installed but disabled by "
            "KDHUB_DISABLE_PLUGINS; take it out of that variable") in proc.stderr


def test_graph_train_and_eval_by_name_with_cfg_options(tmp_path, capsys):
    pytest.importorskip("kdhub_graph")
    tiny = ["seeds=[0]", "data.csbm.nodes=36", "data.csbm.classes=3", "data.csbm.features=8",
            "data.split.train_per_class=4", "data.split.val_per_class=3", "device=cpu"]
    work = tmp_path / "run"
    assert kdhub_main(["train", "graph::demo", "--work-dir", str(work), "--cfg-options", *tiny,
                       "teacher.epochs=2", "student.epochs=2", "baseline=false"]) == 0
    summary = json.loads((work / "summary.json").read_text())
    assert summary["task"] == "graph" and summary["seeds"] == [0]
    assert summary["params"]["student"] < 2000  # the overridden 8-feature, 3-class graph, not the demo's
    capsys.readouterr()
    assert kdhub_main(["eval", "graph::demo.yaml", summary["student_checkpoint"], "--cfg-options", *tiny]) == 0
    metrics = dict(line.split(": ") for line in capsys.readouterr().out.splitlines())
    assert float(metrics["val_acc"]) == pytest.approx(summary["student"]["val_acc"], abs=1e-3)


@pytest.mark.parametrize("domain, recipe, key, teacher", [
    ("detection", "gid_retinanet_r18w32_r18w16_synth.py", "model.teacher.config", "demo_retinanet_r18w32_synth"),
    ("segmentation", "transkd_mit-t_to_mit-n_synth.py", "model.teacher.config", "segformer_mit-t_synth.py"),
])
def test_mm_teacher_config_by_name_through_cfg_options(domain, recipe, key, teacher):
    pytest.importorskip(DOMAINS[domain])
    from kdhub.plugins import get_plugins

    folder = shipped_folder(DOMAINS[domain])
    load = get_plugins().hook.kdhub_load_config
    loaded = load(path=resolve_config(f"{domain}::{recipe}"), overrides=[f"{key}={domain}::{teacher}"])
    assert loaded.task == domain and loaded.path == folder / recipe
    expected = next(folder / n for n in listing(folder) if n.startswith(teacher))
    assert Path(loaded.cfg.model.teacher.config) == expected.resolve()
    with pytest.raises(ConfigError) as info:
        load(path=folder / recipe, overrides=[f"{key}={domain}::no_such_teacher.py"])
    assert f"key '{key}': unknown {domain} config" in str(info.value) and f"searched {folder}" in str(info.value)


@pytest.mark.parametrize("domain, shipped", [
    ("detection", "retinanet_r18w32_synth.py"),
    ("segmentation", "segformer_mit-t_synth.py"),
])
def test_a_user_config_inherits_a_shipped_one_by_name(tmp_path, domain, shipped):
    """``_base_ = ['DOMAIN::file']`` in a user's own mmengine config: the task comes from the shipped file, mmengine
    merges it like a local base (the user's change on top), and a misspelt name is named with the closest ones."""
    pytest.importorskip(DOMAINS[domain])
    from mmengine.config import Config

    from kdhub.plugins import get_plugins

    user = tmp_path / "mine.py"
    user.write_text(f"_base_ = ['{domain}::{shipped}']\ntrain_cfg = dict(max_iters=3, max_epochs=3)\n")
    assert peek_task(user) == domain  # from the shipped base: the user's file has no task
    loaded = get_plugins().hook.kdhub_load_config(path=user, overrides=[])
    reference = Config.fromfile(str(shipped_folder(DOMAINS[domain]) / shipped))  # mmengine on the file itself
    assert loaded.task == domain and loaded.cfg.model.to_dict() == reference.model.to_dict()
    assert loaded.cfg.train_cfg.get("max_epochs", loaded.cfg.train_cfg.get("max_iters")) == 3
    user.write_text(f"_base_ = ['{domain}::{shipped[:-4]}x.py']\ntask = '{domain}'\n")
    with pytest.raises(ConfigError) as info:
        get_plugins().hook.kdhub_load_config(path=user, overrides=[])
    assert f"unknown {domain} config '{shipped[:-4]}x.py' (did you mean '{shipped}'" in str(info.value)


def test_speech_config_by_name_with_cfg_options():
    pytest.importorskip("kdhub_speech")
    from kdhub.plugins import get_plugins

    path = resolve_config("speech::demo.yaml")
    loaded = get_plugins().hook.kdhub_load_config(path=path, overrides=["seed=7", "training.epochs=1"])
    assert loaded.task == "speech" and loaded.path == shipped_folder("kdhub_speech") / "demo.yaml"
    assert (loaded.cfg["seed"], loaded.cfg["training"]["epochs"]) == (7, 1)


def test_third_party_plugin_ships_configs_under_its_own_scope(tmp_path):
    """A distribution installed with a dist-info (entry point ``kdhub``) whose plugin registers a task and
    ``add_configs`` for its own folder (not named ``configs``): listed, trained and evaluated by name."""
    site = tmp_path / "site"
    pkg = site / "kdhub_cfgprobe"
    (pkg / "recipes").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(textwrap.dedent('''
        import json
        from kdhub import hookimpl
        from kdhub.task import Task

        class Probe(Task):
            """Records the config it was given."""
            def train(self, loaded, work_dir, resume=False, launcher="none"):
                work_dir.mkdir(parents=True)
                (work_dir / "seen.json").write_text(json.dumps({"path": str(loaded.path), "cfg": loaded.cfg}))
                return {}
            def evaluate(self, loaded, checkpoint):
                return {"lr": loaded.cfg["lr"]}

        @hookimpl
        def kdhub_register(registry):
            registry.add_task("probe", Probe())
            registry.add_configs("probe", "kdhub_cfgprobe", "recipes")
    '''))
    (pkg / "recipes" / "hello.json").write_text(json.dumps({"task": "probe", "lr": 0.1}))
    dist = site / "kdhub_cfgprobe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kdhub-cfgprobe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[kdhub]\nprobe = kdhub_cfgprobe.plugin\n")

    out = run_kdhub(["configs", "probe"], site=site).stdout.splitlines()
    assert out[0] == f"probe: 1 config in {pkg / 'recipes'} (plugin probe)"
    assert out[1].split(None, 1) == ["probe::hello.json", "(no description)"]
    run_kdhub(["train", "probe::hello", "--work-dir", tmp_path / "w", "--cfg-options", "lr=0.5"], site=site)
    seen = json.loads((tmp_path / "w" / "seen.json").read_text())
    assert seen == {"path": str(pkg / "recipes" / "hello.json"), "cfg": {"task": "probe", "lr": 0.5}}
    assert run_kdhub(["eval", "probe::hello.json", "x.pth"], site=site).stdout == "lr: 0.1000\n"


def test_kdhub_configs_lists_the_healthy_plugins_when_one_lacks_its_folder(tmp_path):
    """One plugin whose declared config package is not installed is reported; the other plugins' configs are
    still listed (asked for by name, the broken scope alone is an error, as before)."""
    site = tmp_path / "site"
    (site / "kdhub_badcfg").mkdir(parents=True)
    (site / "kdhub_badcfg" / "__init__.py").write_text(textwrap.dedent('''
        from kdhub import hookimpl

        @hookimpl
        def kdhub_register(registry):
            registry.add_configs("badscope", "kdhub_badcfg_missing_pkg")
    '''))
    dist = site / "kdhub_badcfg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kdhub-badcfg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[kdhub]\nbadcfg = kdhub_badcfg\n")
    everything = run_kdhub(["configs"], site=site, check=False)
    assert everything.returncode == 1 and "kdhub_badcfg_missing_pkg" in everything.stderr
    assert "graph::demo.yaml" in everything.stdout and "badscope:" not in everything.stdout
    named = run_kdhub(["configs", "badscope"], site=site, check=False)
    assert named.returncode == 2 and "kdhub_badcfg_missing_pkg" in named.stderr and not named.stdout
