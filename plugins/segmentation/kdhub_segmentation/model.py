"""The distillation model for mmengine's Runner: a frozen teacher and a student SegFormer in one BaseModel.

``SegDistiller`` is registered in mmseg's MODELS. In ``loss`` mode it runs the teacher (no grad, only
as far as the distiller reads), then the student's own ``loss`` (cross entropy ...), then the
distiller's terms; ``predict`` and ``tensor`` modes are the student's, so validation and testing
measure the student. The teacher is loaded from ``teacher.checkpoint`` and owned the core way
(:class:`kdhub.algorithm.TeacherOwner`): outside the module tree, so state dicts, checkpoints, optimisers,
DDP and ``init_weights`` see only the student and the distiller's modules, while device moves
(``.to``/``.cuda``) still carry the teacher along.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmseg.registry import MODELS
from torch import Tensor

from kdhub.config import ConfigError
from kdhub.algorithm import TeacherOwner
from kdhub_openmmlab.checks import fit_weights
from kdhub_openmmlab.teacher import local_checkpoint, model_config

from .terms import TermsDistiller
from .transkd import TransKDDistiller

MODELS.register_module("TransKDDistiller", module=TransKDDistiller)
MODELS.register_module("TermsDistiller", module=TermsDistiller)


def load_segmentor_weights(model: torch.nn.Module, path: Union[str, Path], key: str) -> None:
    """Load a plain mmseg checkpoint, or a distillation checkpoint's student, into ``model`` strictly with
    ``weights_only=True``; errors name ``key`` and the first keys that do not fit."""
    fit_weights(model, path, key, load=True)


@MODELS.register_module()
class SegDistiller(TeacherOwner, BaseModel):
    """Teacher -> student distillation of two mmseg segmentors (EncoderDecoder with any backbone).

    Args:
        student: the student's model config, inline or ``dict(config='student_config.py')``.
        teacher: the teacher's model config, likewise, with ``checkpoint``: the trained teacher (a plain mmseg
            checkpoint, e.g. ``model_mmseg.pth``), as :mod:`kdhub_openmmlab.teacher` describes.
        distiller: ``dict(type='TransKDDistiller', variant='base'|'gl'|'ea', ...)`` or
            ``dict(type='TermsDistiller', terms=[...])`` for the core's generic terms.
        data_preprocessor: keys over the student's own preprocessor (by default the student's).
    """

    def __init__(self, student: dict, teacher: dict, distiller: dict, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        student_cfg = model_config(student, "model.student")
        teacher_cfg = model_config(teacher, "model.teacher")
        # the student's preprocessor, with what the config gives here (mmengine passes the top-level one) on top
        preprocessor = dict(student_cfg.get("data_preprocessor") or {})
        preprocessor.update(data_preprocessor or {})
        super().__init__(data_preprocessor=preprocessor or None, init_cfg=init_cfg)
        teacher_checkpoint = teacher.get("checkpoint")
        if not teacher_checkpoint:
            raise ConfigError("model.teacher.checkpoint is not set; give the trained teacher's checkpoint (train "
                              "one with `kdhub train TEACHER_CONFIG`, which writes model_mmseg.pth)")
        self.student = MODELS.build(student_cfg)
        # nothing below may draw from the global RNG: the student then starts exactly as a baseline run's
        with torch.random.fork_rng(devices=[]):
            teacher_model = MODELS.build(teacher_cfg)
            load_segmentor_weights(teacher_model, local_checkpoint(teacher_checkpoint), "model.teacher.checkpoint")
            self.set_teachers(teacher_model)
            self.distiller = MODELS.build(distiller, default_args=dict(student=self.student, teacher=teacher_model))

    def init_weights(self) -> None:
        """The student's own initialisation (the distiller's modules keep PyTorch's, drawn at build time)."""
        self.student.init_weights()

    def run_teacher(self, inputs: Tensor) -> None:
        """Run the teacher as far as the distiller's taps need (its backbone, or the whole network)."""
        with torch.no_grad():
            if getattr(self.distiller, "teacher_part", "full") == "backbone":
                self.teacher.extract_feat(inputs)
            else:
                self.teacher._forward(inputs)

    def loss(self, inputs: Tensor, data_samples: List[Any]) -> Dict[str, Tensor]:
        need = getattr(self.distiller, "min_batch", 1)
        if self.training and inputs.shape[0] < need:
            raise ConfigError(f"train_dataloader.batch_size: {type(self.distiller).__name__} needs at least {need} "
                              f"images per process and step, got {inputs.shape[0]}; raise the batch size")
        clear = getattr(self.distiller, "clear", None)  # a validation forward's unread captures must not stand in
        if clear is not None:                           # for this step's (kdhub's distillers have it)
            clear()
        self.run_teacher(inputs)
        losses = self.student.loss(inputs, data_samples)
        losses.update(self.distiller.loss(inputs))
        return losses

    def forward(self, inputs: Tensor, data_samples: Optional[List[Any]] = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.student.predict(inputs, data_samples)
        if mode == "tensor":
            return self.student._forward(inputs, data_samples)
        raise RuntimeError(f"invalid mode {mode!r}; valid modes: loss, predict, tensor")

    def teacher_predict(self, data: dict) -> List[Any]:
        """The teacher's predictions for a raw batch (what ``val_step`` gives for the student)."""
        data = self.data_preprocessor(data, False)
        with torch.no_grad():
            return self.teacher.predict(data["inputs"], data["data_samples"])
