"""Run directories: checkpoints, ``summary.json`` and the lifecycle hook calls every engine shares.

A domain engine (core Trainer, an mmengine Hook, a SpeechBrain Brain) holds a :class:`RunContext` and
reports through it; the context forwards to the plugins' lifecycle hooks on the main process only, so
observer plugins work the same for every domain. Each observer is called on its own: one that raises is
reported and switched off, and the run goes on (:meth:`kdhub.plugins.Plugins.notify`).
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

import torch

from . import dist
from .checkpoint import atomic_write_text
from .config import ConfigError
from .logs import RUN, format_metrics

if TYPE_CHECKING:
    from .plugins import Plugins

SUMMARY_FILE = "summary.json"
LAST_CHECKPOINT_FILE = "last_checkpoint"
log = logging.getLogger(RUN)  # train.log only: the lines of what observers are told


@dataclass
class RunInfo:
    """What observers learn about a run."""

    task: str
    method: str
    work_dir: Path
    config_path: Optional[Path] = None
    rank: int = 0
    world_size: int = 1
    extra: Dict[str, Any] = field(default_factory=dict)
    #: the model this run trains: ``teacher``, ``baseline`` or ``student``
    role: str = "student"


def check_work_dir(work_dir: Path) -> None:
    """Refuse a work dir that cannot be written, before a run writes anything: the folder itself if it exists,
    else the nearest existing folder above it, must accept a new file. The probe really creates (and removes)
    one, since permission bits do not tell for root, read-only mounts or immutable folders."""
    target = Path(work_dir).absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"--work-dir {work_dir}: {existing} is a file, not a folder; choose another --work-dir")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".kdhub-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--work-dir {work_dir}: {existing} is not writable ({exc.strerror}); choose another "
                          f"--work-dir or make it writable") from None


def plain(value: Any) -> Any:
    """JSON-friendly copy: tensors and numpy scalars become floats, paths strings."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


class RunContext:
    """A run's work dir plus the hook calls of its lifecycle."""

    def __init__(self, info: RunInfo, plugins: Optional["Plugins"] = None):
        """``plugins`` defaults to the process-wide plugin set."""
        self.info = info
        self.work_dir = Path(info.work_dir)
        if plugins is None:
            from .plugins import get_plugins
            plugins = get_plugins()
        self.plugins = plugins
        self.started = time.perf_counter()
        if dist.is_main():
            self.work_dir.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def main(self) -> bool:
        return dist.is_main()

    @property
    def label(self) -> str:
        """How log lines name this run: its work dir's folder (``teacher``, ``student``, a seed ...)."""
        return self.work_dir.name

    def start(self) -> None:
        if self.main:
            log.info(f"[{self.label}] {self.info.task} {self.info.method} run in {self.work_dir}")
            self.plugins.notify("kdhub_run_start", run=self.info)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Training metrics at optimisation step ``step``: one line in ``train.log`` and the same values to the
        lifecycle hooks."""
        if self.main:
            metrics = plain(dict(metrics))
            log.info(f"[{self.label}] step {int(step)}: {format_metrics(metrics)}")
            self.plugins.notify("kdhub_metrics_logged", run=self.info, step=int(step), metrics=metrics)

    def evaluation_done(self, role: str, step: int, metrics: Mapping[str, float]) -> None:
        if self.main:
            metrics = plain(dict(metrics))
            log.info(f"[{self.label}] {role} evaluation at step {int(step)}: {format_metrics(metrics)}")
            self.plugins.notify("kdhub_evaluation_done", run=self.info, role=role, step=int(step), metrics=metrics)

    def checkpoint_saved(self, step: int, path: Path, record: bool = True) -> None:
        """Record ``path`` as the latest checkpoint (atomically) and tell observers. Engines that keep
        their own record of the latest checkpoint (mmengine's ``last_checkpoint``) pass ``record=False``."""
        if self.main:
            if record:
                rel = Path(path).resolve().relative_to(self.work_dir.resolve())  # survives moving the work dir
                atomic_write_text(self.work_dir / LAST_CHECKPOINT_FILE, str(rel) + "\n")
            log.debug(f"[{self.label}] checkpoint at step {int(step)}: {path}")
            self.plugins.notify("kdhub_checkpoint_saved", run=self.info, step=int(step), path=Path(path))

    def latest_checkpoint(self) -> Optional[Path]:
        """The checkpoint ``--resume`` continues from, or None when the work dir has none."""
        marker = self.work_dir / LAST_CHECKPOINT_FILE
        if marker.is_file():
            p = self.work_dir / marker.read_text().strip()
            if p.is_file():
                return p
        found = sorted((int(q.stem[len("epoch_"):]), q) for q in self.checkpoint_dir.glob("epoch_*.pth")
                       if q.stem[len("epoch_"):].isdigit())  # a user's epoch_final.pth is not one of the run's
        return found[-1][1] if found else None

    def finish(self, *, teacher: Mapping[str, float], student: Mapping[str, float],
               params: Mapping[str, int], student_checkpoint: Optional[Path],
               baseline: Optional[Mapping[str, float]] = None, **extra: Any) -> Dict[str, Any]:
        """Write ``summary.json`` (atomically) and call the run-end hooks; returns the summary."""
        summary: Dict[str, Any] = {
            "task": self.info.task,
            "method": self.info.method,
            "world_size": self.info.world_size,
            "teacher": dict(teacher),
            "student": dict(student),
        }
        if baseline is not None:
            summary["baseline"] = dict(baseline)
        summary["params"] = dict(params)
        summary["student_checkpoint"] = str(student_checkpoint) if student_checkpoint else None
        summary["wall_time_s"] = round(time.perf_counter() - self.started, 3)
        summary.update(cuda_usage())
        summary.update(extra)
        summary = plain(summary)
        if self.main:
            atomic_write_text(self.work_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        return self.end(summary)

    def end(self, result: Mapping[str, Any]) -> Dict[str, Any]:
        """Call the run-end hooks with ``result`` (sub-runs use this without writing summary.json)."""
        result = plain(dict(result))
        if self.main:
            self.plugins.notify("kdhub_run_end", run=self.info, summary=result)
        return result


def cuda_usage() -> Dict[str, Any]:
    """``{"cuda": {device, peak memory}}`` when this process ran work on a GPU (nothing otherwise), so a
    summary shows where its run trained: rank 0's device and the most memory it held at once."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return {}
    index = torch.cuda.current_device()
    return {"cuda": {"device": torch.cuda.get_device_name(index),
                     "max_memory_allocated_mib": round(torch.cuda.max_memory_allocated(index) / 2 ** 20, 1)}}
