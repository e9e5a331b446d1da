"""EA, Embedding Assistant (TransKD-EA): extra patch embeddings with the teacher's widths.

EA_1 embeds the input image and EA_i (i > 1) the student's stage i-1 output F_S_(i-1), each an
overlapping patch embedding (Conv2d with the stage's patch size and stride, padding k // 2, then
LayerNorm over channels) producing the teacher's stage-i width. The aligned embedding is
E_hat_i = w_i * PEA_i(E_S_i) + w_(i+4) * EA_i(.), with the 2 x 4 weights learnable scalars.

Initial weights (``init``): ``'ramp'``, the authors' released code (TransKD's ``CSF_EA.py``), starts the k-th
of the 2n scalars (k = 0 .. 2n-1, the n PEA weights first) at 0.1 * (k + 1): for four stages PEA 0.1, 0.2,
0.3, 0.4 and EA 0.5, 0.6, 0.7, 0.8, so the assistant starts with the larger share at every stage. A number
starts all eight at that value (``init=0.5`` is kdhub's earlier default).
"""
from __future__ import annotations

from typing import List, Sequence, Union

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
    ``weights[0, i]`` multiplies PEA_i and ``weights[1, i]`` EA_i.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], patch_sizes: Sequence[int],
                 strides: Sequence[int], init: Union[str, float] = "ramp"):
        super().__init__()
        if not len(in_channels) == len(out_channels) == len(patch_sizes) == len(strides):
            raise ValueError("EA needs one input width, teacher width, patch size and stride per stage")
        self.embeddings = nn.ModuleList(OverlapPatchEmbedding(i, o, k, s)
                                        for i, o, k, s in zip(in_channels, out_channels, patch_sizes, strides))
        n = len(in_channels)
        if init == "ramp":  # values as Python floats (0.1 * 3 = 0.30000000000000004), stored as float32
            start = torch.tensor([0.1 * (k + 1) for k in range(2 * n)]).view(2, n)
        elif isinstance(init, (int, float)) and not isinstance(init, bool):
            start = torch.full((2, n), float(init))
        else:
            raise ValueError(f"EA: init must be 'ramp' or a number, got {init!r}")
        self.weights = nn.Parameter(start)

    def forward(self, aligned: Sequence[Tensor], inputs: Sequence[Tensor]) -> List[Tensor]:
        """``aligned[i]`` = PEA_i(E_S_i); ``inputs`` = [image, F_S_1, ..., F_S_(n-1)] (NCHW)."""
        return [self.weights[0, i] * a + self.weights[1, i] * emb(x)
                for i, (a, emb, x) in enumerate(zip(aligned, self.embeddings, inputs))]
