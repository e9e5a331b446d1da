"""Loading detection configs: mmengine ``.py`` files with ``task = 'detection'``, ``--cfg-options`` parsed
by mmengine's ``DictAction`` (dotted keys), and checks that turn the usual mistakes into errors naming the key.

A distillation config wraps the student's detector config::

    _base_ = ['./retinanet_r18_synth.py']            # the student: model, data, schedule, evaluator
    task = 'detection'
    model = dict(_delete_=True, type='KDDistillDetector', student=_base_.model,
                 teacher=dict(config='retinanet_r50_synth.py', checkpoint='work_dirs/teacher/student.pth'),
                 distiller=dict(type='GID'))

The teacher keys are those of every mm plugin (:mod:`kdhub_openmmlab.teacher`): paths in ``model.teacher``
are resolved against the working directory, then the config's folder; ``config`` may also be ``mmdet::...``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from mmengine.config import Config, ConfigDict

from kdhub.config import ConfigError, LoadedConfig
from kdhub_openmmlab.options import merge_cfg_options
from kdhub_openmmlab.teacher import model_config, resolve_specs

DISTILL_TYPE = "KDDistillDetector"
METHODS = {"GID": "gid", "DETRDistill": "detrdistill"}


def load(path: Path, overrides: Sequence[str]) -> Config:
    source = str(path)
    try:
        cfg = Config.fromfile(source)
    except Exception as exc:  # syntax errors, missing _base_ files: mmengine's message is already specific
        raise ConfigError(f"{source}: cannot load the config: {type(exc).__name__}: {exc}") from None
    merge_cfg_options(cfg, overrides, source, scope="mmdet", extra_keys=("baseline",))
    for key in ("model", "train_dataloader", "train_cfg", "optim_wrapper"):
        if key not in cfg:
            raise ConfigError(f"{source}: missing '{key}': a detection config needs model, train_dataloader, "
                              f"train_cfg and optim_wrapper (see plugins/detection/configs)")
    if cfg.model.get("type") == DISTILL_TYPE:
        check_distillation(cfg, source)
    return cfg


def loaded(path: Path, overrides: Sequence[str]) -> LoadedConfig:
    """The config as kdhub's launcher receives it."""
    cfg = load(path, overrides)
    return LoadedConfig(task="detection", cfg=cfg, path=path, method=method_of(cfg), overrides=list(overrides),
                        work_dir=cfg.get("work_dir"))


def method_of(cfg: Config) -> str:
    if cfg.model.get("type") != DISTILL_TYPE:
        return "supervised"
    kind = cfg.model.get("distiller", {}).get("type", "")
    return METHODS.get(kind, kind.lower())


def _detector_class(model_cfg: dict, key: str, source: str):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    name = model_cfg.get("type")
    cls = MODELS.get(name) if isinstance(name, str) else name
    if cls is None:
        raise ConfigError(f"{source}: {key}.type: unknown detector {name!r} in mmdet's MODELS registry")
    return cls


def check_distillation(cfg: Config, source: str) -> None:
    """Pre-flight checks of a distillation config, before anything is built or written."""
    from mmdet.models.detectors import DetectionTransformer, SingleStageDetector, TwoStageDetector

    from .algorithm import class_count
    model = cfg.model
    for key in ("student", "teacher", "distiller"):
        if not model.get(key):
            raise ConfigError(f"{source}: model.{key} is missing; a {DISTILL_TYPE} needs student, teacher and "
                              f"distiller")
    teacher = model.teacher
    resolve_specs(model, ("teacher",), source)
    try:
        t_model = model_config(teacher, "model.teacher")  # from its config file, or given inline
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if teacher.get("config"):
        t_cfg = Config.fromfile(teacher.config)
        if "train_dataloader" in t_cfg and "train_dataloader" in cfg:
            t_classes, s_classes = dataset_classes(t_cfg), dataset_classes(cfg)
            if t_classes and s_classes and list(t_classes) != list(s_classes):
                raise ConfigError(f"{source}: teacher and student have different class sets: the teacher config "
                                  f"{teacher.config} trains on {list(t_classes)}, this config on {list(s_classes)}; "
                                  f"distillation needs the same classes in the same order")
    ckpt = teacher.get("checkpoint")
    if not ckpt and not teacher.get("config"):
        raise ConfigError(f"{source}: model.teacher.checkpoint is empty and model.teacher has no config to train the "
                          f"teacher from; give model.teacher.config (the teacher is then trained first, in "
                          f"WORK_DIR/teacher) or a trained model.teacher.checkpoint")
    (s_key, s_num), (t_key, t_num) = class_count(model.student), class_count(t_model)
    if s_num != t_num:
        raise ConfigError(f"{source}: teacher and student have different class sets: student {s_key}={s_num}, "
                          f"teacher (model.teacher) {t_key}={t_num}; distillation needs the same classes in the "
                          f"same order")
    kind = model.distiller.get("type")
    from kdhub_openmmlab.methods import register_distiller
    from mmdet.registry import MODELS
    # the method by name among the detection methods plugins registered (third-party ones included), or one
    # mmdet's MODELS registry already knows (custom_imports), as in segmentation
    register_distiller("detection", MODELS, kind, source)
    for key, det in (("model.student", model.student), ("model.teacher", t_model)):
        cls = _detector_class(det, key, source)
        if kind == "GID" and (issubclass(cls, DetectionTransformer) or
                              not issubclass(cls, (SingleStageDetector, TwoStageDetector))):
            raise ConfigError(f"{source}: GID supports dense single-stage detectors (RetinaNet, FCOS) and two-stage "
                              f"detectors with an RPN (Faster R-CNN); {key} is {det.get('type')}. For DETR-family "
                              f"detectors use model.distiller.type='DETRDistill'")
        if kind == "DETRDistill" and not issubclass(cls, DetectionTransformer):
            raise ConfigError(f"{source}: DETRDistill supports DETR-family detectors (DeformableDETR, "
                              f"ConditionalDETR, DINO); {key} is {det.get('type')}. For RetinaNet, FCOS or Faster "
                              f"R-CNN use model.distiller.type='GID'")


def student_config(cfg: Config) -> Config:
    """The student's own detector config (for ``init_detector`` and evaluation of exported checkpoints)."""
    out = Config(cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg))
    if out.model.get("type") == DISTILL_TYPE:
        out.model = ConfigDict(out.model.student)
    for key in ("resume", "load_from", "work_dir", "launcher"):  # 'task' stays: kdhub eval routes on it
        out.pop(key, None)
    return out


def dataset_classes(cfg: Config) -> List[str]:
    """Class names of the config's training set (metainfo, or the data set class's METAINFO)."""
    from mmdet.utils import register_all_modules

    from kdhub_openmmlab.checks import dataset_classes as classes_of
    register_all_modules(init_default_scope=False)
    from . import datasets  # noqa: F401  (kdhub's data set types)
    return classes_of(cfg, "mmdet")