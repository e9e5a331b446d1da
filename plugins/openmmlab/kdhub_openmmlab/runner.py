"""Loaded mmengine configs completed for a Runner the way every kdhub mm run needs them."""
from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Iterable, Optional

import torch

from kdhub.config import ConfigError
from kdhub.dist import backend_for

from .fileio import BACKEND

_RUNS = itertools.count()


def run_name(role: str) -> str:
    """A run name unique in this process and the same on every rank (each rank makes the same runs in the
    same order): mmengine keys its loggers and visualizers by experiment name."""
    return f"{role}_{next(_RUNS)}"


def _section(cfg, key: str):
    """``cfg[key]``, created empty when missing, as the object ``cfg`` holds: a ``setdefault`` on an mmengine
    config returns a converted copy, so changes made to it would be lost."""
    if cfg.get(key) is None:
        cfg[key] = {}
    return cfg[key]


def _name(cfg, experiment_name: str) -> None:
    """Name the run, and its visualizer after it: mmengine keeps one visualizer per name in the process, so a
    second Runner whose config names the same visualizer (mmdet's configs say ``name='visualizer'``) would
    write into the first one's (perhaps deleted) log folder."""
    cfg.experiment_name = experiment_name
    if isinstance(cfg.get("visualizer"), dict):
        cfg.visualizer["name"] = experiment_name


def _distributed(cfg, launcher: str, find_unused_parameters: bool) -> None:
    """The process group's backend kdhub uses (gloo without CUDA; with CUDA, gloo for CPU tensors beside
    mmengine's default NCCL, for a group mmengine starts itself, e.g. under ``--launcher slurm``), and kdhub's DDP
    wrapper (which also wraps CPU models) for launched runs."""
    dist_cfg = _section(_section(cfg, "env_cfg"), "dist_cfg")
    if not torch.cuda.is_available():
        dist_cfg["backend"] = "gloo"
    elif dist_cfg.get("backend", "nccl") == "nccl":
        dist_cfg["backend"] = backend_for(True)
    if launcher != "none" and "model_wrapper_cfg" not in cfg:
        cfg.model_wrapper_cfg = dict(type="KDHubDDP", broadcast_buffers=False,
                                     find_unused_parameters=cfg.get("find_unused_parameters", find_unused_parameters))


def unformatted(cfg):
    """``cfg`` with yapf formatting of its text switched off. A Runner renders its config as text three times
    (the copy in the work dir, the log, and every checkpoint's ``meta.cfg``), and mmengine passes each through
    yapf, which takes seconds for a full COCO config; the unformatted text is the same valid Python config."""
    object.__setattr__(cfg, "_format_python_code", False)
    return cfg


def runner_config(cfg, work_dir: Path, *, task: str, method: str, config_path: Optional[Path] = None,
                  resume: bool = False, launcher: str = "none", role: str = "student",
                  experiment_name: Optional[str] = None, default_scope: Optional[str] = None,
                  extra_hooks: Iterable[dict] = (), find_unused_parameters: bool = False, amp: bool = False):
    """A copy of ``cfg`` ready for ``Runner.from_cfg``: work dir and launcher set; resume from the work dir's
    last checkpoint when asked and one exists (``load_from`` then ignored); kdhub's lifecycle hook (plus
    ``extra_hooks``) added; checkpoints written through the atomic backend; gloo and the CPU-capable DDP
    wrapper without CUDA. ``find_unused_parameters`` is the wrapper's default when the config sets none;
    ``experiment_name`` defaults to :func:`run_name` of ``role``; ``amp`` switches the optimiser wrapper to
    mmengine's ``AmpOptimWrapper`` with a dynamic loss scale, as ``--amp`` does in mmdet's and mmseg's own
    ``tools/train.py``."""
    from . import register  # noqa: F401  (the hook, backend and wrapper the config names)

    work_dir = Path(work_dir)
    cfg = unformatted(copy.deepcopy(cfg))
    cfg.work_dir = str(work_dir)
    cfg.launcher = launcher
    cfg.resume = bool(resume and (work_dir / "last_checkpoint").is_file())
    if cfg.resume:
        cfg.load_from = None
    _name(cfg, experiment_name or run_name(role))
    if default_scope:
        cfg.setdefault("default_scope", default_scope)
    hooks = _section(cfg, "default_hooks")
    if "checkpoint" not in hooks:
        hooks["checkpoint"] = dict(type="CheckpointHook", interval=1)
    if isinstance(hooks.get("logger"), dict) and hooks["logger"].get("type") == "LoggerHook":
        hooks["logger"]["type"] = "KDHubLoggerHook"  # the test metrics' JSON from rank 0 only
    checkpoint = hooks["checkpoint"]
    if checkpoint is not None and not checkpoint.get("backend_args"):
        checkpoint["backend_args"] = dict(backend=BACKEND)
    cfg.custom_hooks = list(cfg.get("custom_hooks") or []) + [
        dict(type="KDHubLifecycleHook", task=task, method=method, role=role,
             config_path=str(config_path) if config_path else None)] + list(extra_hooks)
    _distributed(cfg, launcher, find_unused_parameters)
    if amp:
        wrapper = _section(cfg, "optim_wrapper")
        if wrapper.get("type", "OptimWrapper") not in ("OptimWrapper", "AmpOptimWrapper"):
            raise ConfigError(f"--amp: optim_wrapper.type is {wrapper['type']!r}; AMP replaces only OptimWrapper")
        if wrapper.get("type") != "AmpOptimWrapper":
            wrapper["type"] = "AmpOptimWrapper"
            wrapper["loss_scale"] = "dynamic"
    return cfg


def check_amp(amp: bool, key: str = "--amp") -> None:
    """mmengine's AmpOptimWrapper runs on an accelerator only: refuse ``--amp`` up front without CUDA."""
    if amp and not torch.cuda.is_available():
        raise ConfigError(f"{key}: mixed precision of the OpenMMLab domains (mmengine's AmpOptimWrapper) needs a "
                          f"CUDA device, and none is available; run without --amp")


def eval_config(cfg, work_dir: Path, *, launcher: str = "none", load_from: Optional[str] = None,
                experiment_name: Optional[str] = None, default_scope: Optional[str] = None):
    """A copy of ``cfg`` for a test-only Runner in ``work_dir`` (a scratch folder): no resume, no
    checkpoint saving, weights from ``load_from`` (or loaded by the caller), gloo and DDP without CUDA. It logs
    warnings only: its environment and config dump and progress lines (hundreds of lines per test) would bury the
    metrics kdhub reports, and its log file goes with the scratch folder."""
    from . import register  # noqa: F401

    cfg = unformatted(copy.deepcopy(cfg))
    cfg.log_level = "WARNING"
    cfg.work_dir = str(work_dir)
    cfg.launcher = launcher
    cfg.load_from = load_from
    cfg.resume = False
    _name(cfg, experiment_name or run_name("eval"))
    if default_scope:
        cfg.setdefault("default_scope", default_scope)
    cfg.default_hooks = {k: v for k, v in (cfg.get("default_hooks") or {}).items() if k != "checkpoint"}
    _distributed(cfg, launcher, False)
    return cfg
