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
        cfg = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    if not isinstance(cfg, dict) or "task" not in cfg:
        raise ConfigError(f"{path}: a kdhub config needs a top-level \"task\" key naming the task to run")
    apply_overrides(cfg, overrides, str(path))
    return LoadedConfig(task=cfg["task"], cfg=cfg, path=Path(path), method=str(cfg.get("method", "")),
                        overrides=list(overrides))
