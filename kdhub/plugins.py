"""Plugin discovery: built-in modules plus entry points of group ``kdhub``.

A plugin that fails to import or to register is recorded as broken (name, distribution, error) and
unregistered; the others keep working. ``KDHUB_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point or
distribution name (``*`` blocks every external plugin).
"""
from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Dict, List, Optional

import pluggy

from . import hookspecs
from .registry import Registry

ENTRY_POINT_GROUP = "kdhub"
DISABLE_ENV = "KDHUB_DISABLE_PLUGINS"
BUILTIN_PLUGINS = ("kdhub.builtin",)


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool = False
    error: Optional[str] = None
    detail: Optional[str] = None  # full traceback of the error, for --verbose
    disabled: bool = False


@dataclass
class Plugins:
    """The loaded plugin manager, the filled registry and what happened to each plugin."""

    pm: pluggy.PluginManager
    registry: Registry
    info: Dict[str, PluginInfo] = field(default_factory=dict)

    @property
    def hook(self):
        return self.pm.hook

    @property
    def broken(self) -> List[PluginInfo]:
        return [i for i in self.info.values() if i.error]


def disabled_names() -> set:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def load_plugins() -> Plugins:
    """Build a fresh plugin manager: built-ins, then every entry point of group ``kdhub``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm=pm, registry=Registry())
    blocked = disabled_names()

    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
        plugins.info[modname] = PluginInfo(modname, "kdhub", _version("kdhub"), builtin=True)

    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if getattr(ep, "dist", None) else "?"
        info = PluginInfo(ep.name, dist, ep.dist.version if getattr(ep, "dist", None) else "?")
        if ep.name in plugins.info:
            continue  # the same distribution visible twice on sys.path
        plugins.info[ep.name] = info
        if "*" in blocked or ep.name in blocked or dist in blocked:
            info.disabled = True
            continue
        try:
            obj = ep.load()
            pm.register(obj, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            info.error, info.detail = _short_error(exc), traceback.format_exc()

    _register_all(plugins)
    return plugins


def _register_all(plugins: Plugins) -> None:
    """Call each plugin's ``kdhub_register`` in isolation; roll back and unregister a failing one."""
    registry = plugins.registry
    for impl in reversed(plugins.pm.hook.kdhub_register.get_hookimpls()):
        name = impl.plugin_name
        before = {k: dict(t) for k, t in registry.tables.items()}
        registry.current_plugin = name
        try:
            impl.function(registry=registry)
        except Exception as exc:
            registry.tables = before
            plugins.pm.unregister(name=name)
            info = plugins.info.setdefault(name, PluginInfo(name, "?", "?"))
            info.error, info.detail = f"in kdhub_register: {_short_error(exc)}", traceback.format_exc()
    registry.current_plugin = "?"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


_CACHED: Optional[Plugins] = None


def get_plugins(refresh: bool = False) -> Plugins:
    """The process-wide plugin set, loaded on first use."""
    global _CACHED
    if _CACHED is None or refresh:
        _CACHED = load_plugins()
    return _CACHED


def get_registry() -> Registry:
    return get_plugins().registry
