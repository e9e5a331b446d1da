"""DETRDistill components on hand-made cases (matching to the teacher, target-aware mask, teacher-assigned
query group, DINO's denoising/matching split) and on tiny Deformable DETR, Conditional DETR and DINO pairs."""
import pytest
import torch
import torch.nn.functional as F

from kdhub.config import ConfigError

from conftest import batch_of, save_random_detector, train_steps
from detection_helpers import deformable_detr, distill, load, retinanet

META = {"img_shape": (100, 200)}


def _boxes():  # normalised cxcywh
    return torch.tensor([[0.2, 0.2, 0.1, 0.2], [0.7, 0.3, 0.2, 0.2], [0.5, 0.8, 0.3, 0.1], [0.1, 0.9, 0.1, 0.1]])


def test_hungarian_matching_recovers_the_teacher_query_of_each_student_query():
    from kdhub_detection.matching import LogitsDistillation, TeacherMatcher
    torch.manual_seed(0)
    t_logits, t_boxes = torch.randn(4, 3) * 3, _boxes()
    perm = torch.tensor([2, 0, 3, 1])                         # student query i imitates teacher query perm[i]
    s_logits = t_logits[perm] + 0.05 * torch.randn(4, 3)
    s_boxes = t_boxes[perm] + 0.01
    matcher = TeacherMatcher(num_classes=3)
    s_idx, t_idx = matcher.match(s_logits, s_boxes, t_logits, t_boxes, META)
    assert torch.equal(t_idx[s_idx.argsort()], perm)
    # the class cost is the BCE summed over classes (CrossEntropyLossCost averages, so its weight is C)
    from mmengine.structures import InstanceData
    cost = matcher.assigner.match_costs[0](InstanceData(masks=s_logits), InstanceData(masks=t_logits.sigmoid()))
    manual = F.binary_cross_entropy_with_logits(s_logits[1][None].expand(4, 3), t_logits.sigmoid(),
                                                reduction="none").sum(1)
    assert torch.allclose(cost[1], manual, atol=1e-5)
    # on a perfect student the box terms vanish and the class term is the teacher's own entropy
    loss = LogitsDistillation(matcher)(t_logits[perm][None], t_boxes[perm][None], t_logits[None], t_boxes[None], [META])
    p = t_logits.sigmoid()
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum(1).mean()
    assert loss["l1"].item() < 1e-6 and loss["giou"].item() < 1e-5
    assert torch.allclose(loss["cls"], entropy, atol=1e-5)
    worse = LogitsDistillation(matcher)(s_logits[None] * 0, (s_boxes + 0.1)[None], t_logits[None], t_boxes[None], [META])
    assert all(worse[k] > loss[k] for k in loss)


def test_query_quality_and_target_aware_mask_on_a_hand_made_map():
    from kdhub_detection.feature_mask import masked_feature_loss, query_quality, target_aware_mask
    logits = torch.tensor([[4.0, -4.0], [-4.0, 3.0], [-6.0, -6.0]])  # queries 0 and 1 confident, 2 not
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.5, 0.5, 0.2, 0.2]])
    gt = torch.tensor([[0.0, 0.0, 100.0, 50.0]])                  # exactly query 0's box in pixels
    query, quality = query_quality(logits, boxes, gt, META, top_k=2)
    assert query.tolist() == [0, 1]
    assert torch.allclose(quality, torch.tensor([torch.sigmoid(torch.tensor(4.0)).item(), 0.0]), atol=1e-6)
    query, quality = query_quality(logits, boxes, gt[:0], META, top_k=2)   # no ground truth: the score alone
    assert torch.allclose(quality, logits.sigmoid().flatten().topk(2).values)
    feat = torch.zeros(2, 2, 2)
    feat[:, 0, 0] = torch.tensor([1.0, 0.0])       # along query a
    feat[:, 0, 1] = torch.tensor([0.0, 1.0])       # orthogonal
    feat[:, 1, 0] = torch.tensor([-1.0, 0.0])      # opposite
    feat[:, 1, 1] = torch.tensor([1.0, 1.0])       # 45 degrees
    q = torch.tensor([[2.0, 0.0]])
    psi = target_aware_mask(q, torch.tensor([0.5]), feat)
    assert psi.shape == (1, 2, 2)
    assert torch.allclose(psi, torch.tensor([[[1.0, 0.02], [0.02, 2 ** -0.5]]]), atol=1e-6)  # floor 0.01, / max
    s = feat + 1.0
    loss = masked_feature_loss([s[None]], [feat[None]], [[psi]])
    assert torch.allclose(loss, ((psi * feat - psi * s) ** 2).mean())


def test_query_group_targets_follow_the_teachers_assignment():
    from kdhub_detection.query_group import assigned_targets, teacher_query_inputs
    from mmengine.structures import InstanceData
    gt = InstanceData(bboxes=torch.tensor([[0.0, 0.0, 100.0, 50.0], [100.0, 50.0, 200.0, 100.0]]),
                      labels=torch.tensor([3, 1]))
    labels, targets, weights = assigned_targets(torch.tensor([0, 2, 0, 1]), gt, META, num_classes=5)
    assert labels.tolist() == [5, 1, 5, 3]
    assert torch.allclose(targets[1], torch.tensor([0.75, 0.75, 0.5, 0.5]))
    assert torch.allclose(targets[3], torch.tensor([0.25, 0.25, 0.5, 0.5]))
    assert weights[:, 0].tolist() == [0, 1, 0, 1]
    student = {"query": torch.zeros(1), "query_pos": torch.zeros(1), "memory": torch.ones(1),
               "dn_mask": torch.ones(3, 3, dtype=torch.bool)}           # DINO in training: denoising groups
    teacher = {"query": torch.ones(1, requires_grad=True), "query_pos": torch.full((1,), 2.0), "memory": torch.zeros(1),
               "dn_mask": None}
    mixed = teacher_query_inputs(student, teacher)
    assert mixed["query"].item() == 1 and mixed["query_pos"].item() == 2 and mixed["memory"].item() == 1
    assert not mixed["query"].requires_grad and mixed["dn_mask"] is None  # the teacher group has no denoising part


@pytest.fixture(scope="module")
def tiny_detr(tmp_path_factory, mm):
    tmp = tmp_path_factory.mktemp("detr")
    student = deformable_detr(tmp, "student.py", base=8, encoder_layers=1)
    teacher = deformable_detr(tmp, "teacher.py", base=16, encoder_layers=2)
    return student, teacher, save_random_detector(mm, teacher, tmp / "teacher.pth")


def _build(mm, path):
    models, _ = mm
    cfg = load(path).cfg
    torch.manual_seed(1)
    model = models.build(cfg.model)
    model.init_weights()
    model.train()
    return model, batch_of(mm, cfg, n=2)


def test_detrdistill_every_layer_every_term_student_gradients_only(mm, tiny_detr, tmp_path):
    student, teacher, ckpt = tiny_detr
    model, data = _build(mm, distill(tmp_path, "d.py", student, teacher, ckpt, "dict(type='DETRDistill', top_k=10)"))
    losses = model(**data, mode="loss")
    for term in ("loss_kd_cls", "loss_kd_l1", "loss_kd_giou", "loss_qg_cls", "loss_qg_bbox", "loss_qg_iou"):
        assert term in losses and f"d0.{term}" in losses              # two decoder layers: d0 and the last
    assert "loss_kd_feat" in losses and "loss_cls" in losses and "d0.loss_cls" in losses
    assert all(torch.isfinite(v) for v in losses.values())
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.query_embedding.weight.grad.abs().sum() > 0
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(isinstance(a, torch.nn.Identity) for a in model.distiller.adapters)  # same neck width: no adapter
    # each term moves the student on its own
    for name in ("loss_kd_cls", "loss_kd_feat", "loss_qg_cls"):
        model.zero_grad()
        model(**data, mode="loss")[name].backward()
        assert model.student.backbone.conv1.weight.grad.abs().sum() > 0, name


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory, mm):
    tmp = tmp_path_factory.mktemp("dino")
    student = deformable_detr(tmp, "student.py", base=8, encoder_layers=1, detector="DINO")
    teacher = deformable_detr(tmp, "teacher.py", base=16, encoder_layers=2, detector="DINO")
    return student, teacher, save_random_detector(mm, teacher, tmp / "teacher.pth")


@pytest.mark.parametrize("family", ["tiny_detr", "tiny_dino"])
@pytest.mark.parametrize("switch, absent", [
    ("logits_weight=0", "loss_kd_cls"), ("feature_weight=0", "loss_kd_feat"), ("query_weight=0", "loss_qg_cls")])
def test_each_component_switches_off(mm, request, family, tmp_path, switch, absent):
    student, teacher, ckpt = request.getfixturevalue(family)
    model, data = _build(mm, distill(tmp_path, "d.py", student, teacher, ckpt, f"dict(type='DETRDistill', {switch})"))
    losses = model(**data, mode="loss")
    assert absent not in losses and f"d0.{absent}" not in losses and "loss_cls" in losses


def test_detrdistill_on_conditional_detr(mm, tmp_path):
    student = deformable_detr(tmp_path, "cs.py", base=8, detector="ConditionalDETR")
    teacher = deformable_detr(tmp_path, "ct.py", base=16, detector="ConditionalDETR")
    ckpt = save_random_detector(mm, teacher, tmp_path / "ct.pth")
    model, data = _build(mm, distill(tmp_path, "cd.py", student, teacher, ckpt, "dict(type='DETRDistill')"))
    losses = model(**data, mode="loss")
    assert {"loss_kd_cls", "d0.loss_kd_giou", "loss_kd_feat", "loss_qg_iou"} <= set(losses)
    model.parse_losses(losses)[0].backward()
    assert model.student.query_embedding.weight.grad.abs().sum() > 0


def test_dino_split_keeps_the_matching_queries_after_the_denoising_ones():
    from kdhub_detection.detr_distill import matching_part
    layers, batch, n_dn, n_match, classes = 2, 1, 6, 4, 3
    dn = torch.full((layers, batch, n_dn, classes), -100.0)                 # denoising outputs come first
    match = torch.arange(n_match * classes, dtype=torch.float).view(1, 1, n_match, classes).expand(layers, batch, -1, -1)
    cls = torch.cat([dn, match], dim=2)
    box = torch.cat([torch.zeros(layers, batch, n_dn, 4), torch.rand(layers, batch, n_match, 4)], dim=2)
    m_cls, m_box = matching_part(cls, box, {"dn_meta": {"num_denoising_queries": n_dn, "num_denoising_groups": 3}})
    assert m_cls.shape == (layers, batch, n_match, classes) and torch.equal(m_cls, match)
    assert torch.equal(m_box, box[:, :, n_dn:])
    assert matching_part(cls, box, {})[0] is cls                             # eval mode / other detectors: all


def test_detrdistill_on_dino_distils_matching_queries_only(mm, tiny_dino, tmp_path):
    student, teacher, ckpt = tiny_dino
    model, data = _build(mm, distill(tmp_path, "dd.py", student, teacher, ckpt, "dict(type='DETRDistill', top_k=10)"))
    losses = model(**data, mode="loss")
    kd_names = [k for k in losses if "loss_kd_" in k or "loss_qg_" in k]
    assert {"loss_kd_cls", "d0.loss_kd_giou", "loss_kd_feat", "loss_qg_cls", "d0.loss_qg_iou"} <= set(kd_names)
    assert {"dn_loss_cls", "d0.dn_loss_bbox", "enc_loss_cls", "loss_cls"} <= set(losses)  # DINO's own GT losses
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses[k] for k in kd_names).backward(retain_graph=True)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.query_embedding.weight.grad.abs().sum() > 0
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    # DINO's attention mask hides the denoising queries from the matching ones: terms on the matching part
    # never reach the denoising label embedding, while DINO's denoising loss does
    label_embedding = model.student.dn_query_generator.label_embedding.weight
    assert label_embedding.grad is None or not label_embedding.grad.any()
    model.zero_grad()
    losses["dn_loss_cls"].backward()
    assert label_embedding.grad.abs().sum() > 0


def test_dino_distillation_train_steps_lower_the_loss_and_leave_the_teacher(mm, tiny_dino, tmp_path):
    student, teacher, ckpt = tiny_dino
    cfg = load(distill(tmp_path, "d.py", student, teacher, ckpt, "dict(type='DETRDistill', top_k=10)")).cfg
    model, totals, teacher_before = train_steps(mm, cfg)
    assert all(torch.isfinite(torch.tensor(totals))) and totals[-1] < totals[0], totals
    assert all(torch.equal(teacher_before[k], v) for k, v in model.teacher.state_dict().items())


def test_methods_refuse_detectors_they_do_not_support(mm, tiny_detr, tiny_retina, tmp_path):
    d_student, d_teacher, d_ckpt = tiny_detr
    r_student, r_teacher, r_ckpt = tiny_retina
    with pytest.raises(ConfigError, match="GID supports dense single-stage detectors.*DeformableDETR.*DETRDistill"):
        load(distill(tmp_path, "a.py", d_student, d_teacher, d_ckpt, "dict(type='GID')"))
    with pytest.raises(ConfigError, match="DETRDistill supports DETR-family detectors.*RetinaNet.*GID"):
        load(distill(tmp_path, "b.py", r_student, r_teacher, r_ckpt, "dict(type='DETRDistill')"))
    deeper = deformable_detr(tmp_path, "deep.py", base=16, decoder_layers=3)
    ckpt = save_random_detector(mm, deeper, tmp_path / "deep.pth")
    models, _ = mm
    with pytest.raises(ConfigError, match="same number of decoder layers"):
        models.build(load(distill(tmp_path, "c.py", d_student, deeper, ckpt, "dict(type='DETRDistill')")).cfg.model)
