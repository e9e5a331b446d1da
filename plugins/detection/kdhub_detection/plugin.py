"""kdhub hooks of the detection plugin: registration and the mmengine ``.py`` config loader.

Registration imports nothing (mmdet is imported when a detection config is loaded or run), so ``kdhub list``
does not pay for importing mmdet. A distillation config selects its method by ``model.distiller.type``, the
name of a registered detection distiller (``registry.add_distiller(TYPE, "pkg.mod:Class", help,
domain="detection")``); loading the config registers it into mmdet's ``MODELS``
(:mod:`kdhub_openmmlab.methods`), so a third-party distribution can add a method to this domain.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task
from kdhub_openmmlab.doctor import kdhub_doctor  # noqa: F401  (a hook of this plugin: mmcv's compiled ops)


@hookimpl
def kdhub_register(registry) -> None:
    registry.add_task("detection", "kdhub_detection.task:DetectionTask", "object detection on MMDetection: GID "
                      "and DETRDistill between mmdet detectors", demo=True)
    registry.add_configs("detection", "kdhub_detection")
    registry.add_distiller("DETRDistill", "kdhub_detection.detr_distill:DETRDistill",
                           "DETRDistill: Hungarian-matching logits, target-aware feature and query-prior assignment "
                           "distillation for the DETR family (mmdet; model.distiller.type='DETRDistill')",
                           domain="detection")
    registry.add_distiller("GID", "kdhub_detection.gid:GID", "GID: general instance selection with feature, "
                           "relation and response distillation for RetinaNet / FCOS / Faster R-CNN (mmdet; "
                           "model.distiller.type='GID')", domain="detection")
    registry.add_dataset("detection_synth", "kdhub_detection.synth:generate", "synthetic shapes on textured "
                         "backgrounds, COCO format (generated)", domain="detection")


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    """Claim mmengine ``.py`` configs whose top-level ``task`` is 'detection'."""
    if Path(path).suffix == ".py" and peek_task(path) == "detection":
        from .config import loaded
        return loaded(Path(path), overrides)
    return None
