"""The built-in TensorBoard observer: any domain's run as event files, from the lifecycle hooks alone.

Switched on by ``kdhub train --tensorboard`` or ``KDHUB_TENSORBOARD=1``. Each run (and each sub-run: teacher,
baseline, student) writes ``<its work dir>/tensorboard/``, so ``tensorboard --logdir WORK_DIR`` shows them
side by side: ``train/<name>`` for every per-step metric a domain logs (the total loss, each distillation
term, the learning rate) and ``eval/<role>/<metric>`` for evaluations by role. It sees only what the hooks
carry, so it works unchanged for mmengine, SpeechBrain and the core Trainer, and for third-party domains.
tensorboard is an optional extra (``pip install 'kdhub[tensorboard]'``); nothing is imported while it is off.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
from pathlib import Path
from typing import Any, Dict, Mapping

from .config import ConfigError
from .hookspecs import hookimpl

ENV = "KDHUB_TENSORBOARD"
FOLDER = "tensorboard"
INSTALL = "pip install 'kdhub[tensorboard]' (or pip install tensorboard)"
_writers: Dict[Path, Any] = {}


def enabled() -> bool:
    return os.environ.get(ENV, "0").lower() not in ("", "0", "false", "no")


def check() -> None:
    """Refuse, before a run starts, to observe it without the tensorboard package."""
    if enabled() and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"--tensorboard ({ENV}=1) needs the tensorboard package, which is not installed: {INSTALL}")


def _writer(run) -> Any:
    key = Path(run.work_dir).absolute()
    if key not in _writers:
        from torch.utils.tensorboard import SummaryWriter
        if not _writers:
            atexit.register(close_all)
        _writers[key] = SummaryWriter(log_dir=str(key / FOLDER), flush_secs=10)
    return _writers[key]


def close_all() -> None:
    """Flush and close every open writer: a run whose engine reports no end (or a process leaving early) keeps
    its last scalars. Called at exit, and by the launcher before a launched worker leaves with ``os._exit``."""
    while _writers:
        _writers.popitem()[1].close()


def _scalars(writer, prefix: str, step: int, metrics: Mapping[str, Any]) -> None:
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(f"{prefix}/{name}", float(value), step)


@hookimpl
def kdhub_run_start(run) -> None:
    if enabled():
        _writer(run)


@hookimpl
def kdhub_metrics_logged(run, step: int, metrics: Mapping[str, float]) -> None:
    if enabled():
        _scalars(_writer(run), "train", step, metrics)


@hookimpl
def kdhub_evaluation_done(run, role: str, step: int, metrics: Mapping[str, float]) -> None:
    if enabled():
        writer = _writer(run)
        _scalars(writer, f"eval/{role}", step, metrics)
        writer.flush()


@hookimpl
def kdhub_run_end(run, summary: Dict[str, Any]) -> None:
    writer = _writers.pop(Path(run.work_dir).absolute(), None)
    if writer is not None:
        writer.close()
