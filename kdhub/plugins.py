"""Plugin discovery: built-in modules plus entry points of group ``kdhub``.

A plugin that fails to import, implements a hook that does not exist (a misspelt name would otherwise
never fire), fails to register, or raises in a hook call (lifecycle, doctor, or an error other than its report
of a bad config in ``kdhub_load_config``) is recorded as broken (name, distribution, error) and unregistered;
the others keep working and a run goes on.
``KDHUB_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point or distribution name, spelt as pip accepts it
(``kdhub_graph`` and ``KDHub-Graph`` name ``kdhub-graph``; ``*`` blocks every external plugin).
"""
from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Dict, List, Optional, Tuple

import pluggy

from . import hookspecs
from .registry import Registry

ENTRY_POINT_GROUP = "kdhub"
DISABLE_ENV = "KDHUB_DISABLE_PLUGINS"
BUILTIN_PLUGINS = ("kdhub.builtin", "kdhub.tensorboard")
# The observer hooks engines call during a run; each implementation is called on its own (see Plugins.notify).
LIFECYCLE_HOOKS = ("kdhub_run_start", "kdhub_metrics_logged", "kdhub_evaluation_done", "kdhub_checkpoint_saved",
                   "kdhub_run_end")


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

    def mark_broken(self, name: str, error: str, detail: Optional[str] = None) -> PluginInfo:
        """Record ``error`` for plugin ``name`` and unregister it, so none of its hooks is called again."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        info = self.info.setdefault(name, PluginInfo(name, "?", "?"))
        info.error, info.detail = error, detail
        return info

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call lifecycle hook ``hook_name`` on every plugin, each on its own and in pluggy's order.

        An observer that raises must not stop a training run: its error is reported once on stderr with
        how to disable it, the plugin is marked broken (``kdhub plugins`` shows it) and unregistered, and
        the remaining observers are still called.
        """
        if hook_name not in LIFECYCLE_HOOKS:
            raise ValueError(f"{hook_name!r} is not a lifecycle hook; expected one of {', '.join(LIFECYCLE_HOOKS)}")
        self.call_each(hook_name, **kwargs)

    def call_each(self, hook_name: str, **kwargs: Any) -> List[Any]:
        """Every plugin's result of hook ``hook_name`` (None results left out), each implementation called on its
        own as :meth:`notify` does, so one that raises is reported and switched off without stopping the rest."""
        return list(self._each_result(hook_name, (), kwargs))

    def first_result(self, hook_name: str, passthrough: Tuple[type, ...] = (), **kwargs: Any) -> Any:
        """The first result that is not None of hook ``hook_name``, asking each implementation on its own in
        pluggy's order (as a ``firstresult`` hook does). An error of a ``passthrough`` type is the plugin's
        report on the input (``kdhub_load_config``: a ConfigError naming the key) and stops the call; any other
        is reported, the plugin switched off as in :meth:`call_each`, and the next implementation asked."""
        return next(self._each_result(hook_name, passthrough, kwargs), None)

    def _each_result(self, hook_name: str, passthrough: Tuple[type, ...], kwargs: Dict[str, Any]):
        """Each implementation's result that is not None, in pluggy's order, each called when the previous result
        has been taken; one that raises (but a ``passthrough`` error) is switched off and skipped."""
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except passthrough:
                raise
            except Exception as exc:
                self._switch_off(impl.plugin_name, hook_name, exc)
                continue
            if result is not None:
                yield result

    def _switch_off(self, name: str, hook_name: str, exc: Exception) -> None:
        """Report once on stderr that plugin ``name`` raised in ``hook_name`` and mark it broken."""
        info = self.mark_broken(name, f"in {hook_name}: {_short_error(exc)}", traceback.format_exc())
        fix = "report it; it is part of kdhub" if info.builtin else \
            f"fix or update it, or disable it with {DISABLE_ENV}={info.name}"
        print(f"kdhub: plugin {info.name!r} ({info.distribution}) raised in {hook_name}: {_short_error(exc)}\n"
              f"  it is switched off for the rest of this process and the run goes on; {fix}", file=sys.stderr)


def disabled_names() -> set:
    """The names in ``KDHUB_DISABLE_PLUGINS``, normalised as :func:`canonical`."""
    return {canonical(n) for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def canonical(name: str) -> str:
    """A distribution or entry-point name as pip compares them (PEP 503): case and runs of ``-_.`` ignored."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


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

    # by name, then distribution: which of two distributions using one entry point name loads does not depend on
    # the order of sys.path's folders
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda e: (e.name, e.dist.name if getattr(e, "dist", None) else "")):
        dist = ep.dist.name if getattr(ep, "dist", None) else "?"
        info = PluginInfo(ep.name, dist, ep.dist.version if getattr(ep, "dist", None) else "?")
        if ep.name in plugins.info:
            first = plugins.info[ep.name].distribution
            if first != dist:  # (the same distribution visible twice on sys.path is not a conflict)
                plugins.info[f"{ep.name} ({dist})"] = PluginInfo(
                    ep.name, dist, info.version, error=f"its entry point name {ep.name!r} is already taken by "
                                                       f"{first}, which is loaded instead; rename one of them")
            continue
        plugins.info[ep.name] = info
        if "*" in blocked or canonical(ep.name) in blocked or canonical(dist) in blocked:
            info.disabled = True
            continue
        try:
            obj = ep.load()
            pm.register(obj, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            info.error, info.detail = _short_error(exc), traceback.format_exc()

    _check_hooks(plugins)
    _register_all(plugins)
    return plugins


def _check_hooks(plugins: Plugins) -> None:
    """Mark broken every plugin that implements a hook kdhub does not define (pluggy's ``check_pending``),
    naming the closest valid hook, or that implements as a wrapper a hook kdhub calls implementation by
    implementation (lifecycle, registration, config loading, doctor)."""
    hooks = plugins.pm.hook
    valid = sorted(n for n in vars(hooks) if not n.startswith("_") and getattr(hooks, n).has_spec())
    while True:
        try:
            plugins.pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = plugins.pm.get_name(exc.plugin)
            unknown = [c.name for c in plugins.pm.get_hookcallers(exc.plugin) or () if not c.has_spec()]
            hints = [f"{u!r}" + "".join(f" (did you mean {m!r}?)" for m in difflib.get_close_matches(u, valid, n=1))
                     for u in unknown]
            plugins.mark_broken(name, f"implements unknown hook {', '.join(hints)}; valid hooks: {', '.join(valid)}")
    for hook_name in LIFECYCLE_HOOKS + ("kdhub_register", "kdhub_load_config", "kdhub_doctor"):
        for impl in getattr(plugins.pm.hook, hook_name).get_hookimpls():
            if impl.wrapper or impl.hookwrapper:
                plugins.mark_broken(impl.plugin_name, f"implements {hook_name} as a wrapper; kdhub calls each "
                                                      f"implementation of it on its own: drop wrapper/hookwrapper")


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
            plugins.mark_broken(name, f"in kdhub_register: {_short_error(exc)}", traceback.format_exc())
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
