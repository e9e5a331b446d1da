"""kdhub's lifecycle hook for mmengine Runners, with the one resume policy of the mm plugins.

``KDHubLifecycleHook`` starts a :class:`~kdhub.runs.RunContext` before the run and forwards logged losses,
validation metrics (and teacher metrics another hook left in the message hub as ``teacher_metrics``) and
saved checkpoints to the plugins' lifecycle hooks. The message hub's logged scalars are stored as plain
tensors, so checkpoints load with ``torch.load(weights_only=True)`` (mmengine's resume included).

Resume policy: a resumed run makes the same random draws as an uninterrupted one.

* torch's generator, which the model draws from (dropout, drop-path, proposal sampling), is seeded at every
  training iteration from (run seed, iteration), in every run, so those draws never depend on whether or
  where the run was interrupted.
* Python's and numpy's generators, which the data pipeline draws from (random flips, crops), are saved with
  every checkpoint. An epoch-based loop resumes at an epoch boundary, so the saved states are restored, just
  before training starts (after mmengine's ``Runner.resume``, which reseeds every generator when the
  checkpoint's seed differs from the config's, as it does for a run without ``randomness.seed``). An
  iteration-based loop replays the data loader from the run's seed up to the saved iteration, which
  reproduces the pipeline's draws by itself; restoring the saved states before that replay would shift
  every later augmentation, so they are not applied there.
* The logged scalars' histories (the log's smoothing windows, the last validation metrics) come back with a
  resumed run only: a run started from weights alone (``load_from``) starts its log afresh, as mmengine's does.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook, LoggerHook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from kdhub.checkpoint import rng_state, set_rng_state
from kdhub.runs import RunContext, RunInfo

RNG_KEY = "kdhub_rng"
SCALARS_KEY = "kdhub_log_scalars"
TEACHER_METRICS = "teacher_metrics"


def _history(buffer) -> tuple:
    """A logged scalar's history (mmengine HistoryBuffer: values and counts) as two tensors, so checkpoints
    hold nothing that ``torch.load(weights_only=True)`` refuses."""
    values, counts = buffer.data
    return torch.as_tensor(values, dtype=torch.float64), torch.as_tensor(counts, dtype=torch.int64)


def _scalars(values: Optional[Mapping[str, Any]]) -> Dict[str, float]:
    out = {}
    for key, value in (values or {}).items():
        try:
            value = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError, RuntimeError):
            continue
        if math.isfinite(value):
            out[str(key)] = value
    return out


def iteration_seed(seed: Optional[int], iteration: int) -> int:
    """The torch seed of one training iteration: a function of the run's seed and the iteration alone."""
    return ((seed or 0) * 1_000_003 + iteration) % (2 ** 63)


def replays_data(runner) -> bool:
    """Whether the runner's train loop reaches a resumed iteration by replaying its data loader."""
    return isinstance(getattr(runner, "train_loop", None), IterBasedTrainLoop)


@HOOKS.register_module()
class KDHubLifecycleHook(Hook):
    """Lifecycle events of an mmengine Runner reported through kdhub's plugin hooks, with exact resume
    (see the module docstring). Lowest priority: it runs after the CheckpointHook, so saves are seen."""

    priority = "LOWEST"

    def __init__(self, task: str, method: str = "", config_path: Optional[str] = None, role: str = "student",
                 extra: Optional[Dict[str, Any]] = None):
        self.task, self.method, self.role = task, method, role
        self.config_path = Path(config_path) if config_path else None
        self.extra = dict(extra or {})
        self.ctx: Optional[RunContext] = None
        self._last_ckpt: Optional[str] = None
        self._resume_rng: Optional[Dict[str, Any]] = None

    def before_run(self, runner) -> None:
        info = RunInfo(task=self.task, method=self.method, work_dir=Path(runner.work_dir),
                       config_path=self.config_path, rank=runner.rank, world_size=runner.world_size,
                       extra=self.extra, role=self.role)
        self.ctx = RunContext(info)
        marker = Path(runner.work_dir) / "last_checkpoint"
        self._last_ckpt = marker.read_text().strip() if marker.is_file() else None
        self.ctx.start()

    def before_train(self, runner) -> None:
        if self._resume_rng is not None:  # after Runner.resume's own reseeding, before any data is drawn
            set_rng_state(self._resume_rng)
            self._resume_rng = None
        teacher = runner.message_hub.get_info(TEACHER_METRICS)
        if self.ctx is not None and teacher:
            self.ctx.evaluation_done("teacher", runner.iter, teacher)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        torch.manual_seed(iteration_seed(runner.seed, runner.iter))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.ctx is not None:
            wrapper = getattr(runner, "optim_wrapper", None)  # the learning rate(s) next to the losses
            lrs = {key: values[0] for key, values in wrapper.get_lr().items() if values} if wrapper else {}
            self.ctx.log_metrics(runner.iter + 1, {**_scalars(outputs), **_scalars(lrs)})
            self._report_checkpoint(runner)

    def after_train_epoch(self, runner) -> None:
        self._report_checkpoint(runner)

    def after_val_epoch(self, runner, metrics: Optional[Mapping[str, Any]] = None) -> None:
        if self.ctx is not None:
            self.ctx.evaluation_done(self.role, runner.iter, _scalars(metrics))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = rng_state()
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict):
            if hub.get("log_scalars"):
                hub[SCALARS_KEY] = {k: _history(v) for k, v in hub.pop("log_scalars").items()}
                hub["log_scalars"] = {}
            info = hub.get("runtime_info") or {}
            for key, value in info.items():  # numpy scalars (e.g. the ETA) as Python numbers
                if type(value).__module__ == "numpy" and hasattr(value, "item"):
                    info[key] = value.item()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        resumed = bool(getattr(runner, "_resume", False))
        hub = checkpoint.get("message_hub")
        scalars = hub.pop(SCALARS_KEY, None) if isinstance(hub, dict) else None
        for key, (values, counts) in (scalars or {}).items() if resumed else ():
            for value, count in zip(values.tolist(), counts.tolist()):
                runner.message_hub.update_scalar(key, value, int(count))
        if RNG_KEY in checkpoint and resumed and not replays_data(runner):
            self._resume_rng = checkpoint[RNG_KEY]  # applied in before_train (see the module docstring)

    def _report_checkpoint(self, runner) -> None:
        """mmengine's CheckpointHook records each save in ``work_dir/last_checkpoint``; report new ones."""
        marker = Path(runner.work_dir) / "last_checkpoint"
        if self.ctx is None or not marker.is_file():
            return
        current = marker.read_text().strip()
        if current and current != self._last_ckpt:
            self._last_ckpt = current
            self.ctx.checkpoint_saved(runner.iter, Path(current), record=False)


@HOOKS.register_module()
class KDHubLoggerHook(LoggerHook):
    """mmengine's ``LoggerHook`` with the test metrics' JSON written by rank 0 only.

    In mmengine 0.10.7 ``LoggerHook.after_test_epoch`` dumps ``<log_dir>/<timestamp>.json`` on every rank, and the
    ranks share the timestamp: in a work dir on a shared filesystem two ranks would write the same file. The
    other ranks' only loss is a console line (they keep no log file)."""

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            super().after_test_epoch(runner, metrics)
