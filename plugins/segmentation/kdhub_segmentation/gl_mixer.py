"""GL-Mixer (TransKD-GL): global-local mixing of the deepest student patch embedding before PEA.

E~ = alpha * MHSA(E_S) + beta * GatedConv1d(E_S): multi-head self-attention over all tokens gives the
global part; a gated 1-D convolution along the token sequence, conv_a(E) * sigmoid(conv_b(E)), gives the
local part. alpha and beta are learnable scalars (initialised to 0.5). The result is then aligned to the
teacher's width by PEA.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class GatedConv1d(nn.Module):
    """Gated convolution over a token sequence [B, N, C] -> [B, N, C]."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, padding=kernel_size // 2)

    def forward(self, tokens: Tensor) -> Tensor:
        value, gate = self.conv(tokens.transpose(1, 2)).chunk(2, dim=1)
        return (value * torch.sigmoid(gate)).transpose(1, 2)


class GLMixer(nn.Module):
    """``forward(E_S)`` [B, N, C] -> [B, N, C]."""

    def __init__(self, channels: int, num_heads: int = 1, kernel_size: int = 3, init: float = 0.5):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"GL-Mixer: {num_heads} heads do not divide the stage width {channels}")
        self.attention = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.local = GatedConv1d(channels, kernel_size)
        self.alpha = nn.Parameter(torch.tensor(float(init)))
        self.beta = nn.Parameter(torch.tensor(float(init)))

    def forward(self, tokens: Tensor) -> Tensor:
        global_, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.alpha * global_ + self.beta * self.local(tokens)
