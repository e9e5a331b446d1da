"""kdhub hooks of the detection plugin: registration and the mmengine ``.py`` config loader.

Registration imports nothing (mmdet is imported when a detection config is loaded or run), so ``kdhub list``
does not pay for importing mmdet. The methods are mmdet models selected by the config's
``model.distiller.type``; their registry entries describe them and load them on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task


@hookimpl
def kdhub_register(registry) -> None:
    registry.add_task("detection", "kdhub_detection.task:DetectionTask", "object detection on MMDetection: GID "
                      "and DETRDistill between mmdet detectors", demo=True)
    registry.add_distiller("detrdistill", "kdhub_detection.detr_distill:DETRDistill",
                           "DETRDistill: Hungarian-matching logits, target-aware feature and query-prior assignment "
                           "distillation for the DETR family (mmdet; model.distiller.type='DETRDistill')",
                           domain="detection")
    registry.add_distiller("gid", "kdhub_detection.gid:GID", "GID: general instance selection with feature, "
                           "relation and response distillation for RetinaNet / FCOS / Faster R-CNN (mmdet; "
                           "model.distiller.type='GID')", domain="detection")
    registry.add_dataset("detection_synth", synth_dataset, "synthetic shapes on textured backgrounds, COCO format "
                         "(generated)", domain="detection")


def synth_dataset(**spec):
    """The generated data set described by ``SynthSpec(**spec)`` (built once); returns its folder."""
    from .synth import SynthSpec, ensure_embedded
    return ensure_embedded(SynthSpec(**spec))


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    """Claim mmengine ``.py`` configs whose top-level ``task`` is 'detection'."""
    if Path(path).suffix == ".py" and peek_task(path) == "detection":
        from .config import loaded
        return loaded(Path(path), overrides)
    return None
