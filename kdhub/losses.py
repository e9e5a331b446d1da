"""Generic distillation losses: small modules with explicit (student, teacher) inputs.

Every loss returns a scalar. Teacher inputs are expected detached (the algorithm runs teachers under
``no_grad``); nothing here back-propagates into them anyway because losses never need their gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KDLoss(nn.Module):
    """Hinton et al. (2015) knowledge distillation: KL(softmax(t/T) || softmax(s/T)) * T^2.

    Inputs: logits [N, C] or dense logits [N, C, *] (class dimension 1). The KL divergence is summed over
    classes and averaged over the N (x spatial) positions; T^2 keeps gradient magnitudes comparable
    across temperatures.
    """

    def __init__(self, temperature: float = 4.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        t = self.temperature
        log_p_s = F.log_softmax(student / t, dim=1)
        log_p_t = F.log_softmax(teacher / t, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
        return kl.mean() * t * t


class FeatureMSELoss(nn.Module):
    """Mean squared error between student and teacher features of the same shape (any shape)."""

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        return F.mse_loss(student, teacher)


class CosineLoss(nn.Module):
    """1 - cosine similarity along ``dim`` (channels by default), averaged over all other positions."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        return (1.0 - F.cosine_similarity(student, teacher, dim=self.dim, eps=1e-8)).mean()


def _pairwise_distances(x: Tensor) -> Tensor:
    sq = (x * x).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.t()).clamp_min(1e-12)
    d = d2.sqrt()
    return d * (1.0 - torch.eye(len(x), device=x.device, dtype=x.dtype))


class RKDDistanceLoss(nn.Module):
    """RKD distance term (Park et al., 2019): smooth-L1 between pairwise distance matrices, each divided
    by its mean off-diagonal distance. Inputs [N, ...] embeddings (flattened per sample), N >= 2."""

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        ds = _pairwise_distances(student.flatten(1))
        dt = _pairwise_distances(teacher.flatten(1))
        n = len(ds)
        off = n * (n - 1)
        ds = ds / (ds.sum() / off).clamp_min(1e-12)
        dt = dt / (dt.sum() / off).clamp_min(1e-12)
        return F.smooth_l1_loss(ds, dt)


class RKDAngleLoss(nn.Module):
    """RKD angle term (Park et al., 2019): smooth-L1 between the cosines of the angles formed by every
    triplet (i, j, k) at j. Inputs [N, ...] embeddings (flattened per sample), N >= 3."""

    @staticmethod
    def _angles(x: Tensor) -> Tensor:
        diff = F.normalize(x[None, :, :] - x[:, None, :], p=2, dim=2)  # [j, i, D]: unit(x_i - x_j)
        return torch.bmm(diff, diff.transpose(1, 2)).flatten()

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        return F.smooth_l1_loss(self._angles(student.flatten(1)), self._angles(teacher.flatten(1)))


class ChannelWiseDistillationLoss(nn.Module):
    """Channel-wise distillation (Shu et al., 2021) for dense maps [N, C, H, W] (or [N, C, L]).

    Each channel is turned into a distribution over spatial positions, softmax(y / tau); the loss is
    tau^2 / (N * C) * sum over n, c of KL(teacher || student).
    """

    def __init__(self, tau: float = 1.0):
        super().__init__()
        self.tau = float(tau)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        n, c = student.shape[:2]
        s = student.reshape(n * c, -1) / self.tau
        t = teacher.reshape(n * c, -1) / self.tau
        log_p_t = F.log_softmax(t, dim=1)
        kl = (log_p_t.exp() * (log_p_t - F.log_softmax(s, dim=1))).sum()
        return kl * self.tau ** 2 / (n * c)


LOSSES = {
    "kd": KDLoss,
    "mse": FeatureMSELoss,
    "cosine": CosineLoss,
    "rkd_distance": RKDDistanceLoss,
    "rkd_angle": RKDAngleLoss,
    "cwd": ChannelWiseDistillationLoss,
}
