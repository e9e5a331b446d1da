"""The ``device`` key of a graph or speech config: which device a run trains and infers on.

One convention for the domains that choose their device themselves, the one mmengine follows for the mm
plugins: ``auto`` (the default) is CUDA when this process sees a CUDA device and the CPU otherwise; ``cpu``, ``cuda`` and
``cuda:N`` ask for one device, and a CUDA device that is not there is refused before anything is written.
Under torchrun (``--launcher pytorch``, and ``slurm`` or ``mpi``, whose task variables the core turns into
torchrun's) every rank uses the GPU of its ``LOCAL_RANK``, the GPU the core made current when it joined the
process group, so ``cuda`` and ``auto`` need no index there, and a ``cuda:N`` naming another GPU than the
rank's own is refused (choose GPUs with ``CUDA_VISIBLE_DEVICES``).
"""
from __future__ import annotations

import os
import re

import torch

from . import dist
from .config import ConfigError

FORMS = "auto, cpu, cuda or cuda:N"
_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, source: str) -> str:
    """``name`` if it is one of the accepted forms, else a ConfigError naming the file and the key."""
    if not isinstance(name, str) or not _PATTERN.fullmatch(name):
        raise ConfigError(f"{source}: key 'device': {name!r} is not a device; valid choices: {FORMS} "
                          f"(auto: CUDA when available, else the CPU)")
    return name


def resolve_device(name: str, source: str) -> torch.device:
    """The device a run named ``name`` (see the module docstring) uses in this process."""
    check_device_name(name, source)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"{source}: key 'device' is {name!r} but no CUDA device is available to this process "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); set "
                          f"device=cpu, or device=auto to use CUDA only where it is present")
    launched = dist.is_distributed() and "LOCAL_RANK" in os.environ
    own = int(os.environ["LOCAL_RANK"]) if launched else None
    index = int(name.split(":")[1]) if ":" in name else (own if own is not None else torch.cuda.current_device())
    if index >= count:
        raise ConfigError(f"{source}: key 'device' is {name!r} but this process sees {count} CUDA device(s) "
                          f"(cuda:0 to cuda:{count - 1}); name one of them, or set device=cuda or auto")
    if own is not None and index != own:
        raise ConfigError(f"{source}: key 'device' is {name!r}, but under torchrun each rank uses the GPU of its "
                          f"LOCAL_RANK (this rank: cuda:{own}); set device=cuda or auto and choose the GPUs with "
                          f"CUDA_VISIBLE_DEVICES")
    return torch.device("cuda", index)
