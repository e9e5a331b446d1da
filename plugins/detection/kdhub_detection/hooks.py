"""mmengine glue: kdhub's lifecycle hook, an atomic local file backend for checkpoints, CPU-capable DDP.

``KDHubLifecycleHook`` makes the core's :class:`kdhub.lifecycle.RunnerLifecycle` an mmengine hook, so
observer plugins see detection runs. ``backend_args=dict(backend='kdhub_atomic')`` on the CheckpointHook
writes checkpoints through :func:`kdhub.checkpoint.atomic_write_bytes`: an interrupted save leaves the
previous file, never half of a new one.
"""
from __future__ import annotations

import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from mmdet.registry import HOOKS

from kdhub.checkpoint import atomic_write_bytes
from kdhub.lifecycle import RunnerLifecycle

ATOMIC_BACKEND = "kdhub_atomic"


@HOOKS.register_module()
class KDHubLifecycleHook(RunnerLifecycle, Hook):
    """Reports the run to kdhub's lifecycle hooks and keeps every RNG's state in checkpoints."""


class AtomicLocalBackend(LocalBackend):
    """LocalBackend whose ``put`` renames a complete temporary file into place."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(filepath, obj)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@MODEL_WRAPPERS.register_module()
class KDHubDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also runs on CPU processes (gloo): mmengine passes ``device_ids`` =
    [LOCAL_RANK], which DistributedDataParallel refuses for CPU modules."""

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available():
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
