"""Where generated (embedded) data sets live, and building one atomically.

Each domain generates its default data set once into ``$KDHUB_DATA_DIR/<domain>/<name>`` (or
``~/.cache/kdhub/<domain>/<name>``). The folder is built under a temporary name beside the target and
renamed into place only when complete, so an interrupted generation leaves nothing a later run would
mistake for a finished set, and two processes racing to build it end up sharing one copy.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ClassVar, Optional

DATA_DIR_ENV = "KDHUB_DATA_DIR"


@dataclass(frozen=True)
class GeneratedSpec:
    """Base of a generated set's spec: split sizes and seed. Subclasses add their own (defaulted) fields
    and set ``VERSION``; :meth:`key` hashes every field with it, so each spec has its own folder."""

    VERSION: ClassVar[int] = 1
    train: int = 600
    val: int = 100
    test: int = 200
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": self.VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def count(self, split: str) -> int:
        return getattr(self, split)

    def describe(self) -> str:
        """The ``spec.json`` text: every field and the generator version."""
        return json.dumps({**asdict(self), "version": self.VERSION}, indent=2) + "\n"


def default_root(domain: str) -> Path:
    """``$KDHUB_DATA_DIR/<domain>`` or ``~/.cache/kdhub/<domain>``."""
    base = os.environ.get(DATA_DIR_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "kdhub") / domain


def build_once(target: Path, build: Callable[[Path], None], marker: str) -> Path:
    """Return ``target``, first calling ``build(tmp)`` to fill a temporary folder renamed to it when
    ``target/marker`` does not exist yet. ``build`` must write ``marker`` last."""
    target = Path(target)
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        if not (tmp / marker).is_file():
            raise RuntimeError(f"building {target.name} wrote no {marker}")
        try:
            tmp.rename(target)
        except OSError:
            if not (target / marker).is_file():  # another process won the race: use its copy
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def data_folder(domain: str, name: str, root: Optional[Path] = None) -> Path:
    """The folder ``name`` of ``domain``'s generated data under ``root`` (default :func:`default_root`)."""
    return (Path(root) if root else default_root(domain)) / name
