"""``--cfg-options`` for mmengine configs: parsed by mmengine's own ``DictAction``, so values read exactly
as in OpenMMLab's tools (numbers, ``None``, booleans, lists, tuples), then checked so that a misspelt key
or a value of the wrong type is an error naming it, instead of a new key nobody reads or a failure deep
inside a constructor once training has started."""
from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
from typing import Any, Dict, Iterable, Optional, Sequence

from kdhub.config import ConfigError

from . import metafiles, names

metafiles.install()  # every mm config is loaded after this module: parse the libraries' model index once
names.install()  # and read kdhub's config names (detection::x.py) in _base_

# top-level keys mmengine's Runner (and the OpenMMLab configs) use, plus kdhub's ``task``
RUNNER_KEYS = frozenset({
    "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg", "val_cfg",
    "test_cfg", "auto_scale_lr", "optim_wrapper", "param_scheduler", "val_evaluator", "test_evaluator",
    "default_hooks", "custom_hooks", "data_preprocessor", "load_from", "resume", "launcher", "env_cfg",
    "log_processor", "log_level", "visualizer", "default_scope", "randomness", "experiment_name", "cfg",
    "model_wrapper_cfg", "find_unused_parameters", "sync_bn", "custom_imports", "vis_backends", "tta_model",
    "tta_pipeline", "task", "compile", "strategy",
})

#: keys whose type the Runner only finds out while building (deep in a traceback): checked up front
TYPED_KEYS = {
    "train_dataloader.batch_size": int, "val_dataloader.batch_size": int, "test_dataloader.batch_size": int,
    "train_dataloader.num_workers": int, "train_cfg.max_epochs": int, "train_cfg.max_iters": int,
    "train_cfg.val_interval": int, "optim_wrapper.optimizer.lr": float, "randomness.seed": (int, type(None)),
    "model.teacher.config": (str, type(None)), "model.teacher.checkpoint": (str, type(None)), "baseline": bool,
}


def _close(key: str, choices, cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(str(key), [str(c) for c in choices], n=2, cutoff=cutoff)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


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


def check_keys(cfg, options: Dict[str, Any], source: str, scope: Optional[str] = None,
               extra_keys: Iterable[str] = ()) -> None:
    """Every section on the way to an overridden key must exist. A new key is accepted at the top level when
    it is a Runner key or one of ``extra_keys``, inside a constructor dict (one with ``type``) when it is a
    keyword argument of that type in ``scope``'s registries (``mmdet``, ``mmseg``; unchecked if unknown), and
    in a model given by file (``dict(config='file.py', ...)``) when that file's model has it."""
    top_known = set(RUNNER_KEYS) | set(extra_keys)
    for key in options:
        parts = key.split(".")
        node: Any = getattr(cfg, "_cfg_dict", cfg)  # an mmengine Config holds its ConfigDict here
        for i, part in enumerate(parts):
            if isinstance(node, (list, tuple)) and part.isdigit():
                if int(part) >= len(node):
                    raise ConfigError(f"{source}: --cfg-options {key}: '{'.'.join(parts[:i])}' has {len(node)} "
                                      f"entries (0 to {len(node) - 1}), so it has no entry {part}")
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: --cfg-options {key}: '{'.'.join(parts[:i])}' is a "
                                  f"{type(node).__name__}, not a section")
            if part in node:
                node = node[part]
                continue
            if i == 0 and part in top_known:
                break
            if i == 0:
                raise ConfigError(f"{source}: --cfg-options {key}: unknown key '{part}'"
                                  f"{_close(part, set(node) | top_known, 0.75)}")
            if "config" in node and part in _file_model(node["config"], source):
                break  # a model given as dict(config='file.py', ...): its keys override that file's model
            if i == len(parts) - 1 and "type" in node:
                _check_argument(node["type"], part, key, source, scope)
                break
            raise ConfigError(f"{source}: --cfg-options {key}: no key '{part}' in {'.'.join(parts[:i])}"
                              f"{_close(part, node)}; valid keys: {', '.join(map(str, node))}")


def _file_model(name, source: str) -> dict:
    """The ``model`` of the config file a model spec names (``dict(config=name, ...)``); empty if unreadable."""
    from mmengine.config import Config

    from .teacher import config_file
    try:
        return dict(Config.fromfile(str(config_file(name, source, "config"))).get("model") or {})
    except Exception:  # reported, with its key, when the spec is resolved
        return {}


def _registered_class(name, scope: Optional[str]):
    """The class registered as ``name`` in one of ``scope``'s registries (None when not found)."""
    if not isinstance(name, str):
        return name
    if scope is None:
        return None
    registries = importlib.import_module(f"{scope}.registry")
    importlib.import_module(f"{scope}.utils").register_all_modules(init_default_scope=False)
    for attr in ("MODELS", "DATASETS", "TRANSFORMS", "LOOPS", "HOOKS", "METRICS", "OPTIMIZERS", "PARAM_SCHEDULERS",
                 "OPTIM_WRAPPERS", "DATA_SAMPLERS", "TASK_UTILS", "VISUALIZERS"):
        registry = getattr(registries, attr, None)
        cls = registry.get(name) if registry is not None else None
        if cls is not None:
            return cls
    return None


def _check_argument(type_name, arg: str, key: str, source: str, scope: Optional[str]) -> None:
    """A new key inside a constructor dict must be a keyword argument of that constructor."""
    cls = _registered_class(type_name, scope)
    if cls is None:
        return
    params = {}
    for klass in getattr(cls, "__mro__", [cls]):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        params.update({n: p for n, p in sig.parameters.items() if n != "self"})
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    else:
        return
    if arg not in params:
        names = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        raise ConfigError(f"{source}: --cfg-options {key}: {type_name} has no argument '{arg}'{_close(arg, names)}; "
                          f"its arguments: {', '.join(names)}")


def check_types(cfg, source: str) -> None:
    """The keys of :data:`TYPED_KEYS` that ``cfg`` sets must have their type (an int is a valid float)."""
    for key, want in TYPED_KEYS.items():
        node: Any = getattr(cfg, "_cfg_dict", cfg)
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        wants = want if isinstance(want, tuple) else (want,)
        ok = isinstance(node, wants) and not (isinstance(node, bool) and bool not in wants)
        if node is KeyError or ok or (float in wants and isinstance(node, int) and not isinstance(node, bool)):
            continue
        names = " or ".join("None" if t is type(None) else t.__name__ for t in wants)
        raise ConfigError(f"{source}: key '{key}' must be {names}, got {type(node).__name__} {node!r}")


def merge_cfg_options(cfg, overrides: Sequence[str], source: str, scope: Optional[str] = None,
                      extra_keys: Iterable[str] = ()) -> Dict[str, Any]:
    """Parse, check (:func:`check_keys`) and merge ``overrides`` into the mmengine ``cfg``, then check the value
    types of :data:`TYPED_KEYS`; returns the parsed options."""
    options = parse_cfg_options(overrides, source)
    check_keys(cfg, options, source, scope, extra_keys)
    cfg.merge_from_dict(options)
    check_types(cfg, source)
    return options
