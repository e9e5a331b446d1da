"""kdhub's lifecycle hook against a stand-in for mmengine's Runner: events reported, checkpoint state
round-tripped through ``torch.load(weights_only=True)``."""
import random

import torch

from kdhub_openmmlab.hooks import RNG_KEY, SCALARS_KEY, KDHubLifecycleHook


class _Buffer:
    def __init__(self, values, counts):
        self.data = (values, counts)


class _Hub:
    def __init__(self):
        self.updates = []

    def update_scalar(self, key, value, count):
        self.updates.append((key, value, count))

    def get_info(self, key):
        return None


class _Runner:
    """The attributes of an mmengine Runner the lifecycle reads."""

    def __init__(self, work_dir):
        self.work_dir, self.iter, self.rank, self.world_size = str(work_dir), 0, 0, 1
        self.message_hub, self._resume = _Hub(), True


class _Recorder:
    """Stands in for the plugin set: records each lifecycle hook call, by name."""

    def __init__(self):
        self.calls = []

    def notify(self, name, **kw):
        self.calls.append((name, kw))


def test_runner_lifecycle_reports_events_and_round_trips_checkpoint_state(tmp_path, monkeypatch):
    import numpy as np
    rec = _Recorder()
    monkeypatch.setattr("kdhub.runs.RunContext.__init__.__defaults__", (rec,))
    life = KDHubLifecycleHook(task="detection", method="gid")
    runner = _Runner(tmp_path)
    life.before_run(runner)
    runner.iter = 4
    life.after_train_iter(runner, 3, outputs={"loss": torch.tensor(1.5), "nan": float("nan"), "text": "x"})
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_1.pth"))
    life.after_train_epoch(runner)
    life.after_train_epoch(runner)                                     # the same checkpoint is reported once
    life.after_val_epoch(runner, {"coco/bbox_mAP": np.float64(0.25)})
    names = [c[0] for c in rec.calls]
    assert names == ["kdhub_run_start", "kdhub_metrics_logged", "kdhub_checkpoint_saved", "kdhub_evaluation_done"]
    assert rec.calls[1][1]["metrics"] == {"loss": 1.5} and rec.calls[1][1]["step"] == 5
    assert not (tmp_path / "last_checkpoint").read_text().startswith("epoch")  # mmengine's record is kept as is
    ckpt = {"message_hub": {"log_scalars": {"train/loss": _Buffer(np.array([1.0, 2.0]), np.array([1, 1]))},
                            "runtime_info": {"eta": np.float64(3.0)}, "resumed_keys": {}}}
    random.seed(3)
    life.before_save_checkpoint(runner, ckpt)
    expected = random.random()
    buf = __import__("io").BytesIO()
    torch.save(ckpt, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)                        # nothing weights_only refuses
    assert loaded["message_hub"]["log_scalars"] == {} and isinstance(loaded["message_hub"]["runtime_info"]["eta"], float)
    life.after_load_checkpoint(runner, loaded)
    random.seed(99)  # mmengine's Runner.resume reseeds after the hook when the checkpoint's seed is not the config's
    life.before_train(runner)
    assert random.random() == expected and RNG_KEY in loaded and SCALARS_KEY not in loaded["message_hub"]
    assert runner.message_hub.updates == [("train/loss", 1.0, 1), ("train/loss", 2.0, 1)]


def test_weights_loaded_with_load_from_bring_neither_the_log_nor_the_random_state(tmp_path, monkeypatch):
    """``load_from`` starts a new run from a checkpoint's weights: its logged scalars and its saved random state
    belong to the earlier run (mmengine's own load_from leaves the message hub empty)."""
    import numpy as np
    monkeypatch.setattr("kdhub.runs.RunContext.__init__.__defaults__", (_Recorder(),))
    life, runner = KDHubLifecycleHook(task="segmentation"), _Runner(tmp_path)
    runner._resume = False
    life.before_run(runner)
    ckpt = {"message_hub": {"log_scalars": {"val/mIoU": _Buffer(np.array([40.0]), np.array([1]))}}}
    random.seed(3)
    life.before_save_checkpoint(runner, ckpt)
    random.seed(5)
    expected = random.random()
    random.seed(5)
    life.after_load_checkpoint(runner, ckpt)
    life.before_train(runner)
    assert runner.message_hub.updates == [] and random.random() == expected
