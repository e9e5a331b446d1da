"""GL-Mixer (TransKD-GL): global-local mixing of the deepest student patch embedding before PEA.

E~ = alpha * MHSA(E_S) + beta * GatedConv1d(E_S): multi-head self-attention over all tokens gives the
global part; a gated 1-D convolution along the token sequence, conv_a(E) * sigmoid(conv_b(E)), gives the
local part. alpha and beta are learnable scalars. The result is then aligned to the teacher's width by PEA.

The attention follows the authors' released code (TransKD's ``CSF_GLMixer.py``): SegFormer's efficient
attention as used at the last MiT stage, where the spatial-reduction ratio is 1 (so keys and values are
the tokens themselves): one ``qkv`` linear layer without bias, 8 heads for MiT-B0's 256-wide last stage,
softmax(q k^T / sqrt(d_head)) v per head, then an output projection with bias. The paper names only
"MHSA"; ``attention='mha'`` keeps the form kdhub used before (``torch.nn.MultiheadAttention``, whose
input projection has a bias). The authors allocate alpha and beta without initialising them (whatever
the memory held); kdhub starts both at ``init`` (0.5).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

ATTENTIONS = ("segformer", "mha")


class TokenSelfAttention(nn.Module):
    """Multi-head self-attention over tokens [B, N, C] -> [B, N, C], SegFormer's form at sr_ratio 1.

    ``qkv`` maps each token to [q, k, v] (C each; heads are consecutive blocks of C / num_heads
    channels within each), attention weights are softmax(q_h k_h^T * d_head^-0.5) over the keys, and
    ``proj`` maps the concatenated heads back to C.
    """

    def __init__(self, channels: int, num_heads: int = 8, qkv_bias: bool = False):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"GL-Mixer: {num_heads} heads do not divide the stage width {channels}")
        self.num_heads = num_heads
        self.scale = (channels // num_heads) ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)

    def forward(self, tokens: Tensor) -> Tensor:
        b, n, c = tokens.shape
        q, k, v = self.qkv(tokens).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))


class _TorchMHA(nn.MultiheadAttention):
    """``torch.nn.MultiheadAttention`` as self-attention on [B, N, C] tokens (kdhub's earlier GL-Mixer)."""

    def __init__(self, channels: int, num_heads: int):
        if channels % num_heads:
            raise ValueError(f"GL-Mixer: {num_heads} heads do not divide the stage width {channels}")
        super().__init__(channels, num_heads, batch_first=True)

    def forward(self, tokens: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(tokens, tokens, tokens, need_weights=False)[0]


class GatedConv1d(nn.Module):
    """Gated convolution over a token sequence [B, N, C] -> [B, N, C]."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, padding=kernel_size // 2)

    def forward(self, tokens: Tensor) -> Tensor:
        value, gate = self.conv(tokens.transpose(1, 2)).chunk(2, dim=1)
        return (value * torch.sigmoid(gate)).transpose(1, 2)


class GLMixer(nn.Module):
    """``forward(E_S)`` [B, N, C] -> [B, N, C].

    ``attention``: ``'segformer'`` (the authors' code, :class:`TokenSelfAttention` with ``qkv_bias``) or
    ``'mha'`` (``torch.nn.MultiheadAttention``, kdhub's earlier form; ``qkv_bias`` does not apply).
    """

    def __init__(self, channels: int, num_heads: int = 8, kernel_size: int = 3, init: float = 0.5,
                 attention: str = "segformer", qkv_bias: bool = False):
        super().__init__()
        if attention == "segformer":
            self.attention: nn.Module = TokenSelfAttention(channels, num_heads, qkv_bias)
        elif attention == "mha":
            self.attention = _TorchMHA(channels, num_heads)
        else:
            raise ValueError(f"GL-Mixer: unknown attention {attention!r}; valid choices: {', '.join(ATTENTIONS)}")
        self.local = GatedConv1d(channels, kernel_size)
        self.alpha = nn.Parameter(torch.tensor(float(init)))
        self.beta = nn.Parameter(torch.tensor(float(init)))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.alpha * self.attention(tokens) + self.beta * self.local(tokens)
