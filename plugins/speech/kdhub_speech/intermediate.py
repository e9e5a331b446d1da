"""Intermediate feature distillation between chosen dual-path / TCN blocks, through learned adapters.

Each pair names a student and a teacher module path inside the separators (core taps). Both features
are read as encoder frames [B, C, L] (:meth:`Separator.frames`), so a SepFormer block can teach a
Conv-TasNet block and vice versa; a 1x1 Conv1d adapter maps the student's channels to the teacher's and
the loss is the MSE relative to the teacher feature's mean square (scale-free across blocks). Before the
speaker split there is no permutation; the masks themselves (path ``masknet``, [spks, B, N, L]) are put
in the order of the PIT permutations first (student by pi, teacher by sigma).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from kdhub.adapters import ConvAdapter
from kdhub.taps import FeatureTaps

from .models import Separator
from .pit_kd import Perms, reorder

MASKS = "masknet"


def _masks_in_order(masks: torch.Tensor, perms: Optional[Perms]) -> torch.Tensor:
    """[spks, B, N, L] masks -> [B * spks, N, L] in the order ``perms`` gives."""
    x = masks.permute(1, 2, 3, 0)                          # [B, N, L, spks]
    if perms is not None:
        x = reorder(x, perms)
    return x.permute(0, 3, 1, 2).flatten(0, 1)


def read_frames(model: Separator, taps: FeatureTaps, paths: Sequence[str], num_frames: int,
                perms: Optional[Perms] = None) -> List[torch.Tensor]:
    """The tapped features of ``paths`` as [B, C, L] (masks as [B * spks, N, L], ordered by ``perms``).
    Each distinct path is read once (reading consumes a tap), so several pairs may share one."""
    captured = {p: taps[p] for p in dict.fromkeys(paths)}
    return [_masks_in_order(captured[p], perms) if p == MASKS else model.frames(captured[p], num_frames)
            for p in paths]


class IntermediateDistillation(nn.Module):
    """Adapters and the feature loss for ``pairs`` of (student path, teacher path)."""

    def __init__(self, pairs: Sequence[Tuple[str, str]], channels: Sequence[Tuple[int, int]]):
        super().__init__()
        for s, t in pairs:
            if (s == MASKS) != (t == MASKS):
                raise ValueError(f"feature pair ({s}, {t}): masks ('{MASKS}') can only be paired with masks")
        self.pairs = [tuple(p) for p in pairs]
        self.adapters = nn.ModuleList(ConvAdapter(cs, ct, dim=1) for cs, ct in channels)

    @staticmethod
    def probe_channels(student: Separator, teacher: Separator, pairs: Sequence[Tuple[str, str]],
                       samples: int) -> List[Tuple[int, int]]:
        """Channels of each pair's features, from one forward pass of both models on silence."""
        mix = torch.zeros(1, samples, device=next(student.parameters()).device)
        chans = []
        with torch.no_grad():
            for model, paths in ((student, [s for s, _ in pairs]), (teacher, [t for _, t in pairs])):
                with FeatureTaps(model, paths, detach=True) as taps:
                    was = model.training
                    model.eval()
                    model(mix.to(next(model.parameters()).device))
                    model.train(was)
                    chans.append([f.shape[1] for f in read_frames(model, taps, paths, model.num_frames(mix))])
        return list(zip(*chans))

    def forward(self, student: List[torch.Tensor], teacher: List[torch.Tensor]) -> torch.Tensor:
        losses = []
        for adapter, s, t in zip(self.adapters, student, teacher):
            t = t.to(s.dtype)
            length = min(s.shape[-1], t.shape[-1])
            err = (adapter(s)[..., :length] - t[..., :length]).pow(2).mean()
            losses.append(err / t[..., :length].pow(2).mean().clamp_min(1e-8))
        return torch.stack(losses).mean()
