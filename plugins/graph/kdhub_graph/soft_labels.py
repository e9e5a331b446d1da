"""Teacher soft labels, computed once per (teacher checkpoint, graph) and cached on disk.

The key hashes the teacher checkpoint file, the features and edges the teacher sees and, when given, a
``variant`` text (the graph task passes the configured teacher architecture: a state dict does not hold its
activation, so the same file read as another teacher must not reuse its logits). Several students distilled
from one teacher reuse one inference, and any change to any of these recomputes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn

from kdhub import dist
from kdhub.checkpoint import atomic_save, load_checkpoint

from .data import fingerprint


def cache_key(teacher_checkpoint: Path, x: torch.Tensor, edge_index: torch.Tensor, variant: str = "") -> str:
    h = hashlib.sha256(Path(teacher_checkpoint).read_bytes() + variant.encode()).hexdigest()[:20]
    return f"{h}-{fingerprint(x, edge_index)}"


def soft_labels(teacher: nn.Module, teacher_checkpoint: Path, x: torch.Tensor, edge_index: torch.Tensor,
                cache_dir: Optional[Path] = None, fallback_dir: Optional[Path] = None,
                variant: str = "") -> Tuple[torch.Tensor, bool]:
    """Teacher logits for every node (frozen teacher, no grad); returns (logits, came_from_cache).

    The cache lives in ``cache_dir`` (default: beside the teacher checkpoint); when that folder is not
    writable (a shared, read-only teacher), ``fallback_dir`` is used instead.
    """
    name = f"{cache_key(teacher_checkpoint, x, edge_index, variant)}.pt"
    dirs = [Path(cache_dir) if cache_dir else Path(teacher_checkpoint).parent / "soft_labels"]
    if fallback_dir is not None:
        dirs.append(Path(fallback_dir))
    for d in dirs:
        if (d / name).is_file():
            return load_checkpoint(d / name)["logits"], True
    was_training = teacher.training
    teacher.eval()
    with torch.no_grad():
        logits = teacher(x, edge_index).detach().cpu()
    teacher.train(was_training)
    if dist.is_main():  # every rank computes the same logits; one writes them, so no two ranks write one file
        for d in dirs:
            try:
                atomic_save({"logits": logits}, d / name)
                break
            except OSError:
                continue
    return logits, False
