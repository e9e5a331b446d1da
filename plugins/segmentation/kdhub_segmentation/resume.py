"""Exact, ``weights_only``-safe resume of mmengine runs.

Two gaps of mmengine 0.10 with torch 2.11, closed by ``ExactResumeHook``:

* mmengine pickles its MessageHub (HistoryBuffer objects holding numpy arrays) into every training
  checkpoint, and ``torch.load`` refuses those by default since torch 2.6, so mmengine's own resume
  fails. The hook stores the message hub as tensors and plain values when a checkpoint is saved and
  rebuilds the HistoryBuffers when one is loaded: checkpoints load with ``weights_only=True`` (nothing
  allow-listed, nothing executed) in mmengine, mmseg and kdhub alike.
* mmengine re-seeds and replays the data loader on resume (so data order and numpy-driven augmentation
  continue exactly) but not the torch RNG that dropout and drop-path draw from, whose state also
  depends on everything else that drew from it (a validation loader's worker seed, say). The hook
  seeds torch's RNG at the start of every training iteration from (run seed, iteration), so the random
  draws of an iteration are the same whether or not the run was interrupted before it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmseg.registry import HOOKS

PLAIN_BUFFER = "__kdhub_history_buffer__"


def to_plain(value: Any) -> Any:
    """numpy arrays -> tensors, numpy scalars -> Python numbers, HistoryBuffers -> tagged dicts."""
    if isinstance(value, HistoryBuffer):
        return {PLAIN_BUFFER: True, "max_length": int(value.max_length),
                "log_history": torch.from_numpy(np.asarray(value._log_history, dtype=np.float64)),
                "count_history": torch.from_numpy(np.asarray(value._count_history, dtype=np.int64))}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, to_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def from_plain(value: Any) -> Any:
    """The inverse of :func:`to_plain` for the message hub's HistoryBuffers."""
    if isinstance(value, dict) and value.get(PLAIN_BUFFER):
        return HistoryBuffer(value["log_history"].numpy().tolist(), value["count_history"].numpy().tolist(),
                             value["max_length"])
    if isinstance(value, dict):
        return type(value)((k, from_plain(v)) for k, v in value.items())
    return value


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Plain (``weights_only``-loadable) checkpoints and per-iteration torch seeding (module docstring)."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ("message_hub", "meta"):
            if key in checkpoint:
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = from_plain(checkpoint["message_hub"])

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        seed = runner.seed if runner.seed is not None else 0
        torch.manual_seed((seed * 1_000_003 + runner.iter) % (2 ** 63))
