"""``--cfg-options`` for mmengine configs: parsed by mmengine's own ``DictAction``, so values read exactly
as in OpenMMLab's tools (numbers, ``None``, booleans, lists, tuples), with a check that turns a misspelt
top-level key into an error naming it instead of a new key nobody reads."""
from __future__ import annotations

import argparse
import difflib
from typing import Any, Dict, Iterable, Sequence

from kdhub.config import ConfigError

# top-level keys mmengine's Runner (and the OpenMMLab configs) use, plus kdhub's ``task``
RUNNER_KEYS = frozenset({
    "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg", "val_cfg",
    "test_cfg", "auto_scale_lr", "optim_wrapper", "param_scheduler", "val_evaluator", "test_evaluator",
    "default_hooks", "custom_hooks", "data_preprocessor", "load_from", "resume", "launcher", "env_cfg",
    "log_processor", "log_level", "visualizer", "default_scope", "randomness", "experiment_name", "cfg",
    "model_wrapper_cfg", "find_unused_parameters", "sync_bn", "custom_imports", "vis_backends", "tta_model",
    "tta_pipeline", "task", "compile", "strategy",
})


def parse_cfg_options(overrides: Sequence[str], source: str = "--cfg-options") -> Dict[str, Any]:
    """``key=value`` pairs as mmengine's ``DictAction`` parses them (dotted keys, values typed)."""
    from mmengine.config import DictAction

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source}: --cfg-options {item!r} is not of the form key=value "
                              f"(e.g. train_cfg.max_epochs=12)")
    if not overrides:
        return {}
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    return dict(parser.parse_args(["--cfg-options", *overrides]).cfg_options)


def check_top_keys(cfg, options: Dict[str, Any], source: str, extra_keys: Iterable[str] = ()) -> None:
    """A top-level key that is neither in ``cfg`` nor a known Runner key but close to one is a typo."""
    known = set(RUNNER_KEYS) | set(extra_keys)
    for key in options:
        top = key.split(".")[0]
        if top in cfg or top in known:
            continue
        close = difflib.get_close_matches(top, sorted(set(cfg.keys()) | known), n=2, cutoff=0.75)
        if close:
            raise ConfigError(f"{source}: --cfg-options {key}: unknown key '{top}' (did you mean "
                              f"{' or '.join(repr(c) for c in close)}?)")


def merge_cfg_options(cfg, overrides: Sequence[str], source: str, extra_keys: Iterable[str] = ()) -> Dict[str, Any]:
    """Parse, check and merge ``overrides`` into the mmengine ``cfg``; returns the parsed options."""
    options = parse_cfg_options(overrides, source)
    check_top_keys(cfg, options, source, extra_keys)
    cfg.merge_from_dict(options)
    return options
