"""An mmengine file backend whose writes are atomic, for checkpoints.

mmengine's local backend writes in place, so an interrupted save leaves a truncated file.
``backend_args=dict(backend='kdhub_atomic')`` on the CheckpointHook routes every save (the checkpoint with
``put``, mmengine's ``last_checkpoint`` record with ``put_text``) through
:func:`kdhub.checkpoint.atomic_write_bytes`: a temporary file, fsync, then a rename, so a failed or
interrupted write leaves the previous file as it was.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from kdhub.checkpoint import atomic_write_bytes

BACKEND = "kdhub_atomic"


class AtomicLocalBackend(LocalBackend):
    """:class:`mmengine.fileio.LocalBackend` with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = "utf-8") -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


register_backend(BACKEND, AtomicLocalBackend)
