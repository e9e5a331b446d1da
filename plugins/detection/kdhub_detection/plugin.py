"""kdhub hooks of the detection plugin: registration and the mmengine ``.py`` config loader.

Registration stays light (mmdet is imported when a detection config is loaded or run), so ``kdhub list``
does not pay for importing mmdet.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task


def _lazy(module: str, name: str):
    def build(*args, **kwargs):
        import importlib
        return getattr(importlib.import_module(f"kdhub_detection.{module}"), name)(*args, **kwargs)
    build.__doc__ = f"kdhub_detection.{module}.{name}"
    return build


@hookimpl
def kdhub_register(registry) -> None:
    from .synth import SynthSpec, ensure_embedded
    from .task import DetectionTask

    registry.add_task("detection", DetectionTask())
    registry.add_distiller("detrdistill", _lazy("detr_distill", "DETRDistill"),
                           "DETRDistill: Hungarian-matching logits, target-aware feature and query-prior assignment "
                           "distillation for the DETR family (mmdet)")
    registry.add_distiller("gid", _lazy("gid", "GID"), "GID: general instance selection with feature, relation and "
                           "response distillation for RetinaNet / FCOS / Faster R-CNN (mmdet)")
    registry.add_dataset("detection_synth", lambda **kw: ensure_embedded(SynthSpec(**kw)),
                         "synthetic shapes on textured backgrounds, COCO format (generated)")


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    """Claim mmengine ``.py`` configs whose top-level ``task`` is 'detection'."""
    if Path(path).suffix == ".py" and peek_task(path) == "detection":
        from .config import loaded
        return loaded(Path(path), overrides)
    return None
