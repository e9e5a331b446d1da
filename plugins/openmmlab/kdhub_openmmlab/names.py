"""kdhub's config names in mmengine's ``_base_``: ``_base_ = ['detection::retinanet_r18w32_synth.py']``.

mmengine reads ``SCOPE::path`` in ``_base_`` as a config of the installed Python package ``SCOPE`` (``mmdet::``),
found through that package's ``.mim`` folder, so a kdhub domain name fails there ("detection is not installed").
:func:`install` wraps mmengine's lookup: a scope under which a kdhub plugin ships configs
(:func:`kdhub.config.resolve_config`) resolves to that file, read as a local base (no registry scope is attached,
as for a file next to the config); every other name goes to mmengine unchanged, so ``mmdet::`` / ``mmseg::`` keep
their meaning.
"""
from __future__ import annotations

from typing import Optional, Tuple

from kdhub.config import SCOPE_SEP, resolve_config

_INSTALLED = False


def shipped_scope(name: str) -> bool:
    """Whether ``name`` is ``SCOPE::...`` with a scope kdhub plugins ship configs under."""
    from kdhub.plugins import get_plugins
    scope, sep, _ = str(name).partition(SCOPE_SEP)
    return bool(sep) and scope in get_plugins().registry.tables["configs"]


def install() -> None:
    """Route kdhub's config names in ``_base_`` to the shipped files (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.config import Config

    library_lookup = Config._get_cfg_path

    def cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
        if shipped_scope(cfg_path):
            return str(resolve_config(cfg_path, source=filename, key="_base_")), None
        return library_lookup(cfg_path, filename)

    Config._get_cfg_path = staticmethod(cfg_path)
    _INSTALLED = True
