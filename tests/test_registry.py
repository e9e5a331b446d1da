"""The registry: lazy entries (import strings loaded on first get), tasks, demo flags, domains; and that
listing the installed plugins imports no domain framework."""
import os
import subprocess
import sys
import textwrap

import pytest

from core_helpers import ROOT, run_kdhub
from kdhub.registry import Registry, RegistryError
from kdhub.task import Task

FRAMEWORKS = ("mmdet", "mmseg", "mmengine", "mmcv", "speechbrain", "torch_geometric", "torchaudio")


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    """A module on sys.path that no one has imported yet, holding a distiller class and a task class."""
    name = f"kdhub_lazy_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent('''
        from kdhub.task import Task

        class Method:
            """A method."""

        class ProbeTask(Task):
            name = domain = "probe"
            def train(self, loaded, work_dir, resume=False, launcher="none"):
                return {}
            def evaluate(self, loaded, checkpoint):
                return {}
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_lazy_entry_imported_on_first_get_only(lazy_module):
    reg = Registry(current_plugin="probe-plugin")
    reg.add_distiller("m", f"{lazy_module}:Method", "help given at registration", domain="probe")
    entry = reg.tables["distillers"]["m"]
    assert lazy_module not in sys.modules
    assert (entry.help, entry.domain, entry.plugin) == ("help given at registration", "probe", "probe-plugin")
    cls = reg.get("distillers", "m")
    assert lazy_module in sys.modules and cls is sys.modules[lazy_module].Method
    assert reg.get("distillers", "m") is cls


def test_lazy_task_is_instantiated_once_and_says_whether_it_has_a_demo(lazy_module):
    reg = Registry()
    reg.add_task("probe", f"{lazy_module}:ProbeTask", "probe task", demo=True)
    entry = reg.tables["tasks"]["probe"]
    assert (entry.domain, entry.demo) == ("probe", True) and lazy_module not in sys.modules
    task = reg.get("tasks", "probe")
    assert isinstance(task, Task) and task is reg.get("tasks", "probe")


def test_task_instance_demo_flag_comes_from_its_class():
    class WithDemo(Task):
        def train(self, *a, **k): return {}
        def evaluate(self, *a, **k): return {}
        def demo(self, work_dir): return None

    class WithoutDemo(WithDemo):
        demo = Task.demo

    reg = Registry()
    reg.add_task("a", WithDemo())
    reg.add_task("b", WithoutDemo())
    assert reg.tables["tasks"]["a"].demo and not reg.tables["tasks"]["b"].demo


def test_get_within_a_domain_lists_only_that_domains_choices():
    reg = Registry()
    reg.add_distiller("glnn_like", object, "x", domain="graph")
    reg.add_distiller("other", object, "x", domain="speech")
    assert reg.names("distillers", "graph") == ["glnn_like"]
    with pytest.raises(RegistryError) as info:
        reg.get("distillers", "other", "graph method", domain="graph")
    assert str(info.value) == "unknown graph method 'other'; valid choices: glnn_like"


def test_unloadable_import_string_names_entry_and_plugin():
    reg = Registry(current_plugin="someplugin")
    reg.add_distiller("ghost", "kdhub_no_such_module_anywhere:Ghost", "x")
    with pytest.raises(RegistryError, match=r"'ghost' \(registered by plugin 'someplugin' as "
                                            r"'kdhub_no_such_module_anywhere:Ghost'\) cannot be loaded: "
                                            r"ModuleNotFoundError"):
        reg.get("distillers", "ghost")


def test_same_import_string_twice_is_not_a_conflict_but_another_target_is():
    reg = Registry()
    reg.add_loss("l", "a.b:C", "x")
    reg.add_loss("l", "a.b:C", "x")
    with pytest.raises(RegistryError, match="registered twice"):
        reg.add_loss("l", "a.b:D", "x")


def _modules_after(command: str) -> set:
    code = (f"import sys\nfrom kdhub.cli import main\nrc = main([{command!r}])\n"
            f"print('MODULES:' + ','.join(sorted(sys.modules)))\nsys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(proc.stdout.rsplit("MODULES:", 1)[1].strip().split(","))


@pytest.mark.parametrize("command", ["list", "plugins", "configs"])
def test_listing_imports_no_framework(command):
    modules = _modules_after(command)
    loaded = sorted(m for m in modules if m.split(".")[0] in FRAMEWORKS)
    assert not loaded, f"kdhub {command} imported {loaded[:10]}"


def test_list_shows_each_entrys_domain_and_plugin():
    out = run_kdhub(["list"]).stdout
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert lines["kd"][1:3] == ["-", "[kdhub.builtin]"]  # a generic core loss
    assert "tap" not in lines  # not runnable from any config, so not registered
    pytest.importorskip("kdhub_graph")
    assert lines["glnn"][1:3] == ["graph", "[graph]"] and lines["graph"][1] == "graph"


L1_PLUGIN = '''
from torch import nn
from kdhub.hookspecs import hookimpl


class MeanAbs(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, s, t):
        return self.scale * (s - t).abs().mean()


@hookimpl
def kdhub_register(registry):
    registry.add_loss("mean_abs", "kdhub_l1_plugin:MeanAbs", "mean absolute difference")
'''


def test_a_loss_an_installed_plugin_registers_is_usable_in_terms_by_name(tmp_path):
    """Every registered loss can be built by name where terms are built (the core's TapAlgorithm, segmentation's
    TermsDistiller): a third-party distribution adds one and a term uses it with its own arguments."""
    from dist_helpers import make_distribution

    site = make_distribution(tmp_path / "site", "kdhub-l1-plugin", entry_points={"l1": "kdhub_l1_plugin"},
                             modules={"kdhub_l1_plugin": L1_PLUGIN})
    code = ("import torch; from kdhub.mapping import build_terms; "
            "t = build_terms([{'name': 'f', 'loss': {'type': 'mean_abs', 'scale': 2.0}}])[0]; "
            "print(type(t.loss).__name__, float(t.loss(torch.tensor([1.0, -2.0]), torch.tensor([0.0, 0.0]))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["MeanAbs", "3.0"]  # 2 x mean(|1|, |-2|)
    unknown = subprocess.run([sys.executable, "-c", code.replace("'mean_abs'", "'mean_ab'")], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(site)})
    assert "unknown loss 'mean_ab' (did you mean 'mean_abs'?)" in unknown.stderr


def test_messages_name_one_entry_of_a_kind_in_the_singular():
    registry = Registry()
    registry.add_loss("kd", "a.b:C", "x")
    with pytest.raises(RegistryError, match="^loss 'kd' is registered twice"):
        registry.add_loss("kd", "a.b:D", "x")
    with pytest.raises(RegistryError, match="unknown loss 'kld'"):
        registry.get("losses", "kld")
