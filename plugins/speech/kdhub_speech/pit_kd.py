"""PIT-aligned output distillation for separation (permutation-invariant teacher-student).

The teacher is aligned to the ground truth with PIT (sigma*), the student to the aligned teacher with
PIT (pi); the distillation term is the SI-SNR between S_pi and T_sigma. Without references (real
mixtures) the student is aligned to the raw teacher (teacher-student MixIT practice).

PIT here is batched: the SI-SNR of every (estimate, reference) pair comes from one projection matrix and
every permutation is scored at once, where SpeechBrain's ``PitWrapper`` searches example by example in
Python; a step makes three alignments, so this is what keeps distillation close to a plain step. The
values equal SpeechBrain's ``cal_si_snr`` (zero-mean, eps 1e-8); tests check the two agree.
"""
from __future__ import annotations

import functools
import itertools
from typing import List, Optional, Sequence, Tuple, Union

import torch

Perms = torch.Tensor  # [B, C]: perms[b, j] = index of the estimate assigned to reference j
EPS = 1e-8


def pairwise_si_snr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SI-SNR (dB) of every estimate against every reference: [B, T, C] x [B, T, C] -> [B, C_est, C_ref]."""
    est = estimate - estimate.mean(dim=1, keepdim=True)
    ref = reference - reference.mean(dim=1, keepdim=True)
    dot = torch.einsum("bti,btj->bij", est, ref)
    ref_energy = ref.pow(2).sum(dim=1).unsqueeze(1) + EPS             # [B, 1, C_ref]
    target = dot.pow(2) * (ref_energy - EPS) / ref_energy.pow(2)     # ||<e,r> r / (||r||^2 + eps)||^2
    noise = (est.pow(2).sum(dim=1).unsqueeze(2) - 2 * dot.pow(2) / ref_energy + target).clamp_min(0)
    return 10 * torch.log10(target / (noise + EPS) + EPS)


@functools.lru_cache(maxsize=None)
def _permutations(c: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(list(itertools.permutations(range(c))), device=device)   # [P, C], built once


def _best_permutation(scores: torch.Tensor) -> Tuple[torch.Tensor, Perms]:
    perms = _permutations(scores.shape[-1], scores.device)           # [P, C]
    cols = torch.arange(scores.shape[-1], device=scores.device)
    per_perm = scores[:, perms, cols].mean(dim=-1)                   # [B, P]
    best = per_perm.argmax(dim=1)
    return -per_perm.gather(1, best[:, None]).squeeze(1), perms[best]


def pit(estimate: torch.Tensor, reference: torch.Tensor) -> Tuple[torch.Tensor, Perms]:
    """Negative SI-SNR per example [B] under the best permutation, and that permutation [B, C].

    ``estimate`` and ``reference`` are [B, T, C]; ``reorder(estimate, perms)`` lines up with ``reference``.
    """
    return _best_permutation(pairwise_si_snr(estimate, reference))


def pit_each(estimate: torch.Tensor, references: Sequence[torch.Tensor]) -> List[Tuple[torch.Tensor, Perms]]:
    """:func:`pit` of one estimate against several reference sets (e.g. the ground truth and T_sigma),
    scored in one pass so the estimate's projections are computed once."""
    c = estimate.shape[-1]
    scores = pairwise_si_snr(estimate, torch.cat(list(references), dim=-1))   # [B, C, k * C]
    return [_best_permutation(scores[..., i * c:(i + 1) * c]) for i in range(len(references))]


def reorder(x: torch.Tensor, perms: Union[Perms, Sequence[Sequence[int]]]) -> torch.Tensor:
    """``x`` [B, ..., C] with each example's sources put in the order ``perms`` gives."""
    idx = torch.as_tensor(perms, device=x.device).long()
    idx = idx.view(idx.shape[0], *([1] * (x.dim() - 2)), idx.shape[1]).expand(*x.shape[:-1], idx.shape[1])
    return x.gather(-1, idx)


def align_teacher(teacher: torch.Tensor, targets: Optional[torch.Tensor],
                  labelled: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[Perms]]:
    """T_sigma: the teacher's sources ordered like the ground truth (unchanged without references, and for
    the examples ``labelled`` [B] marks False)."""
    if targets is None:
        return teacher, None
    _, sigma = pit(teacher, targets)
    if labelled is not None:
        identity = torch.arange(sigma.shape[1], device=sigma.device).expand_as(sigma)
        sigma = torch.where(labelled.to(sigma.device)[:, None], sigma, identity)
    return reorder(teacher, sigma), sigma


def output_distillation(student: torch.Tensor, teacher_aligned: torch.Tensor) -> Tuple[torch.Tensor, Perms]:
    """Negative SI-SNR of S_pi against T_sigma (mean over the batch), and pi."""
    loss, perms = pit(student, teacher_aligned.detach())
    return loss.mean(), perms
