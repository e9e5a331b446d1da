"""Plain mmseg checkpoints: what ``mmseg.apis.init_model(config, checkpoint)`` loads.

A distillation run's checkpoints hold the student and the distiller's modules (CSF, PEA ...) under
``student.`` and ``distiller.``; the export keeps the student alone, with the data set's classes and
palette in ``meta.dataset_meta``, and nothing that needs more than ``weights_only`` loading.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from kdhub.checkpoint import CheckpointError, atomic_save, load_checkpoint, sub_state_dict


def _plain_meta(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_meta(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_meta(v) for v in value)
    if hasattr(value, "item"):
        return value.item()
    return value


def export_state_dict(state: Mapping[str, torch.Tensor], out: Union[str, Path],
                      dataset_meta: Optional[Mapping[str, Any]] = None, **meta: Any) -> Path:
    """Write ``{'meta': {...}, 'state_dict': state}`` atomically to ``out``."""
    ckpt = {"meta": _plain_meta({"dataset_meta": dict(dataset_meta or {}), "kdhub": meta}),
            "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()}}
    return atomic_save(ckpt, out)


def export_model(model: nn.Module, out: Union[str, Path], dataset_meta: Optional[Mapping[str, Any]] = None,
                 **meta: Any) -> Path:
    """Export a live model: the student of a :class:`~kdhub_segmentation.model.SegDistiller`, or a plain
    segmentor as it is."""
    model = getattr(model, "module", model)
    segmentor = getattr(model, "student", model)
    return export_state_dict(segmentor.state_dict(), out, dataset_meta, **meta)


def export_student(checkpoint: Union[str, Path], out: Union[str, Path]) -> Path:
    """Export the student of an mmengine training checkpoint of a distillation run (``iter_N.pth``)."""
    ckpt: Dict[str, Any] = load_checkpoint(checkpoint)  # weights_only: see hooks.py
    state = ckpt.get("state_dict", ckpt)
    try:
        student = sub_state_dict(state, "student.")
    except CheckpointError as exc:
        raise CheckpointError(f"{checkpoint}: not a distillation checkpoint ({exc})") from None
    dataset_meta = ckpt.get("meta", {}).get("dataset_meta")
    return export_state_dict(student, out, dataset_meta, source=str(checkpoint))
