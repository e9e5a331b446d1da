"""Each generic loss against a value computed by hand."""
import math

import pytest
import torch

from kdhub.losses import (ChannelWiseDistillationLoss, CosineLoss, FeatureMSELoss, KDLoss, RKDAngleLoss,
                          RKDDistanceLoss)


def test_kd_matches_hand_computed_kl_times_t_squared():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 1.0]])
    T = 2.0
    ps = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    pt = [1 / (math.exp(0.5) + 1), math.exp(0.5) / (math.exp(0.5) + 1)]
    kl = sum(pt[i] * math.log(pt[i] / ps[i]) for i in range(2))
    assert KDLoss(T)(s, t).item() == pytest.approx(kl * T * T, rel=1e-6)


def test_kd_dense_averages_over_positions_and_is_zero_for_equal_logits():
    x = torch.randn(2, 5, 3, 3)
    assert KDLoss(1.0)(x, x).item() == pytest.approx(0.0, abs=1e-6)
    s, t = torch.randn(2, 5, 3, 3), torch.randn(2, 5, 3, 3)
    flat = KDLoss(1.0)(s.permute(0, 2, 3, 1).reshape(-1, 5), t.permute(0, 2, 3, 1).reshape(-1, 5))
    assert KDLoss(1.0)(s, t).item() == pytest.approx(flat.item(), rel=1e-5)


def test_mse_and_cosine_by_hand():
    s = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    t = torch.tensor([[3.0, 2.0], [0.0, -1.0]])
    assert FeatureMSELoss()(s, t).item() == pytest.approx((4 + 0 + 0 + 4) / 4)
    # cosines along dim 1: row 0: (3+4)/(sqrt5*sqrt13); row 1: -1
    c0 = 7 / (math.sqrt(5) * math.sqrt(13))
    assert CosineLoss(dim=1)(s, t).item() == pytest.approx(((1 - c0) + 2) / 2, rel=1e-6)


def test_rkd_distance_by_hand():
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    def norm_dist(p):
        d = torch.cdist(p, p)
        return d / (d.sum() / 6)
    ds, dt = norm_dist(s), norm_dist(t)
    diff = (ds - dt).abs()
    expected = torch.where(diff < 1, 0.5 * diff ** 2, diff - 0.5).mean()
    assert RKDDistanceLoss()(s, t).item() == pytest.approx(expected.item(), rel=1e-4)
    assert RKDDistanceLoss()(2 * t, t).item() == pytest.approx(0.0, abs=1e-6)  # scale invariant


def test_rkd_angle_by_hand():
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    def cosines(p):
        out = []
        for j in range(3):
            for i in range(3):
                for k in range(3):
                    a, b = p[i] - p[j], p[k] - p[j]
                    na, nb = a.norm(), b.norm()
                    out.append(0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb)))
        return torch.tensor(out)
    diff = (cosines(s) - cosines(t)).abs()
    expected = torch.where(diff < 1, 0.5 * diff ** 2, diff - 0.5).mean()
    assert RKDAngleLoss()(s, t).item() == pytest.approx(expected.item(), abs=1e-6)
    assert RKDAngleLoss()(3 * t + 1, t).item() == pytest.approx(0.0, abs=1e-6)  # similarity invariant


def test_cwd_by_hand():
    s = torch.tensor([[[[0.0, 1.0]], [[2.0, 2.0]]]])  # [1, 2, 1, 2]
    t = torch.tensor([[[[1.0, 0.0]], [[0.0, 3.0]]]])
    tau = 2.0
    def kl(tv, sv):
        pt = torch.softmax(torch.tensor(tv) / tau, 0)
        ps = torch.softmax(torch.tensor(sv) / tau, 0)
        return float((pt * (pt.log() - ps.log())).sum())
    expected = (kl([1.0, 0.0], [0.0, 1.0]) + kl([0.0, 3.0], [2.0, 2.0])) * tau ** 2 / 2
    assert ChannelWiseDistillationLoss(tau)(s, t).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", [KDLoss(), FeatureMSELoss(), CosineLoss(), RKDDistanceLoss(), RKDAngleLoss(),
                                  ChannelWiseDistillationLoss()])
def test_gradient_reaches_student_only(loss):
    s = torch.randn(4, 3, 2, 2, requires_grad=True)
    t = torch.randn(4, 3, 2, 2)
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
