"""kdhub hooks of the segmentation plugin: registration and the mmengine ``.py`` config loader."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@hookimpl
def kdhub_register(registry) -> None:
    from .synth import SynthSegSpec, ensure_embedded
    from .task import SegmentationTask
    from .transkd import TransKDDistiller

    registry.add_task("segmentation", SegmentationTask())
    registry.add_distiller("transkd", TransKDDistiller,
                           "TransKD (CSF + HCL, PEA / GL-Mixer / EA + patch-embedding loss) for SegFormer on mmseg")
    registry.add_dataset("segmentation_synth", lambda **kw: ensure_embedded(SynthSegSpec(**kw)),
                         "synthetic scenes of textured regions and shaped objects, 10 classes (generated)")


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    if Path(path).suffix != ".py" or peek_task(path) != "segmentation":
        return None
    from .config import load, method_name

    cfg = load(Path(path), overrides)
    return LoadedConfig(task="segmentation", cfg=cfg, path=Path(path), method=method_name(cfg),
                        overrides=list(overrides))
