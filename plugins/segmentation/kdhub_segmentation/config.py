"""Loading mmengine ``.py`` configs for kdhub: ``--cfg-options`` as mmengine applies them, paths resolved.

A segmentation config is a normal mmseg/mmengine config with ``task = 'segmentation'`` at the top. A
distillation config has ``model.type == 'SegDistiller'``; its ``model.student`` / ``model.teacher``
are model configs given inline or by ``config`` (another config file, relative to the config's folder or
``mmseg::...``), and ``model.teacher.checkpoint`` names the trained teacher: the teacher keys of every mm
plugin (:mod:`kdhub_openmmlab.teacher`). Extra top-level keys kdhub reads: ``baseline`` (also train the
student alone, for comparison).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from kdhub.config import ConfigError
from kdhub_openmmlab.methods import register_distiller
from kdhub_openmmlab.options import merge_cfg_options
from kdhub_openmmlab.teacher import resolve_specs



def is_distillation(cfg) -> bool:
    return cfg.get("model", {}).get("type") == "SegDistiller"


def load(path: Path, overrides: Sequence[str]):
    """The mmengine Config at ``path`` with ``overrides`` merged and the paths it names made absolute."""
    from mmengine.config import Config

    from . import mm  # noqa: F401  (registers kdhub's modules so the config's types resolve)

    source = str(path)
    try:
        cfg = Config.fromfile(source)
    except Exception as exc:  # syntax errors, missing _base_ files ...
        raise ConfigError(f"{source}: cannot load this mmengine config: {type(exc).__name__}: {exc}") from None
    merge_cfg_options(cfg, overrides, source, scope="mmseg", extra_keys=("baseline",))
    if "model" not in cfg:
        raise ConfigError(f"{source}: no 'model' in this config; a segmentation config defines model = dict(...)")
    if not isinstance(cfg.get("baseline", False), bool):
        raise ConfigError(f"{source}: key 'baseline' must be true or false, got {cfg.baseline!r}")
    if is_distillation(cfg):
        distiller_type = (cfg.model.get("distiller") or {}).get("type")
        if distiller_type:  # the method, by name, from the kdhub registry (third-party ones included)
            from mmseg.registry import MODELS
            register_distiller("segmentation", MODELS, distiller_type, source)
        for role in ("student", "teacher"):
            spec = cfg.model.get(role)
            if spec is None:
                raise ConfigError(f"{source}: missing key 'model.{role}' (the {role}'s model config, inline or "
                                  f"dict(config='...py'))")
            if "cfg_path" in spec:
                raise ConfigError(f"{source}: key 'model.{role}.cfg_path' is now 'model.{role}.config' "
                                  f"(the same for every mm plugin); rename it")
        if "teacher_checkpoint" in cfg.model:
            raise ConfigError(f"{source}: key 'model.teacher_checkpoint' is now 'model.teacher.checkpoint' (the same "
                              f"for every mm plugin): model.teacher=dict(config='...py', checkpoint=...)")
        resolve_specs(cfg.model, ("student", "teacher"), source)
    return cfg


def method_name(cfg) -> str:
    """'transkd-base' / 'transkd-gl' / 'transkd-ea', the term names of a TermsDistiller, or 'supervised'."""
    if not is_distillation(cfg):
        return "supervised"
    d = cfg.model.distiller
    if d.get("type") == "TransKDDistiller":
        return f"transkd-{d.get('variant', 'base')}"
    if d.get("type") == "TermsDistiller":
        return "+".join(t.get("name", "term") for t in d.get("terms", [])) or "terms"
    return str(d.get("type"))
