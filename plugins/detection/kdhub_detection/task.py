"""The detection task: one ``kdhub train`` = one mmengine Runner run of an mmdet config.

A plain detector config trains that detector (teachers and baselines); a distillation config
(``model.type='KDDistillDetector'``) trains the student with GID or DETRDistill. After training, the
student is tested with the config's test evaluator (mmdet's CocoMetric), the teacher once (cached in
``teacher_metrics.json``), and exported as a plain mmdet checkpoint ``student.pth`` with its detector config
``student_config.py`` (``mmdet.apis.init_detector('student_config.py', 'student.pth')`` loads it).
``summary.json`` gathers AP of both, parameter counts and skipped annotations.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from kdhub import dist
from kdhub.checkpoint import CheckpointError, atomic_save, atomic_write_text, load_checkpoint, sub_state_dict
from kdhub.config import ConfigError, LoadedConfig
from kdhub.distiller import count_parameters
from kdhub.runs import RunContext, RunInfo
from kdhub.task import DemoResult, Task
from kdhub.taps import unwrap

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
AP_KEYS = {"AP": "bbox_mAP", "AP50": "bbox_mAP_50", "AP75": "bbox_mAP_75", "APs": "bbox_mAP_s",
           "APm": "bbox_mAP_m", "APl": "bbox_mAP_l"}


def ap_metrics(metrics: Dict[str, Any]) -> Dict[str, float]:
    """CocoMetric's ``coco/bbox_mAP*`` (0..1) as AP percentages. CocoMetric returns nothing when the model
    detected nothing at all on the whole split: that is AP 0."""
    if not metrics:
        return {name: 0.0 for name in AP_KEYS}
    out = {}
    for name, key in AP_KEYS.items():
        value = metrics.get(f"coco/{key}", metrics.get(key))
        if value is not None:
            value = float(value)
            out[name] = round(value * 100, 3) if value >= 0 else value
    return out or {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def runner_config(cfg, work_dir: Path, method: str, config_path: Optional[Path], resume: bool, launcher: str):
    """The loaded config completed for the Runner: work dir, launcher, resume, kdhub hooks, atomic saves."""
    from mmengine.config import Config
    cfg = Config(cfg.to_dict())
    cfg.work_dir = str(work_dir)
    cfg.launcher = launcher
    cfg.resume = resume
    cfg.setdefault("default_scope", "mmdet")
    hooks = cfg.setdefault("default_hooks", {})
    ckpt = hooks.setdefault("checkpoint", dict(type="CheckpointHook", interval=1))
    ckpt.setdefault("backend_args", dict(backend="kdhub_atomic"))
    custom = list(cfg.get("custom_hooks", []) or [])
    custom.append(dict(type="KDHubLifecycleHook", task="detection", method=method,
                       config_path=str(config_path) if config_path else None))
    cfg.custom_hooks = custom
    if launcher != "none":
        cfg.setdefault("model_wrapper_cfg", dict(type="KDHubDDP", broadcast_buffers=False,
                                                 find_unused_parameters=True))
        if not torch.cuda.is_available():
            cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
    return cfg


def export_student(model, cfg, path: Path, classes) -> Path:
    """Write the student as a plain mmdet checkpoint (``meta``, ``state_dict``) plus its detector config."""
    from .config import DISTILL_TYPE, student_config
    state = unwrap(model).state_dict()
    if cfg.model.get("type") == DISTILL_TYPE:
        state = sub_state_dict(state, "student")
    meta = {"dataset_meta": {"classes": list(classes)}, "kdhub": {"method": _method(cfg)}}
    atomic_save({"meta": meta, "state_dict": state}, path)
    student_config(cfg).dump(str(path.with_name("student_config.py")))
    return path


def _method(cfg) -> str:
    from .config import method_of
    return method_of(cfg)


def _test(runner) -> Dict[str, float]:
    if runner._test_loop is None:
        return {}
    return ap_metrics(runner.test_loop.run())


class DetectionRun:
    """One ``kdhub train`` of a detection config."""

    def __init__(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        from . import register  # noqa: F401
        self.loaded, self.cfg, self.source = loaded, loaded.cfg, str(loaded.path)
        self.work_dir, self.resume, self.launcher = Path(work_dir), resume, launcher
        self.method = _method(self.cfg)
        self.distilling = self.method != "supervised"

    def run(self) -> Dict[str, Any]:
        from mmengine.runner import Runner
        from .config import dataset_classes
        from .datasets import SKIPPED
        summary_path = self.work_dir / "summary.json"
        if self.resume and summary_path.is_file() and (self.work_dir / "student.pth").is_file():
            return json.loads(summary_path.read_text())  # a finished run is reused
        if not self.resume and (self.work_dir / "last_checkpoint").is_file():
            raise ConfigError(f"{self.work_dir} already holds a run; pass --resume to continue it or choose another "
                              f"--work-dir")
        dist.init_distributed(self.launcher)
        ctx = RunContext(RunInfo(task="detection", method=self.method, work_dir=self.work_dir,
                                 config_path=self.loaded.path, rank=dist.rank(), world_size=dist.world_size()))
        cfg = runner_config(self.cfg, self.work_dir, self.method, self.loaded.path, self.resume, self.launcher)
        runner = Runner.from_cfg(cfg)
        runner.train()
        student = _test(runner)
        model = unwrap(runner.model)
        teacher: Dict[str, float] = {}
        params = {"student": count_parameters(model.student if self.distilling else model)}
        if self.distilling:
            params["teacher"] = count_parameters(model.teacher)
            teacher = self.teacher_metrics(runner, model)
        path = self.work_dir / "student.pth"
        if dist.is_main():
            export_student(model, cfg, path, dataset_classes(cfg))
        dist.barrier()
        skipped = {k: len(v) for k, v in SKIPPED.items()}
        extra = {}
        if self.distilling:
            extra["distiller"] = cfg.model.distiller.to_dict()
            extra["teacher_checkpoint"] = cfg.model.teacher.checkpoint
        return ctx.finish(teacher=teacher, student=student, params=params, student_checkpoint=path,
                          student_config=self.work_dir / "student_config.py", skipped_annotations=skipped,
                          skipped_examples={k: v[:5] for k, v in SKIPPED.items()}, **extra)

    def teacher_metrics(self, runner, model) -> Dict[str, float]:
        """The teacher's test AP, computed once per work dir (the teacher is frozen)."""
        cache = self.work_dir / "teacher_metrics.json"
        if cache.is_file():
            return json.loads(cache.read_text())
        model.predict_with = "teacher"
        try:
            metrics = _test(runner)
        finally:
            model.predict_with = "student"
        if dist.is_main():
            atomic_write_text(cache, json.dumps(metrics, indent=2) + "\n")
        return metrics


def plain_checkpoint(path: Path, tmp: Path) -> Path:
    """``path`` if it is a plain detector checkpoint, else its student part written to ``tmp``."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("state_dict", ckpt)
    if any(k.startswith("student.") for k in state):
        out = tmp / "student.pth"
        atomic_save({"meta": ckpt.get("meta", {}), "state_dict": sub_state_dict(state, "student")}, out)
        return out
    return path


class DetectionTask(Task):
    """mmdet detectors and their distillation (GID, DETRDistill) through mmengine's Runner."""

    name = domain = "detection"
    package = "kdhub-detection"

    def evaluate(self, loaded: LoadedConfig, checkpoint: Path) -> Dict[str, float]:
        """Test AP of a student checkpoint (exported ``student.pth`` or a training checkpoint)."""
        from mmengine.runner import Runner
        from . import register  # noqa: F401
        from .config import student_config
        if not Path(checkpoint).is_file():
            raise CheckpointError(f"checkpoint not found: {checkpoint}")
        with tempfile.TemporaryDirectory() as tmp:
            cfg = student_config(loaded.cfg)
            cfg.work_dir = tmp
            cfg.load_from = str(plain_checkpoint(Path(checkpoint), Path(tmp)))
            cfg.setdefault("default_scope", "mmdet")
            return ap_metrics(Runner.from_cfg(cfg).test())

    def train(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        return DetectionRun(loaded, work_dir, resume, launcher).run()

    def demo(self, work_dir: Path) -> DemoResult:
        from .demo import run_demo
        return run_demo(work_dir)
