"""The Task interface: what a domain plugin registers so the launcher can train, evaluate and demo it."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import tensorboard
from .checkpoint import atomic_write_text
from .config import LoadedConfig
from .logs import launch_rank, run_log
from .runs import check_work_dir


@dataclass
class ModelResult:
    """One row of a demo's comparison: a model, its metric, size and latency."""

    role: str  # teacher / baseline / distilled (or a method name)
    metric: float
    params: int
    latency_ms: Optional[float] = None
    std: Optional[float] = None


@dataclass
class DemoResult:
    """What a domain's demo returns for the terminal table and the report."""

    domain: str
    title: str
    metric_name: str
    rows: List[ModelResult]
    notes: List[str] = field(default_factory=list)


class Task(ABC):
    """Base class of a registered task (its name and domain are the ones it is registered under).

    ``train`` and ``evaluate`` receive the config as the plugin's own loader returned it; ``demo`` runs
    the domain's main job on its embedded data set. A domain on the core pipeline sets ``run_class``: its
    run of one ``kdhub train`` (a :class:`kdhub.pipeline.Stages` with ``run()``), built from ``(loaded,
    work_dir, resume, launcher)`` without writing anything. ``train`` checks the work dir (writable; without
    ``--resume``, holding no run) and calls the run's ``check()`` before its ``run()``, so bad input fails before
    any file is written. Then, on the main process,
    the run logs to ``work_dir/train.log`` and leaves a copy of its resolved config (:meth:`dump_config`).
    """

    run_class: Optional[type] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.run_class is None and cls.train is Task.train:
            raise TypeError(f"{cls.__qualname__} must set run_class (its kdhub train run) or override train()")

    def train(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False,
              launcher: str = "none", amp: bool = False) -> Dict[str, Any]:
        """Train and return the run summary (also written to ``work_dir/summary.json``); ``amp`` asks for
        mixed precision (``kdhub train --amp``), which each domain maps to its framework's own form."""
        tensorboard.check()
        check_work_dir(work_dir)
        run = self.run_class(loaded, work_dir, resume, launcher)
        run.amp = amp
        run.check()
        if not resume:
            from .pipeline import refuse_existing_run  # here: the pipeline module imports this one
            refuse_existing_run(work_dir, run)
        with run_log(work_dir):
            if launch_rank() == 0:
                self.dump_config(loaded, work_dir)
            return run.run()

    def dump_config(self, loaded: LoadedConfig, work_dir: Path) -> None:
        """Keep the resolved config (``--cfg-options`` applied) in ``work_dir``, so a run says what it ran.
        Default: ``config.json`` for a config loaded as a plain dict; a domain whose native format the
        framework itself dumps (mmengine's Runner, SpeechBrain's ``hyperparams.yaml``) overrides this."""
        if isinstance(loaded.cfg, dict):
            atomic_write_text(Path(work_dir) / "config.json", json.dumps(loaded.cfg, indent=2, default=str) + "\n")

    @abstractmethod
    def evaluate(self, loaded: LoadedConfig, checkpoint: Path) -> Dict[str, float]:
        """Metrics of the student stored in ``checkpoint`` on the config's evaluation data."""

    @property
    def has_demo(self) -> bool:
        """Whether this task's class defines a demo (``kdhub demo`` lists only those)."""
        return type(self).demo is not Task.demo

    def demo(self, work_dir: Path) -> Optional[DemoResult]:
        """Teacher, baseline student and distilled student on the embedded data; None if no demo."""
        return None
