"""Minimal distributed helpers for plain PyTorch loops (mmengine and SpeechBrain bring their own)."""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as dist

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
#: what each scheduler launcher reads (rank, world size, local rank), as mmengine's launchers read it
SCHEDULER_ENV = {"slurm": ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
                 "mpi": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK")}
HOW = {"pytorch": "torchrun --nproc_per_node N -m kdhub train CONFIG --launcher pytorch",
       "slurm": "srun --ntasks N kdhub train CONFIG --launcher slurm (one task per GPU)",
       "mpi": "mpirun -np N -x MASTER_ADDR=HOST kdhub train CONFIG --launcher mpi"}


class LaunchError(RuntimeError):
    """The process was not started the way the chosen launcher needs; the message says how to start it."""


def init_distributed(launcher: str = "none") -> bool:
    """Join the process group of a launched run: ``pytorch`` under ``torchrun``, ``slurm`` under ``srun`` and
    ``mpi`` under ``mpirun``.

    A scheduler's variables are first translated into torchrun's (:func:`scheduler_env`), the way mmengine's
    slurm and mpi launchers translate them, so every domain, its engine (mmengine, SpeechBrain) and DDP see
    one kind of run. The group's backend is :func:`backend_for` this machine. Returns whether the run is
    distributed.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; valid choices: {', '.join(LAUNCHERS)}")
    if launcher == "none":
        return False
    if launcher in SCHEDULER_ENV:
        os.environ.update(scheduler_env(launcher, os.environ))
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise LaunchError(f"--launcher pytorch needs the environment torchrun sets (RANK, WORLD_SIZE...); "
                          f"start with: {HOW['pytorch']}")
    if not dist.is_initialized():
        backend = backend_for(torch.cuda.is_available())
        if "nccl" in backend:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return True


def scheduler_env(launcher: str, env) -> dict:
    """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) from a Slurm or Open MPI
    task's own: Slurm's first host of ``SLURM_NODELIST`` (``scontrol show hostname``) is the master unless
    ``MASTER_ADDR`` is set; MPI needs ``MASTER_ADDR``; the port defaults to 29500 as in torch and mmengine."""
    rank, size, local = SCHEDULER_ENV[launcher]
    missing = [k for k in (rank, size) if k not in env]
    if missing:
        raise LaunchError(f"--launcher {launcher} needs the environment its scheduler sets ({', '.join(missing)} "
                          f"missing); start with: {HOW[launcher]}")
    out = {"RANK": env[rank], "WORLD_SIZE": env[size], "LOCAL_RANK": env.get(local, "0"),
           "MASTER_PORT": env.get("MASTER_PORT", "29500")}
    addr = env.get("MASTER_ADDR")
    if not addr and launcher == "slurm" and env.get("SLURM_NODELIST"):
        try:
            addr = subprocess.run(["scontrol", "show", "hostname", env["SLURM_NODELIST"]], capture_output=True,
                                  text=True).stdout.split("\n")[0].strip()
        except OSError:  # no scontrol on this machine: MASTER_ADDR must say it
            addr = None
    if not addr:
        raise LaunchError(f"--launcher {launcher}: set MASTER_ADDR to the host of rank 0 (and MASTER_PORT, default "
                          f"29500); start with: {HOW[launcher]}")
    out["MASTER_ADDR"] = addr
    return out


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
