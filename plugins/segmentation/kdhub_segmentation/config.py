"""Loading mmengine ``.py`` configs for kdhub: ``--cfg-options`` as mmengine applies them, paths resolved.

A segmentation config is a normal mmseg/mmengine config with ``task = 'segmentation'`` at the top. A
distillation config has ``model.type == 'SegDistiller'``; its ``model.student`` / ``model.teacher``
may name other config files by ``cfg_path`` (relative to the config's folder or ``mmseg::...``).
Extra top-level keys kdhub reads: ``baseline`` (also train the student alone, for comparison).
"""
from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Any, Dict, Sequence

from kdhub.config import ConfigError, resolve_path

# top-level keys mmengine's Runner (and mmseg's configs) use; other new keys are probably typos
RUNNER_KEYS = {
    "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg", "val_cfg",
    "test_cfg", "auto_scale_lr", "optim_wrapper", "param_scheduler", "val_evaluator", "test_evaluator",
    "default_hooks", "custom_hooks", "data_preprocessor", "load_from", "resume", "launcher", "env_cfg",
    "log_processor", "log_level", "visualizer", "default_scope", "randomness", "experiment_name", "cfg",
    "model_wrapper_cfg", "find_unused_parameters", "sync_bn", "custom_imports", "vis_backends", "tta_model",
    "tta_pipeline", "task", "baseline", "compile", "strategy",
}


def parse_cfg_options(overrides: Sequence[str]) -> Dict[str, Any]:
    """``key=value`` pairs parsed exactly like mmengine's ``--cfg-options`` (lists, tuples, numbers ...)."""
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--cfg-options: {item!r} is not of the form key=value (e.g. train_cfg.max_iters=100)")
    return dict(parser.parse_args(["--cfg-options", *overrides]).cfg_options) if overrides else {}


def is_distillation(cfg) -> bool:
    return cfg.get("model", {}).get("type") == "SegDistiller"


def load(path: Path, overrides: Sequence[str]):
    """The mmengine Config at ``path`` with ``overrides`` merged and ``cfg_path`` entries made absolute."""
    from mmengine.config import Config

    from . import mm  # noqa: F401  (registers kdhub's modules so the config's types resolve)

    source = str(path)
    try:
        cfg = Config.fromfile(source)
    except Exception as exc:  # syntax errors, missing _base_ files ...
        raise ConfigError(f"{source}: cannot load this mmengine config: {type(exc).__name__}: {exc}") from None
    options = parse_cfg_options(overrides)
    for key in options:
        top = key.split(".")[0]
        if top not in cfg and top not in RUNNER_KEYS:
            close = difflib.get_close_matches(top, list(cfg.keys()) + sorted(RUNNER_KEYS), n=2, cutoff=0.75)
            if close:
                raise ConfigError(f"{source}: --cfg-options {key}: unknown key '{top}' (did you mean "
                                  f"{' or '.join(repr(c) for c in close)}?)")
    cfg.merge_from_dict(options)
    if "model" not in cfg:
        raise ConfigError(f"{source}: no 'model' in this config; a segmentation config defines model = dict(...)")
    if not isinstance(cfg.get("baseline", False), bool):
        raise ConfigError(f"{source}: key 'baseline' must be true or false, got {cfg.baseline!r}")
    if is_distillation(cfg):
        for role in ("student", "teacher"):
            spec = cfg.model.get(role)
            if spec is None:
                raise ConfigError(f"{source}: missing key 'model.{role}' (the {role}'s model config, inline or "
                                  f"dict(cfg_path='...py'))")
            p = spec.get("cfg_path")
            if p and not str(p).startswith("mmseg::"):
                resolved = resolve_path(str(p), source)
                if not resolved.is_file():
                    raise ConfigError(f"{source}: key 'model.{role}.cfg_path': config file not found: {p}")
                spec.cfg_path = str(resolved.resolve())
        ckpt = cfg.model.get("teacher_checkpoint")
        if ckpt:
            resolved = resolve_path(str(ckpt), source)
            cfg.model.teacher_checkpoint = str(resolved.resolve()) if resolved.exists() else str(ckpt)
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
