"""The segmentation task: mmengine Runner runs for the teacher, the baseline and the distilled student.

A plain mmseg config (``model.type`` a segmentor) trains in ``work_dir`` itself. A distillation config
(``model.type='SegDistiller'``) runs up to three sub-runs of one work dir:

* ``teacher/`` when ``model.teacher.checkpoint`` is None: the teacher trained from its own config
  (``model.teacher.config``);
* ``baseline/`` when ``baseline = True``: the student alone, with the distillation config's data,
  schedule and seed (the same initial weights, see :class:`~kdhub_segmentation.model.SegDistiller`);
* ``student/``: the distillation run.

Each holds mmengine's logs and checkpoints, ``result.json`` (test metrics) and a plain mmseg export
(``model_mmseg.pth``, or ``student_mmseg.pth`` with ``student_config.py`` for a distillation run) that
``mmseg.apis.init_model`` loads. ``--resume`` reuses finished sub-runs and continues an unfinished one
from its last checkpoint (mmengine's resume). ``summary.json`` compares the three on the test split.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from kdhub import dist
from kdhub.config import ConfigError, LoadedConfig
from kdhub.algorithm import count_parameters
from kdhub.pipeline import Pipeline, Stages, demo_rows
from kdhub.runs import RunContext, RunInfo
from kdhub.task import DemoResult, Task

from .config import is_distillation, method_name

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEMO_CONFIG = CONFIG_DIR / "transkd_mit-t_to_mit-n_synth.py"
RESULT_FILE = "result.json"


def student_config(cfg):
    """The plain mmseg config of a distillation config's student: same data, schedule and hooks."""
    from .model import model_config

    out = copy.deepcopy(cfg)
    student = model_config(cfg.model.student, "model.student")
    if "data_preprocessor" not in student and cfg.model.get("data_preprocessor"):
        student.data_preprocessor = copy.deepcopy(cfg.model.data_preprocessor)
    out.model = student
    out.pop("baseline", None)
    return out


def teacher_config(cfg, source: str):
    """The teacher's own training config (``model.teacher.config``) as segmentation loads a config."""
    from kdhub_openmmlab.teacher import training_config

    from .config import load
    return training_config(cfg, source, load)


def check_pairing(cfg):
    """Build the student, the teacher (untrained) and the distiller once, so that stage counts, strides,
    widths or term paths the distiller cannot bridge are reported before any training starts; returns the
    teacher, for checking a given checkpoint against it."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from .model import model_config

    init_default_scope(cfg.get("default_scope", "mmseg"))
    with torch.random.fork_rng(devices=[]):
        student = MODELS.build(model_config(cfg.model.student, "model.student"))
        teacher = MODELS.build(model_config(cfg.model.teacher, "model.teacher"))
        MODELS.build(cfg.model.distiller, default_args=dict(student=student, teacher=teacher)).close()
    return teacher


def _embedded_specs(cfg):
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        ds = (cfg.get(key) or {}).get("dataset") or {}
        if ds.get("type") == "SynthSegDataset" and ds.get("data_root") is None:
            yield ds.get("synth") or {}


def prepare_embedded(cfg) -> None:
    """Generate the embedded data set(s) a config uses on rank 0, before any rank builds its loaders."""
    from .synth import SynthSegSpec, ensure_embedded

    if dist.is_main():
        for spec in _embedded_specs(cfg):
            try:
                ensure_embedded(SynthSegSpec(**spec))
            except TypeError as exc:
                raise ConfigError(f"dataset synth: {exc}") from None
    dist.barrier()


class SegRun(Stages):
    """One ``kdhub train`` of a segmentation config: the core pipeline's stages as mmengine Runner runs."""

    def __init__(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        self.loaded, self.cfg, self.source = loaded, loaded.cfg, str(loaded.path)
        self.work_dir, self.resume, self.launcher = Path(work_dir), resume, launcher
        dist.init_distributed(launcher)  # gloo without CUDA; mmengine then uses the existing group

    def train_one(self, cfg, work_dir: Path, role: str) -> Dict[str, Any]:
        """Train (or resume) one model in ``work_dir``; test it and export it on rank 0."""
        from mmengine.runner import Runner

        from .export import export_model

        distilling = is_distillation(cfg)
        method = method_name(cfg)
        from kdhub_openmmlab.runner import runner_config
        runner = Runner.from_cfg(runner_config(
            cfg, work_dir, task="segmentation", method=method, config_path=self.source, resume=self.resume,
            launcher=self.launcher, role=role, amp=self.amp,
            extra_hooks=[dict(type="TeacherEvalHook")] if distilling else []))
        runner.train()
        metrics = {k: float(v) for k, v in runner.test().items()}
        model = getattr(runner.model, "module", runner.model)
        segmentor = model.student if distilling else model
        export = work_dir / ("student_mmseg.pth" if distilling else "model_mmseg.pth")
        hub = runner.message_hub.log_scalars
        val = {k[len("val/"):]: float(v.current()) for k, v in hub.items() if k.startswith("val/")
               and k[len("val/"):] in metrics}
        result = {"role": role, "method": method, "test": metrics, "val": val, "export": str(export),
                  "params": count_parameters(segmentor), "iters": runner.iter}
        if distilling:
            result["teacher_params"] = count_parameters(model.teacher)
            result["teacher_val"] = runner.message_hub.get_info("teacher_metrics")
            model.distiller.close()
        if dist.is_main():
            meta = runner.train_dataloader.dataset.metainfo
            export_model(segmentor, export, {"classes": meta["classes"], "palette": meta["palette"]},
                         role=role, method=method, iters=runner.iter)
            if distilling:
                student_config(cfg).dump(str(work_dir / "student_config.py"))
        dist.barrier()
        return result

    # the pipeline's stages ----------------------------------------------------------------------------
    def check(self) -> None:
        """Before anything is written. For distillation: the pairing (student, teacher and distiller built once),
        then a given teacher checkpoint fitted strictly to the teacher, or else the data of the teacher's own
        config. Then every split's data set and images (the embedded set generated first). First what the Runner
        builds by name only when training starts (the model, the optimizer, the schedulers' and hooks' types,
        load_from)."""
        from kdhub_openmmlab.checks import check_runtime, dataset_classes, fit_weights
        from kdhub_openmmlab.runner import check_amp
        from kdhub_openmmlab.teacher import model_config

        check_amp(self.amp)

        try:
            distilling = is_distillation(self.cfg)
            check_runtime(self.cfg, "mmseg", self.source,
                          model_config(self.cfg.model.student, "model.student") if distilling else self.cfg.model)
            if distilling:
                self.cfg = copy.deepcopy(self.cfg)
                teacher = check_pairing(self.cfg)
                classes = dataset_classes(self.cfg, "mmseg")
                given = self.teacher_checkpoint()
                if given is not None:
                    fit_weights(teacher, given, "model.teacher.checkpoint", self.source, classes=classes)
                else:
                    tcfg = teacher_config(self.cfg, self.source)
                    if dataset_classes(tcfg, "mmseg") != classes:
                        raise ConfigError(f"the teacher config {self.cfg.model.teacher.config} trains on the classes "
                                          f"{dataset_classes(tcfg, 'mmseg')}, this config on {classes}; distillation "
                                          f"needs the same classes in the same order")
                    self._check_data(tcfg, self.cfg.model.teacher.config, tcfg.model)
            self._check_data(self.cfg, self.source, model_config(self.cfg.model.student, "model.student")
                             if distilling else self.cfg.model)
        except ConfigError as exc:
            raise self._named(exc) from None

    @staticmethod
    def _check_data(cfg, source: str, model_cfg) -> None:
        """Each split's data set and images, its class count against the segmentor ``model_cfg``'s heads, and every
        mask (:func:`~kdhub_segmentation.datasets.mask_problem`); a data set builds its embedded set itself when
        first checked, so a bad training set is reported before the other splits are generated (under a launcher,
        rank 0 generates them all first, as for training)."""
        from kdhub_openmmlab.checks import check_datasets

        from .datasets import mask_problem

        heads = [("decode_head", model_cfg.get("decode_head"))]
        aux = model_cfg.get("auxiliary_head")
        heads += [(f"auxiliary_head[{i}]", h) for i, h in enumerate(aux if isinstance(aux, (list, tuple)) else [aux])]

        def check_dataset(key: str, dataset) -> None:
            """Fewer outputs than classes: the last classes' labels are out of the loss's range. More are allowed
            (the TransKD authors' Cityscapes head has a 20th, 'void' class of weight 0)."""
            classes = len(dataset.metainfo.get("classes") or ())
            for name, head in heads:
                if head and head.get("num_classes") is not None and head["num_classes"] < classes:
                    raise ConfigError(f"model {name}.num_classes is {head['num_classes']}, but the data set has "
                                      f"{classes} classes; set it to {classes}")

        def check_item(dataset, info, size):
            mask = info.get("seg_map_path")
            return mask_problem(dataset, mask, size) if mask and os.path.isfile(mask) else None

        if dist.is_distributed():
            prepare_embedded(cfg)
        check_datasets(cfg, "mmseg", source, check_dataset=check_dataset, check_item=check_item)

    def _named(self, exc: ConfigError) -> ConfigError:
        """``exc`` with the config file in front, if it does not name a file yet."""
        text = str(exc)
        return type(exc)(text if text.startswith(self.source) else f"{self.source}: {text}")

    def teacher_checkpoint(self) -> Optional[Path]:
        from kdhub_openmmlab.teacher import local_checkpoint, teacher_checkpoint
        given = teacher_checkpoint(self.cfg.model)
        if given is None:
            return None
        ckpt = local_checkpoint(given)
        if not ckpt.is_file():
            raise ConfigError(f"key 'model.teacher.checkpoint': file not found: {ckpt}; train the teacher with "
                              f"`kdhub train TEACHER_CONFIG` (it writes model_mmseg.pth), or set "
                              f"model.teacher.checkpoint=None to train it here from model.teacher.config")
        return Path(ckpt)

    def use_teacher(self, checkpoint: Path) -> None:
        self.cfg.model.teacher.checkpoint = str(checkpoint)

    def train(self, role: str, work_dir: Path) -> Dict[str, Any]:
        if role == "teacher":
            tcfg = teacher_config(self.cfg, self.source)
            prepare_embedded(tcfg)
            return self.train_one(tcfg, work_dir, role)
        return self.train_one(student_config(self.cfg) if role == "baseline" else self.cfg, work_dir, role)

    def test_teacher(self, checkpoint: Path) -> Dict[str, float]:
        from .model import model_config

        tcfg = copy.deepcopy(student_config(self.cfg))
        tcfg.model = model_config(self.cfg.model.teacher, "model.teacher")
        return test_checkpoint(tcfg, checkpoint, "model.teacher.checkpoint", self.launcher)

    def inference(self, role: str, result: Mapping[str, Any]):
        """One forward of the exported ``role`` segmentor on a crop-sized image."""
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS

        from .model import load_segmentor_weights, model_config

        init_default_scope("mmseg")
        spec = self.cfg.model.teacher if role == "teacher" else self.cfg.model.student
        model = MODELS.build(model_config(spec, f"model.{role}"))
        load_segmentor_weights(model, Path(result["export"]), role)
        model.eval()
        x = torch.zeros(1, 3, *tuple(self.cfg.crop_size))

        def run():
            with torch.no_grad():
                return model._forward(x)
        return run

    # the whole run ------------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        try:
            return self._run()
        except ConfigError as exc:
            raise self._named(exc) from None

    def _run(self) -> Dict[str, Any]:
        prepare_embedded(self.cfg)
        distilling = is_distillation(self.cfg)
        ctx = RunContext(RunInfo(task="segmentation", method=method_name(self.cfg), work_dir=self.work_dir,
                                 config_path=self.loaded.path, rank=dist.rank(), world_size=dist.world_size()))
        pipeline = Pipeline(ctx, self.resume)
        if not distilling:
            return pipeline.single(lambda d: self.train_one(self.cfg, d, "model"), self.started, keep=("val", "iters"))
        ctx.start()
        self.baseline = bool(self.cfg.get("baseline", False))
        results = self.results = pipeline.run(self)
        student = results["student"]
        return pipeline.finish(results, params={"teacher": student["teacher_params"]},
                               student_config=self.work_dir / "student" / "student_config.py",
                               teacher_val=student.get("teacher_val"), iters=student["iters"])


def test_checkpoint(cfg, checkpoint: Path, key: str, launcher: str = "none") -> Dict[str, float]:
    """Test metrics of a plain segmentor config with weights from ``checkpoint`` (strictly loaded)."""
    from mmengine.runner import Runner

    from .model import load_segmentor_weights

    from kdhub_openmmlab.runner import eval_config

    tmp = Path(tempfile.mkdtemp(prefix="kdhub-seg-eval-"))
    try:
        cfg = eval_config(cfg, tmp, launcher=launcher)
        runner = Runner.from_cfg(cfg)
        load_segmentor_weights(getattr(runner.model, "module", runner.model), checkpoint, key)
        return {k: float(v) for k, v in runner.test().items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SegmentationTask(Task):
    """Semantic segmentation on MMSegmentation: mmseg configs trained by mmengine's Runner, TransKD and more."""

    run_class = SegRun

    def evaluate(self, loaded: LoadedConfig, checkpoint: Path) -> Dict[str, float]:
        cfg = loaded.cfg
        if is_distillation(cfg):
            cfg = student_config(cfg)
        prepare_embedded(cfg)
        try:
            return test_checkpoint(cfg, Path(checkpoint), "checkpoint")
        except ConfigError as exc:
            raise ConfigError(f"{loaded.path}: {exc}") from None

    def demo(self, work_dir: Path) -> DemoResult:
        from .plugin import kdhub_load_config

        loaded = kdhub_load_config(DEMO_CONFIG, [])
        run = SegRun(loaded, work_dir, resume=True)
        run.check()
        summary = run.run()
        rows = demo_rows(summary, "mIoU", run, run.results)
        s = summary
        notes = [f"synthetic textured scenes, {loaded.cfg.crop_size[0]} px, 10 classes; mIoU on the test split",
                 f"TransKD-{loaded.cfg.model.distiller.get('variant', 'base')}: "
                 f"{s['student']['mIoU'] - s['baseline']['mIoU']:+.2f} mIoU over the baseline student"]
        return DemoResult(domain="segmentation", title="Semantic segmentation (SegFormer MiT-T -> MiT-N, TransKD)",
                          metric_name="mIoU (%)", rows=rows, notes=notes)
