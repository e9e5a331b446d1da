"""PIT-aligned output distillation for separation (permutation-invariant teacher-student).

The teacher is aligned to the ground truth with PIT (sigma*), the student to the aligned teacher with
PIT (pi); the distillation term is the SI-SNR between S_pi and T_sigma. Without references (real
mixtures) the student is aligned to the raw teacher (teacher-student MixIT practice). SpeechBrain's
``cal_si_snr`` masks its estimate in place, so teacher outputs are passed as clones.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from speechbrain.nnet.losses import PitWrapper, cal_si_snr

Perms = List[Tuple[int, ...]]

_PIT = PitWrapper(cal_si_snr)


def pit(estimate: torch.Tensor, reference: torch.Tensor) -> Tuple[torch.Tensor, Perms]:
    """Negative SI-SNR per example [B] under the best permutation, and that permutation.

    ``estimate`` and ``reference`` are [B, T, C]; ``reorder(estimate, perms)`` lines up with ``reference``.
    """
    loss, perms = _PIT(estimate, reference)
    return loss, perms


def reorder(x: torch.Tensor, perms: Perms) -> torch.Tensor:
    """``x`` [B, ..., C] with each example's sources put in the order ``perms`` gives."""
    return _PIT.reorder_tensor(x, perms)


def align_teacher(teacher: torch.Tensor, targets: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[Perms]]:
    """T_sigma: the teacher's sources ordered like the ground truth (unchanged without references)."""
    if targets is None:
        return teacher, None
    _, sigma = pit(teacher.clone(), targets)
    return reorder(teacher, sigma), sigma


def output_distillation(student: torch.Tensor, teacher_aligned: torch.Tensor) -> Tuple[torch.Tensor, Perms]:
    """Negative SI-SNR of S_pi against T_sigma (mean over the batch), and pi."""
    loss, perms = pit(student, teacher_aligned.detach().clone())
    return loss.mean(), perms
