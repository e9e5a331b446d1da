"""The registry that plugins fill through the ``kdhub_register`` hook, and that domains read to dispatch.

Five kinds of entry are kept: tasks (a domain's train/eval/demo entry points), distillers (methods),
losses, data sets and config folders (the configs a plugin ships, named ``SCOPE::file`` on the command
line and inside configs; see :meth:`Registry.add_configs`). Each entry remembers the plugin that added it
and the domain it belongs to, so `kdhub list` and `kdhub plugins` can say who provides what, and a domain
can pick its methods by name (``registry.get("distillers", cfg.method)``) among those registered for it,
third-party ones included.

Entries are lazy when registered as an import string ``"package.module:attr"``: nothing is imported until
the first :meth:`Registry.get`, so listing what is installed costs no framework import. A lazy task
entry names its class; the class is instantiated on first use. Since a lazy task cannot be inspected
without importing it, registration says whether it has a demo (``add_task(..., demo=True)``).
"""
from __future__ import annotations

import difflib
import importlib
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

KINDS = ("tasks", "distillers", "losses", "datasets", "configs")
#: one entry of each kind, as messages name it
SINGULAR = {"tasks": "task", "distillers": "distiller", "losses": "loss", "datasets": "data set", "configs": "config folder"}


class RegistryError(KeyError):
    """An unknown or duplicate registry name; the message lists the valid choices."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def is_import_string(target: Any) -> bool:
    """``"package.module:attr"``: the form of a lazy entry."""
    return isinstance(target, str) and target.count(":") == 1 and all(target.split(":"))


def import_object(target: str) -> Any:
    """The object an import string ``"package.module:attr"`` (``attr`` may be dotted) names."""
    module, attr = target.split(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ConfigFolder:
    """A folder of config files shipped inside the installed package ``package`` (``folder`` relative to it).

    The folder is found through :mod:`importlib.resources`, as installed (editable checkout or wheel): that
    imports the package itself (already imported when it is the registering plugin's own), never a framework.
    """

    package: str
    folder: str = "configs"

    def path(self) -> Path:
        """The folder on disk; a :class:`RegistryError` when the package cannot be found or is not installed
        as plain files (a zipped install: configs are read by file path, by every domain's loader)."""
        try:
            root = importlib.resources.files(self.package)
        except (ImportError, TypeError) as exc:
            raise RegistryError(f"config folder {self}: package {self.package!r} cannot be found "
                                f"({type(exc).__name__}: {exc}); reinstall the plugin that ships it") from exc
        if not isinstance(root, Path):
            raise RegistryError(f"config folder {self}: package {self.package!r} is not installed as files "
                                f"({type(root).__name__}); install it unzipped (pip install)")
        return root / self.folder

    def __str__(self) -> str:
        return f"{self.package}/{self.folder}"


@dataclass
class Entry:
    """One registered name. ``target`` is the object itself or, for a lazy entry, its import string;
    ``obj`` resolves it (once). ``domain`` is the task the entry belongs to ("" for generic ones)."""

    name: str
    target: Any
    plugin: str
    help: str = ""
    domain: str = ""
    demo: bool = False
    instantiate: bool = False  # lazy task entries name a class; the registry holds one instance
    _loaded: List[Any] = field(default_factory=list, repr=False)

    @property
    def lazy(self) -> bool:
        return is_import_string(self.target)

    @property
    def obj(self) -> Any:
        if not self.lazy:
            return self.target
        if not self._loaded:
            try:
                obj = import_object(self.target)
            except (ImportError, AttributeError) as exc:
                raise RegistryError(f"{self.name!r} (registered by plugin {self.plugin!r} as {self.target!r}) "
                                    f"cannot be loaded: {type(exc).__name__}: {exc}; reinstall that plugin or "
                                    f"fix its registration") from exc
            self._loaded.append(obj() if self.instantiate and isinstance(obj, type) else obj)
        return self._loaded[0]


@dataclass
class Registry:
    """Name -> entry tables, one per kind, filled by plugins."""

    tables: Dict[str, Dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    current_plugin: str = "?"

    def add(self, kind: str, name: str, obj: Any, help: str = "", domain: str = "", demo: bool = False) -> Any:
        """Register ``obj`` (an object, or an import string ``"module:attr"`` loaded on first ``get``)."""
        if kind not in self.tables:
            raise RegistryError(f"unknown registry kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        table = self.tables[kind]
        old = table[name].target if name in table else obj
        if old is not obj and not (isinstance(obj, (str, ConfigFolder)) and old == obj):
            raise RegistryError(
                f"{SINGULAR[kind]} {name!r} is registered twice: by plugin {table[name].plugin!r} "
                f"and by plugin {self.current_plugin!r}; rename one of them"
            )
        text = help or (obj if is_import_string(obj) or isinstance(obj, ConfigFolder) else _first_line(obj))
        table[name] = Entry(name, obj, self.current_plugin, text, domain, demo, instantiate=kind == "tasks")
        return obj

    def add_task(self, name: str, obj: Any, help: str = "", domain: str = "", demo: Optional[bool] = None) -> Any:
        """A task: a :class:`kdhub.Task` instance, or the import string of its class (instantiated on first
        use). ``domain`` defaults to ``name``; ``demo`` says whether ``kdhub demo`` runs it (for an
        instance, by default: whether its class overrides ``Task.demo``)."""
        if demo is None:
            demo = not is_import_string(obj) and _overrides_demo(obj)
        return self.add("tasks", name, obj, help, domain or name, bool(demo))

    def add_distiller(self, name: str, obj: Any, help: str = "", domain: str = "") -> Any:
        """A method; ``domain`` is the task that can run it (its config selects it by ``name``)."""
        return self.add("distillers", name, obj, help, domain)

    def add_loss(self, name: str, obj: Any, help: str = "", domain: str = "") -> Any:
        return self.add("losses", name, obj, help, domain)

    def add_dataset(self, name: str, obj: Any, help: str = "", domain: str = "") -> Any:
        return self.add("datasets", name, obj, help, domain)

    def add_configs(self, name: str, package: str, folder: str = "configs", help: str = "",
                    domain: str = "") -> ConfigFolder:
        """Ship the config files in ``folder`` of the installed package ``package`` under the scope ``name``:
        ``kdhub train NAME::file.yaml`` (``eval`` too) runs one, a config key naming another config file (an
        mm teacher's ``model.teacher.config``) accepts ``NAME::file.py``, and ``kdhub configs NAME`` lists
        them with the first line of each file's own description. A domain's own plugin ships its configs under
        the domain's name (``graph::glnn_cora_sage.yaml``); another plugin (new methods for that domain, with
        example configs) uses a scope of its own. ``domain`` (default ``name``) is the task the configs are for.
        Nothing is read at registration: the folder is located when a name is looked up or listed."""
        text = help or (f"configs in {package}/{folder}, run as kdhub train {name}::NAME "
                        f"(kdhub configs {name} lists them)")
        return self.add("configs", name, ConfigFolder(package, folder), text, domain or name)

    def get(self, kind: str, name: str, what: Optional[str] = None, domain: Optional[str] = None) -> Any:
        """The object registered as ``name`` (imported now if lazy); with ``domain``, only among that
        domain's entries, so an unknown name lists that domain's choices."""
        table = self.names(kind, domain)
        if name not in table:
            raise RegistryError(unknown_name_message(what or SINGULAR[kind], name, table))
        return self.tables[kind][name].obj

    def names(self, kind: str, domain: Optional[str] = None) -> List[str]:
        """Sorted names of ``kind`` (of one ``domain`` if given)."""
        return sorted(n for n, e in self.tables[kind].items() if domain is None or e.domain == domain)

    def entries(self, kind: str) -> Iterator[Entry]:
        return iter(sorted(self.tables[kind].values(), key=lambda e: e.name))

    def by_plugin(self, plugin: str) -> Dict[str, list]:
        return {k: sorted(n for n, e in t.items() if e.plugin == plugin) for k, t in self.tables.items()}


def unknown_name_message(what: str, name: str, choices, listing: Optional[str] = None) -> str:
    """``unknown loss 'kld' (did you mean 'kd'?); valid choices: a, b, c``; with ``listing``, that text
    replaces the list of valid choices (for long lists: where to see them)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    listing = listing or f"valid choices: {', '.join(choices) or '(none registered)'}"
    return f"unknown {what} {name!r}{hint}; {listing}"


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _overrides_demo(task: Any) -> bool:
    return bool(getattr(task, "has_demo", False))
