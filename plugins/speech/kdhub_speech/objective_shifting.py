"""Objective shifting (Chen et al., Interspeech 2021): the weight moves from distillation to separation.

The training loss is ``(1 - alpha) * L_separation + alpha * L_distillation``; ``alpha`` goes from
``start`` to ``end`` over the first ``until`` fraction of training (linearly or along a cosine) and stays
at ``end`` afterwards. ``start == end`` gives a fixed mix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ObjectiveShifting:
    start: float = 1.0
    end: float = 0.0
    until: float = 1.0
    shape: str = "linear"

    def __post_init__(self):
        for name in ("start", "end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"objective shifting {name} must be in [0, 1], got {getattr(self, name)}")
        if self.until <= 0:
            raise ValueError(f"objective shifting 'until' must be > 0, got {self.until}")
        if self.shape not in ("linear", "cosine"):
            raise ValueError(f"objective shifting shape must be linear or cosine, got {self.shape!r}")

    def alpha(self, progress: float) -> float:
        """Distillation weight at ``progress`` (0 = start of training, 1 = end)."""
        t = min(1.0, max(0.0, progress) / self.until)
        if self.shape == "cosine":
            t = 0.5 - 0.5 * math.cos(math.pi * t)
        return self.start + (self.end - self.start) * t
