"""Import this module to register kdhub's mmengine pieces in mmengine's root registries: the
``KDHubLifecycleHook`` hook, the ``KDHubDDP`` model wrapper and the ``kdhub_atomic`` file backend.

A registry of a child scope (``mmdet``, ``mmseg``) looks a name up in its parents when it does not hold it,
so one registration here serves every OpenMMLab library.
"""
from . import ddp, fileio, hooks  # noqa: F401
