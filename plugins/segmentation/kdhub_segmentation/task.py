"""The segmentation task: mmengine Runner runs for the teacher, the baseline and the distilled student.

A plain mmseg config (``model.type`` a segmentor) trains in ``work_dir`` itself. A distillation config
(``model.type='SegDistiller'``) runs up to three sub-runs of one work dir:

* ``teacher/`` when ``model.teacher_checkpoint`` is None: the teacher trained from its own config
  (``model.teacher.cfg_path``);
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
import itertools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from kdhub import dist
from kdhub.checkpoint import atomic_write_text
from kdhub.config import ConfigError, LoadedConfig
from kdhub.distiller import count_parameters
from kdhub.runs import RunContext, RunInfo
from kdhub.task import DemoResult, ModelResult, Task
from kdhub.timing import median_seconds

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
    """The teacher's own training config (``model.teacher.cfg_path``), with kdhub's keys loaded."""
    from .config import load

    path = cfg.model.teacher.get("cfg_path")
    if not path:
        raise ConfigError(f"{source}: model.teacher_checkpoint is None, so the teacher is trained here from its own "
                          f"config, but model.teacher has no cfg_path; give model.teacher=dict(cfg_path='...py') or "
                          f"a trained model.teacher_checkpoint")
    return load(Path(path), [])


def check_pairing(cfg) -> None:
    """Build the student, the teacher (untrained) and the distiller once, so that stage counts, strides,
    widths or term paths the distiller cannot bridge are reported before any training starts."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from .model import model_config

    init_default_scope(cfg.get("default_scope", "mmseg"))
    with torch.random.fork_rng(devices=[]):
        student = MODELS.build(model_config(cfg.model.student, "model.student"))
        teacher = MODELS.build(model_config(cfg.model.teacher, "model.teacher"))
        MODELS.build(cfg.model.distiller, default_args=dict(student=student, teacher=teacher)).close()


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


_RUNS = itertools.count()


def _experiment(role: str) -> str:
    """A run name unique in this process and the same on every rank: mmengine keys its loggers and
    visualizers by experiment name (and appends a time stamp to it)."""
    return f"{role}_{next(_RUNS)}"


class SegRun:
    """One ``kdhub train`` of a segmentation config."""

    def __init__(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        self.loaded, self.cfg, self.source = loaded, loaded.cfg, str(loaded.path)
        self.work_dir, self.resume, self.launcher = Path(work_dir), resume, launcher
        dist.init_distributed(launcher)  # gloo without CUDA; mmengine then uses the existing group

    # one mmengine run ---------------------------------------------------------------------------------
    def runner_config(self, cfg, work_dir: Path, role: str, method: str):
        cfg = copy.deepcopy(cfg)
        cfg.work_dir = str(work_dir)
        cfg.launcher = self.launcher
        cfg.resume = bool(self.resume and (work_dir / "last_checkpoint").is_file())
        if cfg.resume:
            cfg.load_from = None
        cfg.experiment_name = _experiment(role)
        hooks = list(cfg.get("custom_hooks") or [])
        hooks.append(dict(type="KDHubLifecycleHook", task="segmentation", method=method, role=role,
                          config_path=self.source))
        if is_distillation(cfg):
            hooks.append(dict(type="TeacherEvalHook"))
        cfg.custom_hooks = hooks
        ckpt_hook = cfg.get("default_hooks", {}).get("checkpoint")
        if ckpt_hook is not None and not ckpt_hook.get("backend_args"):
            ckpt_hook.backend_args = dict(backend="kdhub_atomic")
        if not torch.cuda.is_available():
            cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
            if self.launcher != "none" and "model_wrapper_cfg" not in cfg:
                # mmengine passes device_ids=[LOCAL_RANK], which DDP rejects for a CPU model
                cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None,
                                             broadcast_buffers=False,
                                             find_unused_parameters=cfg.get("find_unused_parameters", False))
        return cfg

    def train_one(self, cfg, work_dir: Path, role: str) -> Dict[str, Any]:
        """Train (or resume, or reuse) one model in ``work_dir``; test it and export it on rank 0."""
        from mmengine.runner import Runner

        from .export import export_model

        done = work_dir / RESULT_FILE
        if done.is_file() and self.resume:
            return json.loads(done.read_text())
        if not self.resume and (work_dir / "last_checkpoint").is_file():
            raise ConfigError(f"{work_dir} already holds a run; pass --resume to continue it or choose another "
                              f"--work-dir")
        distilling = is_distillation(cfg)
        method = method_name(cfg)
        runner = Runner.from_cfg(self.runner_config(cfg, work_dir, role, method))
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
            atomic_write_text(done, json.dumps(result, indent=2) + "\n")
        dist.barrier()
        return result

    # the whole run ------------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        try:
            return self._run()
        except ConfigError as exc:
            text = str(exc)
            raise type(exc)(text if text.startswith(self.source) else f"{self.source}: {text}") from None

    def _run(self) -> Dict[str, Any]:
        cfg = self.cfg
        prepare_embedded(cfg)
        if not is_distillation(cfg):
            result = self.train_one(cfg, self.work_dir, "model")
            ctx = RunContext(RunInfo(task="segmentation", method="supervised", work_dir=self.work_dir,
                                     config_path=self.loaded.path, rank=dist.rank(), world_size=dist.world_size()))
            summary = {"task": "segmentation", "method": "supervised", "model": result["test"], "val": result["val"],
                       "params": result["params"], "checkpoint": result["export"], "iters": result["iters"]}
            if dist.is_main():
                atomic_write_text(self.work_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
            return ctx.end(summary)
        ctx = RunContext(RunInfo(task="segmentation", method=method_name(cfg), work_dir=self.work_dir,
                                 config_path=self.loaded.path, rank=dist.rank(), world_size=dist.world_size()))
        ctx.start()
        cfg = copy.deepcopy(cfg)
        check_pairing(cfg)  # before anything trains: a pair the distiller cannot bridge fails now
        teacher_result: Optional[Dict[str, Any]] = None
        if cfg.model.get("teacher_checkpoint") is None:
            tcfg = teacher_config(cfg, self.source)
            prepare_embedded(tcfg)
            teacher_result = self.train_one(tcfg, self.work_dir / "teacher", "teacher")
            cfg.model.teacher_checkpoint = teacher_result["export"]
        elif not Path(cfg.model.teacher_checkpoint).is_file():
            raise ConfigError(f"key 'model.teacher_checkpoint': file not found: {cfg.model.teacher_checkpoint}; "
                              f"train the teacher with `kdhub train TEACHER_CONFIG` (it writes model_mmseg.pth), or "
                              f"set model.teacher_checkpoint=None to train it here from model.teacher.cfg_path")
        baseline = None
        if cfg.get("baseline", False):
            baseline = self.train_one(student_config(cfg), self.work_dir / "baseline", "baseline")
        student = self.train_one(cfg, self.work_dir / "student", "student")
        teacher_metrics = teacher_result["test"] if teacher_result else self.evaluate_teacher(cfg)
        return ctx.finish(teacher=teacher_metrics, student=student["test"],
                          baseline=baseline["test"] if baseline else None,
                          params={"teacher": student["teacher_params"], "student": student["params"]},
                          student_checkpoint=Path(student["export"]),
                          student_config=self.work_dir / "student" / "student_config.py",
                          teacher_val=student.get("teacher_val"), iters=student["iters"])

    def evaluate_teacher(self, cfg) -> Dict[str, float]:
        """Test metrics of an external teacher checkpoint (cached in ``teacher_test.json``)."""
        path = self.work_dir / "teacher_test.json"
        if path.is_file() and self.resume:
            return json.loads(path.read_text())
        tcfg = copy.deepcopy(student_config(cfg))
        from .model import model_config
        tcfg.model = model_config(cfg.model.teacher, "model.teacher")
        metrics = test_checkpoint(tcfg, Path(cfg.model.teacher_checkpoint), "model.teacher_checkpoint",
                                  self.launcher)
        if dist.is_main():
            atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")
        return metrics


def test_checkpoint(cfg, checkpoint: Path, key: str, launcher: str = "none") -> Dict[str, float]:
    """Test metrics of a plain segmentor config with weights from ``checkpoint`` (strictly loaded)."""
    from mmengine.runner import Runner

    from .model import load_segmentor_weights

    cfg = copy.deepcopy(cfg)
    tmp = Path(tempfile.mkdtemp(prefix="kdhub-seg-eval-"))
    try:
        cfg.work_dir = str(tmp)
        cfg.launcher = launcher
        cfg.load_from = None
        cfg.resume = False
        cfg.experiment_name = _experiment("eval")
        cfg.default_hooks = {k: v for k, v in (cfg.get("default_hooks") or {}).items() if k != "checkpoint"}
        if not torch.cuda.is_available():
            cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
            cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False)
        runner = Runner.from_cfg(cfg)
        load_segmentor_weights(getattr(runner.model, "module", runner.model), checkpoint, key)
        return {k: float(v) for k, v in runner.test().items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SegmentationTask(Task):
    """Semantic segmentation on MMSegmentation: mmseg configs trained by mmengine's Runner, TransKD and more."""

    name = "segmentation"
    domain = "segmentation"
    package = "kdhub-segmentation"

    def train(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        return SegRun(loaded, work_dir, resume, launcher).run()

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
        summary = SegRun(loaded, work_dir, resume=True).run()
        rows = []
        for role, label in (("teacher", "teacher"), ("baseline", "baseline"), ("student", "distilled")):
            rows.append(ModelResult(label, summary[role]["mIoU"], 0, None))
        rows = _with_latency(rows, work_dir, loaded.cfg)
        s = summary
        notes = [f"synthetic textured scenes, {loaded.cfg.crop_size[0]} px, 10 classes; mIoU on the test split",
                 f"TransKD-{loaded.cfg.model.distiller.get('variant', 'base')}: "
                 f"{s['student']['mIoU'] - s['baseline']['mIoU']:+.2f} mIoU over the baseline student"]
        return DemoResult(domain="segmentation", title="Semantic segmentation (SegFormer MiT-T -> MiT-N, TransKD)",
                          metric_name="mIoU (%)", rows=rows, notes=notes)


def _with_latency(rows, work_dir: Path, cfg):
    """Parameters and single-image CPU latency of each exported model."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from .model import load_segmentor_weights, model_config

    init_default_scope("mmseg")
    size = tuple(cfg.crop_size)
    x = torch.zeros(1, 3, *size)
    specs = {"teacher": (model_config(cfg.model.teacher, "model.teacher"), work_dir / "teacher" / "model_mmseg.pth"),
             "baseline": (model_config(cfg.model.student, "model.student"), work_dir / "baseline" / "model_mmseg.pth"),
             "distilled": (model_config(cfg.model.student, "model.student"), work_dir / "student" / "student_mmseg.pth")}
    out = []
    for row in rows:
        mcfg, ckpt = specs[row.role]
        model = MODELS.build(mcfg)
        load_segmentor_weights(model, ckpt, row.role)
        model.eval()
        with torch.no_grad():
            ms = median_seconds(lambda: model._forward(x), repeats=10) * 1000
        out.append(ModelResult(row.role, row.metric, count_parameters(model), ms))
    return out
