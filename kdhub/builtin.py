"""The core's own plugin: the generic losses and the JSON config loader.

The losses are what ``build_terms`` builds a term's ``loss: {type: ...}`` from (e.g. the segmentation
``TermsDistiller``). :class:`kdhub.TapAlgorithm` is a library class for plugin authors, not a method a
config can select, so it is not registered.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from .config import ConfigError, LoadedConfig, apply_overrides
from .hookspecs import hookimpl
from .losses import LOSSES


def _refuse_native_format(path: Path, task: str) -> None:
    """A task registered by a plugin that loads configs itself reads its own format, not this plain JSON:
    say so here rather than hand it a config it cannot read."""
    from .plugins import get_plugins
    plugins = get_plugins()
    entry = plugins.registry.tables["tasks"].get(task)
    owner = plugins.pm.get_plugin(entry.plugin) if entry is not None else None
    if owner is not None and any(impl.plugin is owner for impl in plugins.pm.hook.kdhub_load_config.get_hookimpls()):
        raise ConfigError(f"{path}: task {task!r} reads its configs in its own format (plugin {entry.plugin!r}), "
                          f"not as kdhub JSON; start from one it ships (kdhub configs {task})")


@hookimpl
def kdhub_register(registry) -> None:
    for name, cls in LOSSES.items():
        registry.add_loss(name, cls)


@hookimpl(trylast=True)
def kdhub_load_config(path: Path, overrides: Sequence[str]) -> Optional[LoadedConfig]:
    """JSON configs with a top-level ``task`` key (other formats belong to domain plugins)."""
    if Path(path).suffix != ".json":
        return None
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    if not isinstance(cfg, dict) or "task" not in cfg:
        raise ConfigError(f"{path}: a kdhub config needs a top-level \"task\" key naming the task to run")
    if not isinstance(cfg["task"], str) or not cfg["task"]:
        raise ConfigError(f"{path}: key 'task' must be the name of a task (a string), got {cfg['task']!r}")
    _refuse_native_format(Path(path), cfg["task"])
    apply_overrides(cfg, overrides, str(path))
    return LoadedConfig(task=cfg["task"], cfg=cfg, path=Path(path), method=str(cfg.get("method", "")),
                        overrides=list(overrides))
