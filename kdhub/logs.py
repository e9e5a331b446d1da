"""One logging setup for every domain: Python ``logging`` to the console and to ``work_dir/train.log``.

Everything kdhub and its plugins report goes through the ``kdhub`` logger (``get_logger("speech")`` is
``kdhub.speech``). The launcher shows INFO records on the console (:func:`setup_console`); while a run is
active (:func:`run_log`), the main process also writes every record to its ``train.log``. That includes what
:class:`kdhub.runs.RunContext` hands to the lifecycle hooks (run start, per-step metrics, evaluations,
checkpoints), logged on ``kdhub.run`` with the same values the observers get. ``kdhub.run`` stays off the
console, where progress bars and the frameworks' own loggers already show training.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator, Mapping, Optional

ROOT = "kdhub"
RUN = "kdhub.run"
LOG_FILE = "train.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONSOLE_MARK = "_kdhub_console"
_once: set = set()


def get_logger(name: Optional[str] = None) -> logging.Logger:
    """The ``kdhub`` logger, or its child ``kdhub.<name>`` (a plugin's own)."""
    return logging.getLogger(f"{ROOT}.{name}" if name else ROOT)


def _not_run(record: logging.LogRecord) -> bool:
    return not record.name.startswith(RUN)


class _Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is emitted (not when the handler was made), so
    output redirected later (a test's capture, a wrapper script) still receives it."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_console(verbose: bool = False) -> None:
    """Show kdhub's records on stderr (INFO; DEBUG with ``verbose``), once per process. The launcher calls it;
    a program that embeds kdhub configures logging itself, as for any library."""
    logger = get_logger()
    logger.setLevel(logging.DEBUG)
    if any(getattr(h, _CONSOLE_MARK, False) for h in logger.handlers):
        return
    handler = _Stderr()
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler.setFormatter(logging.Formatter("kdhub: %(message)s"))
    handler.addFilter(_not_run)
    setattr(handler, _CONSOLE_MARK, True)
    logger.addHandler(handler)
    logger.propagate = False


def launch_rank() -> int:
    """This process's rank, also before its process group exists: torchrun's ``RANK``, else Slurm's or MPI's own
    variable (the launcher translates them later), else 0."""
    from . import dist
    if dist.is_distributed():
        return dist.rank()
    for var in ("RANK",) + tuple(v[0] for v in dist.SCHEDULER_ENV.values()):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


@contextlib.contextmanager
def run_log(work_dir: Path) -> Iterator[Optional[Path]]:
    """Write every kdhub record to ``work_dir/train.log`` (appended, so a resumed run continues the same file)
    while the block runs; on the main process only, so no two ranks write one file. Yields the log's path
    (None on other ranks)."""
    logger = get_logger()
    if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
        logger.setLevel(logging.DEBUG)  # the file keeps everything; the console handler filters by its own level
    if launch_rank() != 0:
        yield None
        return
    path = Path(work_dir) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()


def log_once(logger: logging.Logger, key: str, message: str, level: int = logging.INFO) -> None:
    """``message`` on the logger the first time ``key`` is seen in this process, later ones at DEBUG only: a
    notice that every sub-run of a demo would repeat (e.g. a fresh ``--resume``) is shown once on the console
    and still recorded in each ``train.log``."""
    logger.log(level if key not in _once else logging.DEBUG, message)
    _once.add(key)


def format_metrics(metrics: Mapping[str, float], sep: str = " ") -> str:
    """``k=v`` pairs joined by ``sep``, floats to 4 significant digits."""
    return sep.join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
