"""A domain's methods from the kdhub registry, made buildable by an mm registry.

An mm distillation config names its method by ``model.distiller.type``. Every distiller a plugin registers
for an mm domain (``registry.add_distiller(TYPE, "pkg.mod:Class", help, domain=...)``, the entry named by the
type a config writes) becomes buildable here when a config names it: it is looked up in the kdhub registry
and, unless the mm ``MODELS`` registry already knows the type (e.g. from ``custom_imports``), registered into
it. So a third-party distribution adds a method to an existing mm domain with one registration line, and its
module is imported only when a config uses it.
"""
from __future__ import annotations

from kdhub.config import ConfigError
from kdhub.registry import unknown_name_message


def register_distiller(domain: str, models, type_name: str, source: str) -> None:
    """Make ``model.distiller.type`` ``type_name`` buildable by the mm registry ``models`` (mmdet's or mmseg's
    ``MODELS``) from ``domain``'s registered distillers; errors name the file ``source`` and the choices."""
    from kdhub.plugins import get_registry

    known = models.get(type_name)
    registry = get_registry()
    names = registry.names("distillers", domain)
    if type_name not in names:
        if known is not None:
            return
        unknown = unknown_name_message(f"{domain} distiller", type_name, names)
        raise ConfigError(f"{source}: model.distiller.type: {unknown}; install the plugin that provides it, or "
                          f"import its module with custom_imports")
    cls = registry.get("distillers", type_name, domain=domain)
    if known is None:
        models.register_module(type_name, module=cls)
    elif known is not cls:
        raise ConfigError(f"{source}: model.distiller.type {type_name!r} names two different classes: "
                          f"{known.__module__}.{known.__qualname__} in the {domain} MODELS registry and "
                          f"{cls.__module__}.{cls.__qualname__} in the kdhub registry; rename one of them")
