"""kdhub hooks of the segmentation plugin: lazy registration and the mmengine ``.py`` config loader.

Registration imports nothing (mmseg is imported when a segmentation config is loaded), so ``kdhub list``
stays fast.

**Segmentation methods (distillers).** A distillation config selects its method by
``model.distiller.type``, the name of an mmseg ``MODELS`` type built with ``student`` and ``teacher``
(the two segmentors) plus the dict's other keys; it returns per-step losses from ``loss(inputs)`` after
both forwards (see :class:`kdhub_segmentation.terms.TermsDistiller`). The kdhub registry holds every
segmentation distiller under that type name, with ``domain="segmentation"``. When a config is loaded,
the type it names is looked up there and, if mmseg's ``MODELS`` does not know it yet, registered into it.
So a third-party distribution adds a method with one line in its ``kdhub_register`` hook::

    registry.add_distiller("MyDistiller", "my_pkg.seg:MyDistiller", "one-line description", domain="segmentation")

and a config using ``distiller=dict(type='MyDistiller', ...)`` runs it through ``kdhub train`` (its module
is imported only then). mmengine's own ``custom_imports = dict(imports=['my_pkg.seg'])`` in the config, with
``@MODELS.register_module()`` in that module, also works (and with mmseg's tools too).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from kdhub import hookimpl
from kdhub.config import LoadedConfig, peek_task
from kdhub_openmmlab.doctor import kdhub_doctor  # noqa: F401  (a hook of this plugin: mmcv's compiled ops)

DOMAIN = "segmentation"


@hookimpl
def kdhub_register(registry) -> None:
    registry.add_task(DOMAIN, "kdhub_segmentation.task:SegmentationTask", "semantic segmentation on "
                      "MMSegmentation: mmseg configs, TransKD and the core's generic terms", demo=True)
    registry.add_configs(DOMAIN, "kdhub_segmentation")
    registry.add_distiller("TransKDDistiller", "kdhub_segmentation.transkd:TransKDDistiller",
                           "TransKD (CSF + HCL, PEA / GL-Mixer / EA + patch-embedding loss) for SegFormer on mmseg",
                           domain=DOMAIN)
    registry.add_distiller("TermsDistiller", "kdhub_segmentation.terms:TermsDistiller",
                           "the core's generic tap terms (logit KD, CWD, feature MSE ...) between any two mmseg "
                           "segmentors", domain=DOMAIN)
    registry.add_dataset("segmentation_synth", "kdhub_segmentation.synth:generate", "synthetic scenes of textured "
                         "regions and shaped objects, 10 classes (generated)", domain=DOMAIN)


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    if Path(path).suffix != ".py" or peek_task(path) != DOMAIN:
        return None
    from .config import load, method_name

    cfg = load(Path(path), overrides)
    return LoadedConfig(task=DOMAIN, cfg=cfg, path=Path(path), method=method_name(cfg),
                        overrides=list(overrides), work_dir=cfg.get("work_dir"))

