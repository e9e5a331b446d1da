"""The registry that plugins fill through the ``kdhub_register`` hook.

Four kinds of entry are kept: tasks (a domain's train/eval/demo entry points), distillers (methods),
losses and data sets. Each entry remembers the plugin that added it so `kdhub list` and `kdhub plugins`
can say who provides what.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional

KINDS = ("tasks", "distillers", "losses", "datasets")


class RegistryError(KeyError):
    """An unknown or duplicate registry name; the message lists the valid choices."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class Entry:
    name: str
    obj: Any
    plugin: str
    help: str = ""


@dataclass
class Registry:
    """Name -> object tables, one per kind, filled by plugins."""

    tables: Dict[str, Dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    current_plugin: str = "?"

    def add(self, kind: str, name: str, obj: Any, help: str = "") -> Any:
        if kind not in self.tables:
            raise RegistryError(f"unknown registry kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        table = self.tables[kind]
        if name in table and table[name].obj is not obj:
            raise RegistryError(
                f"{kind[:-1]} {name!r} is registered twice: by plugin {table[name].plugin!r} "
                f"and by plugin {self.current_plugin!r}; rename one of them"
            )
        table[name] = Entry(name, obj, self.current_plugin, help or _first_line(obj))
        return obj

    def add_task(self, name: str, obj: Any, help: str = "") -> Any:
        return self.add("tasks", name, obj, help)

    def add_distiller(self, name: str, obj: Any, help: str = "") -> Any:
        return self.add("distillers", name, obj, help)

    def add_loss(self, name: str, obj: Any, help: str = "") -> Any:
        return self.add("losses", name, obj, help)

    def add_dataset(self, name: str, obj: Any, help: str = "") -> Any:
        return self.add("datasets", name, obj, help)

    def get(self, kind: str, name: str, what: Optional[str] = None) -> Any:
        table = self.tables[kind]
        if name not in table:
            raise RegistryError(unknown_name_message(what or kind[:-1], name, table))
        return table[name].obj

    def entries(self, kind: str) -> Iterator[Entry]:
        return iter(sorted(self.tables[kind].values(), key=lambda e: e.name))

    def by_plugin(self, plugin: str) -> Dict[str, list]:
        return {k: sorted(n for n, e in t.items() if e.plugin == plugin) for k, t in self.tables.items()}


def unknown_name_message(what: str, name: str, choices) -> str:
    """``unknown loss 'kld' (did you mean 'kd'?); valid choices: a, b, c``."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"unknown {what} {name!r}{hint}; valid choices: {', '.join(choices) or '(none registered)'}"


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""

