"""The distillation model for mmengine's Runner: a frozen teacher detector, the student and a distiller.

``KDDistillDetector`` is an mmengine ``BaseModel`` registered in mmdet's MODELS, so training, validation,
logging, hooks, AMP and DDP are mmengine's own. The distiller (GID, DETRDistill) owns the losses and their
adapters and computes the student's ground-truth loss together with the distillation terms (both need the
same forward pass). Validation and test run the student (``predict_with='teacher'`` evaluates the teacher).
The teacher is loaded from its own file at construction and owned the core way
(:class:`kdhub.algorithm.TeacherOwner`): frozen and outside the module tree, so checkpoints, the optimiser and DDP
hold the student and the distiller's adapters, never the teacher, while device moves carry it along.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple, Union

import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import load_checkpoint
from mmdet.registry import MODELS

from kdhub.config import ConfigError
from kdhub.algorithm import TeacherOwner
from kdhub_openmmlab.teacher import local_checkpoint, model_config



def _model_cfg(spec: Union[dict, ConfigDict], key: str) -> dict:
    """A detector config from ``dict(config='file.py', **overrides)`` (that file's ``model`` with the overrides
    merged over it) or given inline, as :func:`kdhub_openmmlab.teacher.model_config` reads every mm domain's."""
    return ConfigDict(model_config(spec, f"model.{key}").to_dict())


def class_count(model_cfg: dict) -> Tuple[str, Optional[int]]:
    """(config key, value) of a detector's class count: ``bbox_head.num_classes`` or, for two-stage
    detectors, ``roi_head.bbox_head.num_classes``."""
    if model_cfg.get("bbox_head"):
        return "bbox_head.num_classes", model_cfg["bbox_head"].get("num_classes")
    head = (model_cfg.get("roi_head") or {}).get("bbox_head") or {}
    return "roi_head.bbox_head.num_classes", head.get("num_classes")


@MODELS.register_module()
class KDDistillDetector(TeacherOwner, BaseModel):
    """Teacher + student + distiller. ``teacher=dict(config=..., checkpoint=...)``; ``student``: a detector
    config dict; ``distiller``: ``dict(type='GID' | 'DETRDistill', ...)``."""

    def __init__(self, student: dict, teacher: dict, distiller: dict, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        student = ConfigDict(copy.deepcopy(dict(student)))
        preprocessor = data_preprocessor or student.get("data_preprocessor")
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        t_cfg = _model_cfg(teacher, "teacher")
        (t_key, t_num), (s_key, s_num) = class_count(t_cfg), class_count(student)
        if t_num != s_num:
            raise ConfigError(f"teacher and student have different class sets: teacher {t_key}={t_num}, student "
                              f"{s_key}={s_num}; distillation needs the same classes in the same order")
        self.student = MODELS.build(student)
        self.set_teachers(MODELS.build(t_cfg))
        ckpt = local_checkpoint(teacher["checkpoint"]) if teacher.get("checkpoint") else None
        if not ckpt or not ckpt.is_file():
            raise ConfigError(f"model.teacher.checkpoint: teacher checkpoint not found: {ckpt!r}; train the teacher "
                              f"first (kdhub train <teacher config>) and point teacher.checkpoint at its .pth")
        self.teacher_checkpoint = str(ckpt)
        self._load_teacher()
        self.distiller = MODELS.build(distiller)
        self.distiller.setup(self.student, self.teacher)
        self.predict_with = "student"

    def _load_teacher(self) -> None:
        try:
            ckpt = load_checkpoint(self.teacher, self.teacher_checkpoint, map_location="cpu", strict=True,
                                   logger="silent")
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"model.teacher.checkpoint: {self.teacher_checkpoint} does not fit the teacher "
                              f"config ({first}); check teacher.config is the config it was trained with") from None
        meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
        self.teacher_classes = tuple((meta.get("dataset_meta") or {}).get("classes") or ())

    def init_weights(self) -> None:
        """Initialise the student only; the teacher keeps its trained weights (adapters are initialised
        when built)."""
        self.student.init_weights()

    @property
    def active(self):
        return self.teacher if self.predict_with == "teacher" else self.student

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        if mode == "loss":
            return self.distiller.loss(self.student, self.teacher, inputs, data_samples)
        if mode == "predict":
            return self.active.predict(inputs, data_samples)
        if mode == "tensor":
            return self.active._forward(inputs, data_samples)
        raise RuntimeError(f"invalid mode {mode!r}; valid: loss, predict, tensor")

