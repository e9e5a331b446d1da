"""The algorithm: frozen teachers outside the module tree, gradients only to the student, multi-teacher weights,
export."""
import pytest
import torch
from torch import nn

from kdhub import Algorithm, KDLoss, TapAlgorithm, build_terms
from kdhub.mapping import Term
from kdhub.losses import FeatureMSELoss


def cnn(width):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 5))


def make(teachers=None, **kw):
    torch.manual_seed(0)
    terms = build_terms([
        {"name": "logits", "loss": {"type": "kd", "temperature": 2.0}, "student": "", "teacher": ""},
        {"name": "feat", "loss": {"type": "mse"}, "student": "3", "teacher": "3", "weight": 0.5,
         "adapter": {"type": "conv", "in_channels": 4, "out_channels": 16}},
    ])
    return TapAlgorithm(cnn(4), teachers if teachers is not None else cnn(16), terms, **kw)


def test_teacher_frozen_eval_and_never_gets_gradients():
    d = make()
    d.train()
    teacher = d.teacher
    assert not teacher.training and all(not m.training for m in teacher.modules())
    assert d.student.training
    assert all(not p.requires_grad for p in teacher.parameters())
    bn_mean = teacher[1].running_mean.clone()
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 5, (8,))
    losses = d(x, y)
    assert set(losses) == {"loss_gt", "loss_logits", "loss_feat"}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in d.student.parameters())
    assert all(p.grad is not None for p in d.distill.adapters.parameters())
    assert torch.equal(teacher[1].running_mean, bn_mean)  # eval mode: BN statistics untouched
    opt_params = set(map(id, d.trainable_parameters()))
    assert not opt_params & set(map(id, teacher.parameters()))


def test_distillation_reduces_the_distillation_losses():
    d = make(gt_weight=0.0)
    opt = torch.optim.Adam(d.trainable_parameters(), lr=0.01)
    x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 5, (16,))
    first = None
    for _ in range(60):
        losses = d(x, y)
        total = sum(losses.values())
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        total.backward()
        opt.step()
    last = {k: v.item() for k, v in d(x, y).items()}
    assert last["loss_logits"] < 0.5 * first["loss_logits"]
    assert last["loss_feat"] < 0.5 * first["loss_feat"]


def test_multiple_teachers_weighted():
    torch.manual_seed(0)
    t1, t2 = cnn(16), cnn(16)
    terms = [Term("logits", KDLoss(1.0), "", "")]
    d = TapAlgorithm(cnn(4), {"a": t1, "b": t2}, terms, teacher_weights={"a": 0.25, "b": 0.75}, gt_weight=0)
    x = torch.randn(4, 3, 6, 6)
    got = d(x, None)["loss_logits"]
    s = d.student(x)
    with torch.no_grad():
        expected = 0.25 * KDLoss(1.0)(s, t1(x)) + 0.75 * KDLoss(1.0)(s, t2(x))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="unknown teachers"):
        TapAlgorithm(cnn(4), {"a": t1}, [], teacher_weights={"z": 1.0})
    with pytest.raises(TypeError, match="abstract"):
        Algorithm(cnn(4), t1)  # a method must define loss()


def test_student_export_and_checkpoint_state_exclude_teachers():
    d = make()
    exported = d.student_state_dict()
    assert set(exported) == set(d.student.state_dict())
    ckpt = d.state_dict_without_teachers()
    assert not any(k.startswith("teachers.") for k in ckpt)
    assert any(k.startswith("distill.adapters.") for k in ckpt)
    fresh = make()
    fresh.load_state_dict_without_teachers(ckpt)
    for k, v in fresh.state_dict_without_teachers().items():
        assert torch.equal(v, ckpt[k])


def test_term_with_unknown_teacher_is_refused():
    with pytest.raises(KeyError, match="teacher in term"):
        TapAlgorithm(cnn(4), cnn(16), [Term("x", FeatureMSELoss(), "", "", teachers=["nope"])])


def test_teachers_live_outside_the_module_tree_but_move_with_the_algorithm():
    d = make()
    teacher_params = set(map(id, d.teacher.parameters()))
    assert teacher_params and not teacher_params & set(map(id, d.parameters()))  # no optimiser, DDP or init sees it
    assert not any(k.startswith(("teacher", "teachers")) for k in d.state_dict())
    d.double()  # dtype and device moves carry the teacher along
    assert all(p.dtype == torch.float64 for p in d.teacher.parameters())
    d.train()
    assert d.student.training and not d.teacher.training
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    assert set(d(x, torch.tensor([0, 1]))) == {"loss_gt", "loss_logits", "loss_feat"}
