"""The detection task: mmengine Runner runs of mmdet configs.

A plain detector config trains that detector in the work dir. A distillation config
(``model.type='KDDistillDetector'``) runs the core pipeline (:mod:`kdhub.pipeline`): ``teacher/`` trains the
teacher from ``model.teacher.config`` when ``model.teacher.checkpoint`` is None (a given teacher is tested
once instead), ``baseline/`` trains the student alone when ``baseline = True``, and ``student/`` trains the
student with GID or DETRDistill. Every model is tested with the config's test evaluator (mmdet's CocoMetric)
and exported as a plain mmdet checkpoint ``student.pth`` with its detector config ``student_config.py``
(``mmdet.apis.init_detector('student_config.py', 'student.pth')`` loads it). ``summary.json`` gathers the AP
of each, parameter counts and skipped annotations.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from kdhub import dist
from kdhub.checkpoint import CheckpointError, atomic_save, sub_state_dict
from kdhub.config import ConfigError, LoadedConfig
from kdhub.hub import is_url
from kdhub.algorithm import count_parameters
from kdhub.pipeline import Pipeline, Stages, demo_rows
from kdhub.runs import RunContext, RunInfo
from kdhub.task import DemoResult, Task
from kdhub.taps import unwrap

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEMO_CONFIG = CONFIG_DIR / "demo_gid_retinanet_synth.py"
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


class DetectionRun(Stages):
    """One ``kdhub train`` of a detection config: one Runner run for a detector config, the core pipeline's
    teacher, baseline and student for a distillation config."""

    def __init__(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        from . import register  # noqa: F401  (kdhub's mmdet modules)
        self.loaded, self.cfg, self.source = loaded, loaded.cfg, str(loaded.path)
        self.work_dir, self.resume, self.launcher = Path(work_dir), resume, launcher
        self.method = _method(self.cfg)
        self.distilling = self.method != "supervised"
        self.baseline = bool(self.cfg.get("baseline", False))
        self.results: Dict[str, Dict[str, Any]] = {}

    def train_one(self, cfg, work_dir: Path, role: str) -> Dict[str, Any]:
        """Train (or resume) one detector or distillation run in ``work_dir``, test it and export the student
        as a plain mmdet checkpoint (``student.pth`` and ``student_config.py``)."""
        from mmengine.runner import Runner

        from kdhub_openmmlab.runner import runner_config

        from .config import DISTILL_TYPE, dataset_classes
        method = _method(cfg)
        cfg = runner_config(cfg, work_dir, task="detection", method=method, config_path=self.loaded.path,
                            resume=self.resume, launcher=self.launcher, role=role, default_scope="mmdet",
                            find_unused_parameters=True, amp=self.amp)
        runner = Runner.from_cfg(cfg)
        runner.train()
        model = unwrap(runner.model)
        distilling = cfg.model.get("type") == DISTILL_TYPE
        result = {"test": _test(runner), "export": str(work_dir / "student.pth"),
                  "params": count_parameters(model.student if distilling else model)}
        if distilling:
            result["teacher_params"] = count_parameters(model.teacher)
        if dist.is_main():
            export_student(model, cfg, Path(result["export"]), dataset_classes(cfg))
        dist.barrier()
        return result

    # the pipeline's stages ----------------------------------------------------------------------------
    def check(self) -> None:
        """Before anything is written (keys, classes and detector kinds were checked when the config was loaded):
        the distiller set up once on the untrained student and teacher (its taps resolve, its adapters fit), a
        given teacher checkpoint fitted strictly to the teacher detector, or else the data of the teacher's own
        config; then every split's data set built and its images readable. First what the Runner builds by name
        only when training starts (the model, the optimizer, the schedulers' and hooks' types, load_from)."""
        from kdhub_openmmlab.checks import build_model, check_datasets, check_runtime, fit_weights
        from kdhub_openmmlab.runner import check_amp
        from kdhub_openmmlab.teacher import model_config

        from .config import dataset_classes
        from .data_checks import check_evaluators, dataset_check, image_size_problem

        check_amp(self.amp)
        student = check_runtime(self.cfg, "mmdet", self.source, model_config(self.cfg.model.student, "model.student")
                                if self.distilling else self.cfg.model)

        if self.distilling:
            ckpt = self.cfg.model.teacher.get("checkpoint")  # here, not at loading: kdhub eval tests the student alone
            if ckpt and not is_url(ckpt) and not Path(ckpt).is_file():
                raise ConfigError(f"{self.source}: model.teacher.checkpoint: teacher checkpoint not found: {ckpt}; set "
                                  f"it to None to train the teacher here from model.teacher.config, or fix the path "
                                  f"(or give its URL)")
            teacher = build_model(self.teacher_model(), "mmdet")
            with torch.random.fork_rng(devices=[]):  # the distiller's taps and adapters on the untrained pair
                build_model(self.cfg.model.distiller, "mmdet").setup(student, teacher)
            given = self.teacher_checkpoint()
            if given is not None:
                fit_weights(teacher, given, "model.teacher.checkpoint", self.source, classes=dataset_classes(self.cfg))
            else:
                t_cfg = self.teacher_config()
                check_datasets(t_cfg, "mmdet", self.cfg.model.teacher.config,
                               check_dataset=dataset_check(t_cfg.model), check_item=image_size_problem)
        check_evaluators(self.cfg, self.source)
        check_datasets(self.cfg, "mmdet", self.source, check_item=image_size_problem,
                       check_dataset=dataset_check(model_config(self.cfg.model.student, "model.student")
                                                   if self.distilling else self.cfg.model,
                                                   "model.student" if self.distilling else "model"))

    def teacher_model(self):
        """The teacher detector's model config: from ``model.teacher.config`` (with the keys given next to it
        merged over it), or given inline."""
        from kdhub_openmmlab.teacher import model_config
        teacher = self.cfg.model.teacher
        return self.teacher_config().model if teacher.get("config") else model_config(teacher, "model.teacher")

    def teacher_checkpoint(self) -> Optional[Path]:
        from kdhub_openmmlab.teacher import local_checkpoint
        ckpt = self.cfg.model.teacher.get("checkpoint")
        return local_checkpoint(ckpt) if ckpt else None

    def use_teacher(self, checkpoint: Path) -> None:
        self.cfg.model.teacher.checkpoint = str(checkpoint)

    def teacher_config(self):
        """The teacher's own detector config (``model.teacher.config``), as ``kdhub train`` would load it."""
        from kdhub_openmmlab.teacher import training_config

        from .config import load
        return training_config(self.cfg, self.source, load)

    def train(self, role: str, work_dir: Path) -> Dict[str, Any]:
        from .config import student_config
        if role == "teacher":
            return self.train_one(self.teacher_config(), work_dir, role)
        return self.train_one(student_config(self.cfg) if role == "baseline" else self.cfg, work_dir, role)

    def test_teacher(self, checkpoint: Path) -> Dict[str, float]:
        """The given teacher's test AP on this config's test split."""
        from mmengine.config import ConfigDict

        from .config import student_config
        cfg = student_config(self.cfg)
        cfg.model = ConfigDict(self.teacher_model())
        return test_checkpoint(cfg, checkpoint, self.launcher)

    def inference(self, role: str, result: Mapping[str, Any]):
        """One forward of the exported ``role`` detector on a 128 px image (CPU)."""
        from mmdet.apis import init_detector
        export = Path(result["export"])
        det = init_detector(str(export.with_name("student_config.py")), str(export), device="cpu").eval()
        image = torch.zeros(1, 3, 128, 128)

        def run():
            with torch.no_grad():
                return det._forward(image)
        return run

    # the whole run ------------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        from .datasets import SKIPPED
        dist.init_distributed(self.launcher)
        ctx = RunContext(RunInfo(task="detection", method=self.method, work_dir=self.work_dir,
                                 config_path=self.loaded.path, rank=dist.rank(), world_size=dist.world_size()))
        pipeline = Pipeline(ctx, self.resume)
        skipped = lambda: dict(skipped_annotations={k: len(v) for k, v in SKIPPED.items()},
                               skipped_examples={k: v[:5] for k, v in SKIPPED.items()})
        if not self.distilling:
            return pipeline.single(lambda d: self.train_one(self.cfg, d, "model"), self.started,
                                   extra=lambda: dict(student_config=self.work_dir / "student_config.py", **skipped()))
        ctx.start()
        results = self.results = pipeline.run(self)
        return pipeline.finish(results, params={"teacher": results["student"]["teacher_params"]},
                               student_config=self.work_dir / "student" / "student_config.py",
                               distiller=self.cfg.model.distiller.to_dict(), **skipped())


def test_checkpoint(cfg, checkpoint: Path, launcher: str = "none", key: str = "checkpoint",
                    source: str = "") -> Dict[str, float]:
    """Test AP of the detector config ``cfg`` with the weights of ``checkpoint`` (a plain detector checkpoint,
    or the student part of a distillation checkpoint), loaded strictly: a checkpoint of another model is refused
    naming its first missing, unexpected and mis-shaped keys (mmengine's ``load_from`` loads non-strictly and would
    test whatever part fits)."""
    from mmengine.runner import Runner

    from kdhub_openmmlab.checks import fit_weights
    from kdhub_openmmlab.runner import eval_config
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner.from_cfg(eval_config(cfg, Path(tmp), default_scope="mmdet", launcher=launcher))
        fit_weights(unwrap(runner.model), Path(checkpoint), key, source, load=True)
        return ap_metrics(runner.test())


class DetectionTask(Task):
    """mmdet detectors and their distillation (GID, DETRDistill) through mmengine's Runner."""

    run_class = DetectionRun

    def evaluate(self, loaded: LoadedConfig, checkpoint: Path) -> Dict[str, float]:
        """Test AP of a student checkpoint (exported ``student.pth`` or a training checkpoint)."""
        from . import register  # noqa: F401  (kdhub's mmdet modules)
        from .config import student_config
        return test_checkpoint(student_config(loaded.cfg), Path(checkpoint), source=str(loaded.path))

    def demo(self, work_dir: Path) -> DemoResult:
        """GID on the embedded shapes set: one run of ``demo_gid_retinanet_synth.py`` through the same code path
        as ``kdhub train``, whose pipeline trains the RetinaNet teacher, the baseline student and the GID
        student (same schedule and seed), on a shorter schedule than the benchmark so that it finishes in
        minutes on two CPU cores. Finished sub-runs of an earlier demo are reused."""
        from .config import loaded as load
        cfg = load(DEMO_CONFIG, [])
        run = DetectionRun(cfg, Path(work_dir), resume=True)
        run.check()
        summary = run.run()
        rows = demo_rows(summary, "AP", run, run.results,
                         roles=(("teacher", "teacher"), ("baseline", "baseline"), ("student", "GID student")))
        gain = summary["student"]["AP"] - summary["baseline"]["AP"]
        epochs = cfg.cfg.train_cfg.max_epochs
        notes = [f"synthetic shapes (5 classes, 128 px, 600 train / 200 test images), {epochs} epochs each, seed 0",
                 f"GID gain over the baseline: {gain:+.2f} AP (COCO AP on the test split)",
                 "DETRDistill (Deformable DETR) and the ablation: python benchmarks/detection_distill.py"]
        return DemoResult(domain="detection", title="Detection: RetinaNet R18/w32 -> R18/w16 with GID",
                          metric_name="AP", rows=rows, notes=notes)
