"""Lifecycle observers run in isolation: one that raises is reported once and switched off while the run
and the other observers go on. A hookimpl for a hook kdhub does not define is reported, not ignored."""
import textwrap

import torch
from torch import nn

import kdhub.plugins
from kdhub import cli, hookimpl
from kdhub.engine import Trainer
from kdhub.plugins import DISABLE_ENV, load_plugins
from kdhub.runs import RunContext, RunInfo

from core_helpers import run_kdhub
from dist_helpers import make_distribution


class Recorder:
    """A well-behaved observer that records every lifecycle call it gets."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def kdhub_run_start(self, run):
        self.calls.append(("run_start",))

    @hookimpl
    def kdhub_metrics_logged(self, run, step, metrics):
        self.calls.append(("metrics", step))

    @hookimpl
    def kdhub_evaluation_done(self, run, role, step, metrics):
        self.calls.append(("evaluation", role, step))

    @hookimpl
    def kdhub_checkpoint_saved(self, run, step, path):
        self.calls.append(("checkpoint", step, path.name))

    @hookimpl
    def kdhub_run_end(self, run, summary):
        self.calls.append(("run_end", summary["epochs"]))


class FailingLogger:
    """An observer with a bug in its metrics hook."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def kdhub_metrics_logged(self, run, step, metrics):
        self.calls += 1
        raise RuntimeError("logger backend unreachable")


class LossOf(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return {"loss": self.net(x).pow(2).mean()}


def test_raising_observer_is_reported_once_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    plugins = load_plugins()
    recorder, failing = Recorder(), FailingLogger()
    plugins.pm.register(recorder, name="recorder")
    plugins.pm.register(failing, name="failing")  # registered last: pluggy calls it before the recorder

    model = nn.Linear(3, 1)
    ctx = RunContext(RunInfo("t", "m", tmp_path), plugins=plugins)
    trainer = Trainer(LossOf(model), torch.optim.SGD(model.parameters(), lr=0.1), ctx, epochs=3,
                      batches=lambda epoch: [torch.ones(2, 3), torch.zeros(2, 3)], evaluate=lambda: {"acc": 1.0},
                      progress=False)
    trainer.fit()
    ctx.end({"epochs": trainer.epoch})

    assert trainer.epoch == 3 and (tmp_path / "checkpoints" / "epoch_3.pth").is_file()
    expected = [("run_start",)]
    for epoch in (1, 2, 3):
        step = 2 * epoch  # two batches per epoch
        expected += [("metrics", step), ("evaluation", "student", step), ("checkpoint", step, f"epoch_{epoch}.pth")]
    assert recorder.calls == expected + [("run_end", 3)]

    err = capsys.readouterr().err
    assert failing.calls == 1
    assert err.count("raised in kdhub_metrics_logged") == 1
    assert "'failing'" in err and "RuntimeError: logger backend unreachable" in err
    assert f"{DISABLE_ENV}=failing" in err
    assert plugins.info["failing"].error == "in kdhub_metrics_logged: RuntimeError: logger backend unreachable"
    assert "logger backend unreachable" in plugins.info["failing"].detail  # the traceback, for --verbose
    assert plugins.pm.get_plugin("failing") is None and plugins.pm.get_plugin("recorder") is recorder

    monkeypatch.setattr(kdhub.plugins, "_CACHED", plugins)  # `kdhub plugins` in this process shows it
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "failing  (? ?)  [broken]" in out and "error: in kdhub_metrics_logged" in out
    assert "kdhub.builtin  (built-in" in out and "[ok]" in out


def test_misspelt_hook_in_installed_plugin_is_reported(tmp_path):
    site = make_distribution(
        tmp_path / "site", "kdhub-typo", entry_points={"typo": "kdhub_typo"},
        modules={"kdhub_typo": textwrap.dedent('''
            import kdhub

            @kdhub.hookimpl
            def kdhub_register(registry):
                registry.add_loss("typo_loss", object)

            @kdhub.hookimpl
            def kdhub_metric_logged(run, step, metrics):
                pass
            ''')})
    listing = run_kdhub(["plugins"], site=site).stdout
    assert "typo  (kdhub-typo 0.1.0)  [broken]" in listing
    assert "unknown hook 'kdhub_metric_logged' (did you mean 'kdhub_metrics_logged'?)" in listing
    valid = listing.split("valid hooks: ")[1].splitlines()[0].split(", ")
    assert set(valid) == {"kdhub_register", "kdhub_load_config", "kdhub_doctor", "kdhub_run_start",
                          "kdhub_metrics_logged", "kdhub_evaluation_done", "kdhub_checkpoint_saved", "kdhub_run_end"}
    assert listing.split("kdhub.builtin  (built-in")[1].splitlines()[0].endswith("[ok]")
    names = run_kdhub(["list"], site=site).stdout
    assert "typo_loss" not in names  # the broken plugin registered nothing
    assert "\n  kd " in names        # the others keep working


def test_wrapper_on_a_lifecycle_hook_is_reported():
    plugins = load_plugins()

    class Wrapping:
        @hookimpl(wrapper=True)
        def kdhub_run_end(self, run, summary):
            return (yield)

    plugins.pm.register(Wrapping(), name="wrapping")
    kdhub.plugins._check_hooks(plugins)
    assert "as a wrapper" in plugins.info["wrapping"].error
    assert plugins.pm.get_plugin("wrapping") is None


def test_tensorboard_observer_writes_what_the_hooks_carry_and_nothing_when_off(tmp_path, monkeypatch):
    """The built-in observer, driven through the lifecycle hooks alone: off by default (no folder), on with
    KDHUB_TENSORBOARD=1; scalars logged after the last evaluation survive a run that never reports its end."""
    from kdhub import tensorboard
    from kdhub.runs import RunInfo
    from kdhub.testing import read_scalars

    run = RunInfo(task="toy", method="kd", work_dir=tmp_path / "run", role="baseline")
    monkeypatch.delenv(tensorboard.ENV, raising=False)
    tensorboard.kdhub_run_start(run)
    tensorboard.kdhub_metrics_logged(run, 1, {"loss": 2.0})
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv(tensorboard.ENV, "1")
    tensorboard.kdhub_run_start(run)
    tensorboard.kdhub_metrics_logged(run, 1, {"loss": 2.0, "lr": 0.5, "note": "text is skipped"})
    tensorboard.kdhub_evaluation_done(run, "baseline", 1, {"acc": 75.0})
    tensorboard.kdhub_metrics_logged(run, 2, {"loss": 1.5, "lr": 0.25})
    tensorboard.close_all()
    assert read_scalars(tmp_path / "run" / "tensorboard") == {
        "train/loss": [(1, 2.0), (2, 1.5)], "train/lr": [(1, 0.5), (2, 0.25)], "eval/baseline/acc": [(1, 75.0)]}


def test_registration_as_a_wrapper_is_reported_not_silently_empty():
    plugins = load_plugins()

    class Wrapping:
        @hookimpl(wrapper=True)
        def kdhub_register(self, registry):
            registry.add_loss("never_added", "a.b:C")
            return (yield)

    plugins.pm.register(Wrapping(), name="wrapping_register")
    kdhub.plugins._check_hooks(plugins)
    assert "implements kdhub_register as a wrapper" in plugins.info["wrapping_register"].error
