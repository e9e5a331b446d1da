"""Minimal distributed helpers for plain PyTorch loops (mmengine and SpeechBrain bring their own)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

LAUNCHERS = ("none", "pytorch")


class LaunchError(RuntimeError):
    """The process was not started the way the chosen launcher needs; the message says how to start it."""


def init_distributed(launcher: str = "none") -> bool:
    """Join the process group set up by ``torchrun`` when ``launcher == 'pytorch'``.

    The group's backend is :func:`backend_for` this machine. Returns whether the run is distributed.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; valid choices: {', '.join(LAUNCHERS)}")
    if launcher == "none":
        return False
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise LaunchError("--launcher pytorch needs the environment torchrun sets (RANK, WORLD_SIZE...); "
                           "start with: torchrun --nproc_per_node N -m kdhub train CONFIG --launcher pytorch")
    if not dist.is_initialized():
        backend = backend_for(torch.cuda.is_available())
        if "nccl" in backend:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return True


def backend_for(cuda: bool) -> str:
    """The process group's backend: gloo for CPU tensors always, NCCL for CUDA tensors when there is CUDA.

    One group serves both: small control values (:func:`all_ranks_true`, :func:`gather_objects`, mmengine's
    and SpeechBrain's bookkeeping) stay CPU tensors, which NCCL alone refuses, while DDP's gradients on
    the GPU go through NCCL.
    """
    return "cpu:gloo,cuda:nccl" if cuda else "gloo"


def shutdown(ok: bool = True) -> None:
    """Leave the process group at the end of a run (whoever created it: kdhub, mmengine or SpeechBrain).

    A gloo group left to the interpreter's exit can abort the process ("terminate called without an
    active exception") after the work is done; ``ok`` ranks first wait for each other so none tears the
    group down while another still uses it. After an error the group is destroyed without waiting.
    """
    if not is_distributed():
        return
    if ok:
        dist.barrier()
    dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_ranks_true(flag: bool) -> bool:
    """True only if ``flag`` is true on every rank (so all ranks take the same branch)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather_objects(obj):
    """``obj`` from every rank, in rank order (a one-element list when not distributed)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
