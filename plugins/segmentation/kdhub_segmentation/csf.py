"""CSF, Cross Selective Fusion (TransKD): fuses each student stage with the fused deeper stages.

Stages are processed deepest to shallowest. For stage i the student feature is reduced to ``mid``
channels, x_i = BN(Conv1x1(F_S_i)). Below the deepest stage, the fused result of stage i+1 is upsampled
(nearest) to y; a selective-kernel style gate picks per channel how much of x_i and of y to keep:
U = x_i + y, z = ReLU(BN(Conv1x1(GAP(U)))), [a, b] = softmax over the two branches of Conv1x1(z),
x_i = a * x_i + b * y. The fused x_i is passed on to stage i-1, and S_hat_i = BN(Conv3x3(x_i)) with the
teacher's width is what the HCL loss compares with F_T_i.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossSelectiveFusion(nn.Module):
    """One stage of CSF: ``forward(f_s, deeper)`` returns (S_hat, fused) where ``deeper`` is the fused
    map of the next deeper stage (None for the deepest)."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int = 64, squeeze_channels: int = 32,
                 fuse: bool = True):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
        self.fuse = fuse
        if fuse:
            self.squeeze = nn.Sequential(nn.Conv2d(mid_channels, squeeze_channels, 1, bias=False),
                                         nn.BatchNorm2d(squeeze_channels), nn.ReLU(inplace=True))
            self.select = nn.Conv2d(squeeze_channels, 2 * mid_channels, 1)
        self.project = nn.Sequential(nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
                                     nn.BatchNorm2d(out_channels))
        self.mid_channels = mid_channels

    def forward(self, f_s: Tensor, deeper: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        x = self.reduce(f_s)
        if self.fuse:
            if deeper is None:
                raise ValueError("a fusing CSF stage needs the fused map of the deeper stage")
            y = F.interpolate(deeper, size=x.shape[-2:], mode="nearest")
            z = self.squeeze(F.adaptive_avg_pool2d(x + y, 1))
            weights = self.select(z).view(x.shape[0], 2, self.mid_channels, 1, 1).softmax(dim=1)
            x = weights[:, 0] * x + weights[:, 1] * y
        return self.project(x), x


class CSF(nn.Module):
    """CSF over all stages: student widths ``in_channels[i]`` -> teacher widths ``out_channels[i]``."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], mid_channels: int = 64,
                 squeeze_channels: int = 32):
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError(f"CSF needs as many teacher stages as student stages, got {len(in_channels)} student "
                             f"and {len(out_channels)} teacher stages")
        n = len(in_channels)
        self.stages = nn.ModuleList(
            CrossSelectiveFusion(c_in, c_out, mid_channels, squeeze_channels, fuse=i < n - 1)
            for i, (c_in, c_out) in enumerate(zip(in_channels, out_channels)))

    def forward(self, student_features: Sequence[Tensor]) -> List[Tensor]:
        """S_hat_i for every stage i (shallowest first), computed deepest first."""
        out: List[Optional[Tensor]] = [None] * len(self.stages)
        deeper = None
        for i in reversed(range(len(self.stages))):
            out[i], deeper = self.stages[i](student_features[i], deeper)
        return out  # type: ignore[return-value]
