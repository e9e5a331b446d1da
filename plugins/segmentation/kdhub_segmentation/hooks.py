"""mmengine hooks: kdhub's run lifecycle with exact resume, and the teacher's one validation.

``KDHubLifecycleHook`` is the core's :class:`kdhub.lifecycle.RunnerLifecycle` as an mmseg hook: observer
plugins see segmentation runs, and checkpoints load with ``torch.load(weights_only=True)``. It makes
resume exact the mmengine way: mmengine re-seeds and replays the data loader on resume, so data order
and numpy-driven augmentation continue by themselves (restoring numpy's saved state before that replay
would shift them, so the hook does not), while the torch RNG that dropout and drop-path draw from is
seeded at every iteration from (run seed, iteration), making each iteration's draws the same whether or
not the run was interrupted before it.

``TeacherEvalHook`` validates the frozen teacher of a :class:`~kdhub_segmentation.model.SegDistiller`
once, with the run's own val data and evaluator, before training starts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from kdhub.checkpoint import atomic_write_text
from kdhub.lifecycle import RNG_KEY, RunnerLifecycle
from kdhub.taps import unwrap

TEACHER_METRICS_FILE = "teacher_val.json"


@HOOKS.register_module()
class KDHubLifecycleHook(RunnerLifecycle, Hook):
    """kdhub's lifecycle hooks for an mmseg run, with exact resume (see the module docstring)."""

    def before_train(self, runner) -> None:
        teacher = runner.message_hub.get_info("teacher_metrics")
        if self.ctx is not None and teacher:
            self.ctx.evaluation_done("teacher", runner.iter, teacher)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.pop(RNG_KEY, None)
        super().after_load_checkpoint(runner, checkpoint)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        seed = runner.seed if runner.seed is not None else 0
        torch.manual_seed((seed * 1_000_003 + runner.iter) % (2 ** 63))


@HOOKS.register_module()
class TeacherEvalHook(Hook):
    """Validate the teacher once per work dir (kept in ``teacher_val.json``) and log it as ``teacher/*``."""

    priority = "LOW"

    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        if not hasattr(model, "teacher_predict") or runner.val_loop is None:
            return
        path = Path(runner.work_dir) / TEACHER_METRICS_FILE
        if path.is_file():
            metrics = json.loads(path.read_text())
        else:
            metrics = self.evaluate(model, runner.val_loop.dataloader, runner.val_loop.evaluator)
            if is_main_process():
                atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")
        runner.logger.info("teacher (validated once): " + ", ".join(f"{k}: {v:.2f}" for k, v in metrics.items()))
        runner.message_hub.update_info("teacher_metrics", metrics)
        runner.visualizer.add_scalars({f"teacher/{k}": v for k, v in metrics.items()}, step=runner.iter)

    @staticmethod
    def evaluate(model, dataloader, evaluator) -> Dict[str, float]:
        was_training = model.training
        model.eval()
        for data in dataloader:
            evaluator.process(data_samples=model.teacher_predict(data), data_batch=data)
        model.train(was_training)
        return {k: float(v) for k, v in evaluator.evaluate(len(dataloader.dataset)).items()}
