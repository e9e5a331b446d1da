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
from kdhub.config import ConfigError, LoadedConfig, peek_task

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DOMAIN = "segmentation"


@hookimpl
def kdhub_register(registry) -> None:
    registry.add_task(DOMAIN, "kdhub_segmentation.task:SegmentationTask", "semantic segmentation on "
                      "MMSegmentation: mmseg configs, TransKD and the core's generic terms", demo=True)
    registry.add_distiller("TransKDDistiller", "kdhub_segmentation.transkd:TransKDDistiller",
                           "TransKD (CSF + HCL, PEA / GL-Mixer / EA + patch-embedding loss) for SegFormer on mmseg",
                           domain=DOMAIN)
    registry.add_distiller("TermsDistiller", "kdhub_segmentation.terms:TermsDistiller",
                           "the core's generic tap terms (logit KD, CWD, feature MSE ...) between any two mmseg "
                           "segmentors", domain=DOMAIN)
    registry.add_dataset("segmentation_synth", synth_dataset, "synthetic scenes of textured regions and shaped "
                         "objects, 10 classes (generated)", domain=DOMAIN)


def synth_dataset(**spec):
    """The generated data set described by ``SynthSegSpec(**spec)`` (built once); returns its folder."""
    from .synth import SynthSegSpec, ensure_embedded
    return ensure_embedded(SynthSegSpec(**spec))


def register_distiller(type_name: str, source: str) -> None:
    """Make ``model.distiller.type`` buildable: find it among the registered segmentation distillers
    and register it in mmseg's ``MODELS`` unless mmseg already knows it (e.g. by ``custom_imports``)."""
    from mmseg.registry import MODELS

    from kdhub.plugins import get_registry
    from kdhub.registry import unknown_name_message

    known = MODELS.get(type_name)
    registry = get_registry()
    names = registry.names("distillers", DOMAIN)
    if type_name not in names:
        if known is not None:
            return
        unknown = unknown_name_message("segmentation distiller", type_name, names)
        raise ConfigError(f"{source}: model.distiller.type: {unknown}; install the plugin that provides it, or "
                          f"import its module with custom_imports")
    cls = registry.get("distillers", type_name, domain=DOMAIN)
    if known is None:
        MODELS.register_module(type_name, module=cls)
    elif known is not cls:
        raise ConfigError(f"{source}: model.distiller.type {type_name!r} names two different classes: "
                          f"{known.__module__}.{known.__qualname__} in mmseg's MODELS and {cls.__module__}."
                          f"{cls.__qualname__} in the kdhub registry; rename one of them")


@hookimpl
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    if Path(path).suffix != ".py" or peek_task(path) != DOMAIN:
        return None
    from .config import load, method_name

    cfg = load(Path(path), overrides)
    return LoadedConfig(task=DOMAIN, cfg=cfg, path=Path(path), method=method_name(cfg),
                        overrides=list(overrides))
