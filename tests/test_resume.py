"""An interrupted run resumes to exactly the result of an uninterrupted one; bad losses stop safely."""
import math

import pytest
import torch
from torch import nn

from kdhub import TapAlgorithm, build_terms
from kdhub.checkpoint import atomic_save, atomic_write_folder, load_checkpoint
from kdhub.engine import NonFiniteLossError, Trainer
from kdhub.runs import RunContext, RunInfo


class Crash(RuntimeError):
    pass


class LossOf(nn.Module):
    """Wraps a module so the Trainer sees a dict of losses: the mean of its output."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return {"loss": self.net(x).mean()}


def make_model():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    teacher = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    terms = build_terms([{"name": "kd", "loss": {"type": "kd", "temperature": 2.0}}])
    return TapAlgorithm(student, teacher, terms)


DATA = (torch.randn(64, 6, generator=torch.Generator().manual_seed(1)), torch.arange(64) % 3)


def run(work_dir, epochs=6, crash_at=None, resume=False):
    model = make_model()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    def batches(epoch):
        if crash_at is not None and epoch == crash_at:
            raise Crash("simulated interruption")
        order = torch.randperm(64)  # global RNG: resume must restore it
        for i in range(0, 64, 16):
            yield DATA[0][order[i:i + 16]], DATA[1][order[i:i + 16]]

    ctx = RunContext(RunInfo("t", "tap", work_dir))
    trainer = Trainer(model, opt, ctx, epochs=epochs, batches=batches, scheduler=sched, progress=False,
                      evaluate=lambda: {"acc": (model.student(DATA[0]).argmax(1) == DATA[1]).float().mean().item()},
                      select="acc")
    trainer.fit(resume=resume)
    return model, trainer


def test_interrupted_run_resumes_to_same_weights(tmp_path):
    torch.manual_seed(123)
    ref, ref_tr = run(tmp_path / "a")
    torch.manual_seed(123)
    with pytest.raises(Crash):
        run(tmp_path / "b", crash_at=4)
    torch.manual_seed(999)  # a fresh process would have some other RNG state
    resumed, tr = run(tmp_path / "b", resume=True)
    assert tr.step == ref_tr.step == 6 * 4
    for (k, v), (k2, v2) in zip(ref.state_dict_without_teachers().items(), resumed.state_dict_without_teachers().items()):
        assert k == k2 and torch.equal(v, v2), k
    assert tr.best_metrics == ref_tr.best_metrics
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("epoch_*.pth")) == ["epoch_5.pth", "epoch_6.pth"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def batches(epoch):
        yield torch.full((2, 2), math.nan if epoch == 2 else 1.0)

    ctx = RunContext(RunInfo("t", "m", tmp_path))
    trainer = Trainer(LossOf(model), opt, ctx, epochs=5, batches=batches, progress=False)
    with pytest.raises(NonFiniteLossError, match="epoch_2.pth"):
        trainer.fit()
    good = load_checkpoint(ctx.latest_checkpoint())
    assert good["epoch"] == 2 and all(torch.isfinite(v).all() for v in good["model"].values())
    assert torch.isfinite(model.weight).all()


def test_atomic_save_never_leaves_partial_file(tmp_path):
    path = tmp_path / "ck.pth"
    atomic_save({"a": torch.ones(2)}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_save({"a": Boom()}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]


def test_atomic_write_folder_replaces_the_whole_set_or_nothing(tmp_path):
    folder = tmp_path / "examples"
    atomic_write_folder(folder, {"a.wav": b"1", "b.wav": b"2"})
    atomic_write_folder(folder, {"c.wav": b"3"})                   # a stale file of the last set goes too
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"c.wav": b"3"}

    class Failing(dict):
        def items(self):
            yield "d.wav", b"4"
            raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write_folder(folder, Failing())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"c.wav": b"3"}
    assert [p.name for p in tmp_path.iterdir()] == ["examples"]


def test_early_stopping_with_patience(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing improves
    scores = iter([0.5, 0.6, 0.6, 0.55, 0.6, 0.9, 0.9])

    trainer = Trainer(LossOf(model), opt, RunContext(RunInfo("t", "m", tmp_path)), epochs=7,
                      batches=lambda e: [torch.ones(1, 2)], evaluate=lambda: {"acc": next(scores)},
                      select="acc", patience=3, progress=False)
    best = trainer.fit()
    assert trainer.epoch == 5 and best == {"acc": 0.6}  # epochs 3, 4, 5 brought no improvement


def test_ties_to_later_keeps_the_later_evaluation(tmp_path):
    model = nn.Linear(2, 2)
    scores = iter([0.5, 0.7, 0.7, 0.6])

    trainer = Trainer(LossOf(model), torch.optim.SGD(model.parameters(), lr=0.1), RunContext(RunInfo("t", "m", tmp_path)),
                      epochs=4, batches=lambda e: [torch.ones(1, 2)], select="acc", ties_to_later=True,
                      evaluate=lambda: {"acc": next(scores), "epoch": trainer.epoch}, progress=False)
    assert trainer.fit() == {"acc": 0.7, "epoch": 3}
    assert load_checkpoint(trainer.best_path)["epoch"] == 3


def test_numpy_metrics_leave_checkpoints_that_load_weights_only_and_resume(tmp_path):
    """An ``evaluate()`` returning numpy scalars (what sklearn's metrics return) or 0-d tensors: the best and the
    epoch checkpoints still load with ``weights_only=True``, so ``load_best`` and ``--resume`` work."""
    import numpy as np

    def trainer(epochs):
        model = nn.Linear(2, 2)
        return Trainer(LossOf(model), torch.optim.SGD(model.parameters(), lr=0.1),
                       RunContext(RunInfo("t", "m", tmp_path)), epochs=epochs, batches=lambda e: [torch.ones(1, 2)],
                       evaluate=lambda: {"acc": np.float64(0.25), "loss": torch.tensor(1.5)}, select="acc",
                       progress=False)

    first = trainer(1)
    first.fit()
    first.load_best()
    assert load_checkpoint(first.best_path)["metrics"] == {"acc": 0.25, "loss": 1.5}
    second = trainer(2)
    assert second.fit(resume=True) == {"acc": 0.25, "loss": 1.5} and second.epoch == 2


def test_an_existing_folder_is_swapped_with_the_new_set_in_one_step(tmp_path, monkeypatch):
    """Where the system can exchange two paths atomically (Linux), replacing a folder never passes through a
    moment without it: no rename of the folder aside happens (a crash there would leave no folder at all)."""
    from pathlib import Path

    from kdhub import checkpoint

    folder = tmp_path / "examples"
    atomic_write_folder(folder, {"a.wav": b"1"})
    probe_a, probe_b = tmp_path / "probe_a", tmp_path / "probe_b"
    probe_a.mkdir()
    probe_b.mkdir()
    if not checkpoint._exchange(probe_a, probe_b):
        pytest.skip("this system cannot exchange two paths atomically")
    real_rename = Path.rename

    def rename(self, target):
        if Path(self) == folder:
            raise AssertionError("the folder was moved aside")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    atomic_write_folder(folder, {"b.wav": b"2"})
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"b.wav": b"2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples", "probe_a", "probe_b"]


def test_the_latest_checkpoint_is_the_highest_epoch_and_other_names_are_left_alone(tmp_path):
    ctx = RunContext(RunInfo("t", "m", tmp_path))
    ctx.checkpoint_dir.mkdir(parents=True)
    for name in ("epoch_2.pth", "epoch_10.pth", "epoch_final.pth", "epoch_.pth"):
        (ctx.checkpoint_dir / name).write_bytes(b"")
    assert ctx.latest_checkpoint() == ctx.checkpoint_dir / "epoch_10.pth"
