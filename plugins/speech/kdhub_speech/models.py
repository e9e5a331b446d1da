"""Separation models assembled from SpeechBrain's lobes, and the frame view their features share.

:class:`Separator` is the encoder / mask network / decoder triple of SpeechBrain's separation recipes
(``dual_path.Encoder``, ``dual_path.Dual_Path_Model`` (SepFormer) or ``conv_tasnet.MaskNet``,
``dual_path.Decoder``) as one module, so a hyperpyyaml file builds teacher and student with ``!new:``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from speechbrain.lobes.models.conv_tasnet import MaskNet
from speechbrain.lobes.models.dual_path import Dual_Path_Model
from torch import nn


class Separator(nn.Module):
    """mixture [B, T] -> estimated sources [B, T, num_spks] (SpeechBrain's recipe layout)."""

    def __init__(self, encoder: nn.Module, masknet: nn.Module, decoder: nn.Module, num_spks: int = 2):
        super().__init__()
        self.encoder, self.masknet, self.decoder = encoder, masknet, decoder
        self.num_spks = num_spks

    @property
    def family(self) -> str:
        if isinstance(self.masknet, Dual_Path_Model):
            return "sepformer"
        if isinstance(self.masknet, MaskNet):
            return "convtasnet"
        return type(self.masknet).__name__

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        w = self.encoder(mix)                       # [B, N, L]
        masks = self.masknet(w)                     # [spks, B, N, L]
        sep = w.unsqueeze(0) * masks
        est = torch.stack([self.decoder(sep[i]) for i in range(self.num_spks)], dim=-1)
        if est.dim() == 2:                          # the decoder squeezes a batch of one
            est = est.unsqueeze(0)
        t, te = mix.shape[-1], est.shape[1]
        return F.pad(est, (0, 0, 0, t - te)) if te < t else est[:, :t]

    def frames(self, feature: torch.Tensor, num_frames: int) -> torch.Tensor:
        """A tapped mask-network feature as [B, C, L] over the ``num_frames`` encoder frames.

        Dual-path block outputs [B, N, K, S] are overlap-added back to frames (the model's own inverse
        of its chunking); TCN block outputs [B, L, C] are transposed; [B, C, L] passes through.
        """
        if feature.dim() == 4:
            k = feature.shape[2]
            gap = k - (k // 2 + num_frames % k) % k
            return self.masknet._over_add(feature, gap)[..., :num_frames]
        if feature.dim() == 3 and feature.shape[-1] != num_frames and feature.shape[1] == num_frames:
            return feature.transpose(1, 2)
        if feature.dim() == 3:
            return feature
        raise ValueError(f"cannot read a {tuple(feature.shape)} feature as encoder frames")

    def num_frames(self, mix: torch.Tensor) -> int:
        conv = self.encoder.conv1d
        return (mix.shape[-1] - conv.kernel_size[0]) // conv.stride[0] + 1
