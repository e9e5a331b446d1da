"""kdhub's run lifecycle for mmengine Runners, written against mmengine's hook protocol.

mmengine calls ``hook.<event>(runner, ...)`` on registered hooks. :class:`RunnerLifecycle` implements the
events kdhub needs by duck typing (``runner.work_dir``, ``runner.iter``, ``runner.rank``...), so the core
stays free of mm* imports; an mm-based plugin makes it a real hook in two lines::

    @HOOKS.register_module()
    class KDHubLifecycleHook(RunnerLifecycle, Hook):
        priority = 'LOWEST'   # after CheckpointHook, so saved checkpoints are seen

What it does: starts a :class:`~kdhub.runs.RunContext` before the run, forwards logged losses, validation
metrics and saved checkpoints to the plugins' lifecycle hooks, and stores every RNG's state in each
checkpoint (restored on resume, so a resumed run draws the same augmentations as an uninterrupted one).
The message hub's logged scalars are stored as plain tensors, so checkpoints load with
``torch.load(weights_only=True)`` (mmengine's resume included).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from .checkpoint import rng_state, set_rng_state
from .runs import RunContext, RunInfo

RNG_KEY = "kdhub_rng"
SCALARS_KEY = "kdhub_log_scalars"


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


class RunnerLifecycle:
    """Lifecycle events of an mmengine Runner reported through kdhub's plugin hooks."""

    priority = "LOWEST"

    def __init__(self, task: str, method: str = "", config_path: Optional[str] = None, role: str = "student",
                 extra: Optional[Dict[str, Any]] = None):
        self.task, self.method, self.role = task, method, role
        self.config_path = Path(config_path) if config_path else None
        self.extra = dict(extra or {})
        self.ctx: Optional[RunContext] = None
        self._last_ckpt: Optional[str] = None

    def before_run(self, runner) -> None:
        info = RunInfo(task=self.task, method=self.method, work_dir=Path(runner.work_dir),
                       config_path=self.config_path, rank=runner.rank, world_size=runner.world_size,
                       extra=self.extra)
        self.ctx = RunContext(info)
        marker = Path(runner.work_dir) / "last_checkpoint"
        self._last_ckpt = marker.read_text().strip() if marker.is_file() else None
        self.ctx.start()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.ctx is not None:
            self.ctx.log_metrics(runner.iter + 1, _scalars(outputs))
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
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict) and SCALARS_KEY in hub:
            for key, (values, counts) in hub.pop(SCALARS_KEY).items():
                for value, count in zip(values.tolist(), counts.tolist()):
                    runner.message_hub.update_scalar(key, value, int(count))
        if RNG_KEY in checkpoint and getattr(runner, "_resume", False):
            set_rng_state(checkpoint[RNG_KEY])

    def _report_checkpoint(self, runner) -> None:
        """mmengine's CheckpointHook records each save in ``work_dir/last_checkpoint``; report new ones."""
        marker = Path(runner.work_dir) / "last_checkpoint"
        if self.ctx is None or not marker.is_file():
            return
        current = marker.read_text().strip()
        if current and current != self._last_ckpt:
            self._last_ckpt = current
            self.ctx.checkpoint_saved(runner.iter, Path(current), record=False)
