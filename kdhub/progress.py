"""A dependency-free progress bar for long work (training epochs, demo stages).

Draws in place on a terminal; on a pipe or log file it prints a line at most every 10% so logs stay
readable. ``KDHUB_PROGRESS=0`` silences it.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Iterator, Optional, Sequence, TypeVar

T = TypeVar("T")


def is_enabled() -> bool:
    """False when ``KDHUB_PROGRESS=0`` asks for quiet output."""
    return os.environ.get("KDHUB_PROGRESS", "1") != "0"


class Progress:
    def __init__(self, total: int, desc: str = "", stream=None, enabled: Optional[bool] = None):
        self.total, self.desc, self.n = max(int(total), 1), desc, 0
        self.stream = stream or sys.stderr
        self.enabled = is_enabled() and (enabled is None or enabled)
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.postfix = ""
        self._last_decile = -1

    def update(self, n: int = 1, postfix: str = "") -> None:
        self.n = min(self.n + n, self.total)
        if postfix:
            self.postfix = postfix
        if not self.enabled:
            return
        decile = (10 * self.n) // self.total
        if self.tty:
            self._draw("\r")
        elif decile != self._last_decile:
            self._draw("")
            self.stream.write("\n")
        self._last_decile = decile

    def _draw(self, prefix: str) -> None:
        frac = self.n / self.total
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        self.stream.write(f"{prefix}{self.desc} [{bar}] {self.n}/{self.total} "
                          f"{elapsed:.0f}s<{eta:.0f}s {self.postfix}".rstrip())
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def track(items: Sequence[T], desc: str, enabled: Optional[bool] = None) -> Iterator[T]:
    """``items`` one by one, with a :class:`Progress` bar over them (for loops such as data generation)."""
    bar = Progress(len(items), desc, enabled=enabled)
    for item in items:
        yield item
        bar.update(1)
    bar.close()
