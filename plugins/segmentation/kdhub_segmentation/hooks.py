"""The teacher's one validation, as an mmengine hook.

``TeacherEvalHook`` validates the frozen teacher of a :class:`~kdhub_segmentation.model.SegDistiller`
once, with the run's own val data and evaluator, before training starts, and leaves the metrics in the
message hub, where kdhub's lifecycle hook (:class:`kdhub_openmmlab.hooks.KDHubLifecycleHook`) reports them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from kdhub.checkpoint import atomic_write_text
from kdhub.taps import unwrap
from kdhub_openmmlab.hooks import TEACHER_METRICS

TEACHER_METRICS_FILE = "teacher_val.json"


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
        runner.message_hub.update_info(TEACHER_METRICS, metrics)
        runner.visualizer.add_scalars({f"teacher/{k}": v for k, v in metrics.items()}, step=runner.iter)

    @staticmethod
    def evaluate(model, dataloader, evaluator) -> Dict[str, float]:
        was_training = model.training
        model.eval()
        for data in dataloader:
            evaluator.process(data_samples=model.teacher_predict(data), data_batch=data)
        model.train(was_training)
        return {k: float(v) for k, v in evaluator.evaluate(len(dataloader.dataset)).items()}
