"""Adapters that map student features to the teacher's width before a feature loss.

They are trained with the student and dropped at deployment (they are not part of the student's
state dict export).
"""
from __future__ import annotations

from torch import nn


class ConvAdapter(nn.Sequential):
    """1x1 convolution on NCHW (or NCL with ``dim=1``) features: C_in -> C_out channels."""

    def __init__(self, in_channels: int, out_channels: int, dim: int = 2, norm: bool = False):
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[dim](in_channels, out_channels, kernel_size=1, bias=not norm)
        layers = [conv]
        if norm:
            layers.append({1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dim](out_channels))
        super().__init__(*layers)


class LinearAdapter(nn.Linear):
    """Linear map over the last dimension ([N, C] vectors or [B, L, C] token sequences)."""


ADAPTERS = {"conv": ConvAdapter, "conv1d": lambda i, o: ConvAdapter(i, o, dim=1), "linear": LinearAdapter}


def build_adapter(kind: str, in_channels: int, out_channels: int) -> nn.Module:
    """An adapter of ``kind`` ('conv', 'conv1d', 'linear', 'identity'); identity when widths match and
    kind is 'auto'."""
    if kind == "identity" or (kind == "auto" and in_channels == out_channels):
        return nn.Identity()
    if kind == "auto":
        kind = "conv"
    if kind not in ADAPTERS:
        raise ValueError(f"unknown adapter {kind!r}; valid choices: auto, identity, {', '.join(ADAPTERS)}")
    return ADAPTERS[kind](in_channels, out_channels)
