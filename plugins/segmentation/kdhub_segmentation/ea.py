"""EA, Embedding Assistant (TransKD-EA): extra patch embeddings with the teacher's widths.

EA_1 embeds the input image and EA_i (i > 1) the student's stage i-1 output F_S_(i-1), each an
overlapping patch embedding (Conv2d with the stage's patch size and stride, padding k // 2, then
LayerNorm over channels) producing the teacher's stage-i width. The aligned embedding is
E_hat_i = w_i * PEA_i(E_S_i) + w_(i+4) * EA_i(.), with the 2 x 4 weights learnable scalars.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor, nn


class OverlapPatchEmbedding(nn.Module):
    """[B, C_in, H, W] -> tokens [B, H' * W', C_out] (row-major, as MixVisionTransformer flattens)."""

    def __init__(self, in_channels: int, out_channels: int, patch_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class EmbeddingAssistant(nn.Module):
    """The four assistant embeddings and the eight mixing weights.

    ``in_channels`` are [image channels, C_S_1, C_S_2, C_S_3]; ``out_channels`` the teacher's widths.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], patch_sizes: Sequence[int],
                 strides: Sequence[int], init: float = 0.5):
        super().__init__()
        if not len(in_channels) == len(out_channels) == len(patch_sizes) == len(strides):
            raise ValueError("EA needs one input width, teacher width, patch size and stride per stage")
        self.embeddings = nn.ModuleList(OverlapPatchEmbedding(i, o, k, s)
                                        for i, o, k, s in zip(in_channels, out_channels, patch_sizes, strides))
        self.weights = nn.Parameter(torch.full((2, len(in_channels)), float(init)))

    def forward(self, aligned: Sequence[Tensor], inputs: Sequence[Tensor]) -> List[Tensor]:
        """``aligned[i]`` = PEA_i(E_S_i); ``inputs`` = [image, F_S_1, ..., F_S_(n-1)] (NCHW)."""
        return [self.weights[0, i] * a + self.weights[1, i] * emb(x)
                for i, (a, emb, x) in enumerate(zip(aligned, self.embeddings, inputs))]
