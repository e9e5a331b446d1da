"""Wall-clock timing for demos and benchmarks: the median of repeated runs after a warm-up.

CUDA work is queued, not done, when a call returns, so each timed call is bracketed by a synchronisation:
the time is that of the work itself, not of launching it."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch


def synchronize() -> None:
    """Wait for the queued work of the current CUDA device (nothing to do without CUDA)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        synchronize()
        t0 = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
