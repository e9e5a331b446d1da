"""mmengine hooks: kdhub's run lifecycle for observer plugins, and the teacher's one validation.

``KDHubRunHook`` reports an mmengine run through :class:`kdhub.RunContext` (start, training metrics,
evaluations, checkpoints), so plugins observing kdhub runs see segmentation runs like any other.
``TeacherEvalHook`` validates the frozen teacher of a :class:`~kdhub_segmentation.model.SegDistiller`
once, with the run's own val data and evaluator, before training starts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from mmengine.dist import get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from kdhub.checkpoint import atomic_write_text
from kdhub.runs import RunContext, RunInfo
from kdhub.taps import unwrap

TEACHER_METRICS_FILE = "teacher_val.json"


@HOOKS.register_module()
class KDHubRunHook(Hook):
    """Forwards the run's lifecycle to kdhub's plugin hooks (rank 0 only, as :class:`RunContext` does).

    ``role`` names the model that validation measures: 'teacher', 'baseline' or 'student'.
    """

    priority = "LOWEST"  # after the CheckpointHook, so a checkpoint saved this iteration is complete

    def __init__(self, task: str = "segmentation", method: str = "supervised", role: str = "student",
                 config_path: Optional[str] = None):
        self.task, self.method, self.role = task, method, role
        self.config_path = Path(config_path) if config_path else None
        self.ctx: Optional[RunContext] = None
        self._last_ckpt: Optional[str] = None

    def before_train(self, runner) -> None:
        info = RunInfo(task=self.task, method=self.method, work_dir=Path(runner.work_dir),
                       config_path=self.config_path, rank=get_rank(), world_size=get_world_size(),
                       extra={"role": self.role})
        self.ctx = RunContext(info)
        self._last_ckpt = runner.message_hub.get_info("last_ckpt")
        self.ctx.start()
        teacher = runner.message_hub.get_info("teacher_metrics")
        if teacher:
            self.ctx.evaluation_done("teacher", runner.iter, teacher)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Optional[dict] = None):
        if self.ctx is None:
            return
        if outputs:
            metrics = {k: float(v.detach()) if hasattr(v, "detach") else float(v) for k, v in outputs.items()}
            metrics["lr"] = float(runner.optim_wrapper.get_lr()["lr"][0])
            self.ctx.log_metrics(runner.iter + 1, metrics)
        self._report_checkpoint(runner)

    def after_train_epoch(self, runner) -> None:
        self._report_checkpoint(runner)

    def after_train(self, runner) -> None:
        self._report_checkpoint(runner)

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self.ctx is not None and metrics:
            self.ctx.evaluation_done(self.role, runner.iter, metrics)

    def _report_checkpoint(self, runner) -> None:
        last = runner.message_hub.get_info("last_ckpt")
        if last and last != self._last_ckpt and Path(last).is_file():
            self._last_ckpt = last
            # mmengine keeps its own last_checkpoint marker (what its resume reads): only tell observers
            self.ctx.checkpoint_saved(runner.iter, Path(last), record=False)


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
