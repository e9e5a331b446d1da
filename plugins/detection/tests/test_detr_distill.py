"""DETRDistill components on hand-made cases (matching to the teacher, target-aware mask, teacher-assigned
query group, DINO's denoising/matching split, the contrastive term, the feature loss over layers, clamped teacher
boxes) and on tiny Deformable DETR, Conditional DETR and DINO pairs."""
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
    for term in ("loss_kd_cls", "loss_kd_l1", "loss_kd_giou", "loss_qg_cls", "loss_qg_bbox", "loss_qg_iou",
                 "loss_kd_feat", "loss_kd_contrast"):
        assert term in losses and f"d0.{term}" in losses              # two decoder layers: d0 and the last
    assert "loss_kd_feat" in losses and "loss_cls" in losses and "d0.loss_cls" in losses
    assert all(torch.isfinite(v) for v in losses.values())
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.query_embedding.weight.grad.abs().sum() > 0
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(isinstance(a, torch.nn.Identity) for a in model.distiller.adapters)  # same neck width: no adapter
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.distiller.contrast.parameters()
               if p.dim() > 1)                                         # both projections are trained
    # each term moves the student on its own
    for name in ("loss_kd_cls", "loss_kd_feat", "loss_qg_cls", "loss_kd_contrast"):
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
    ("logits_weight=0", "loss_kd_cls"), ("feature_weight=0", "loss_kd_feat"), ("query_weight=0", "loss_qg_cls"),
    ("contrastive_weight=0", "loss_kd_contrast")])
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


# --- the released code's forms (contrastive term, feature loss per layer, clamped teacher boxes, query prior) ---

def test_contrastive_infonce_on_two_matched_pairs_by_hand():
    from kdhub_detection.contrastive import QueryContrast, info_nce
    # pair 1: student (1, 0), teacher (3, 4); pair 2: student (0, 2), teacher (2, 0). Normalised:
    # s1 = (1, 0), s2 = (0, 1), t1 = (0.6, 0.8), t2 = (1, 0). Rows are the teachers (anchors), columns all
    # students; the positive of row i is column i.
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    teacher = torch.tensor([[3.0, 4.0], [2.0, 0.0]])
    # T = 0.5: row 1 logits (0.6, 0.8) / 0.5 = (1.2, 1.6), target 0: log(e^1.2 + e^1.6) - 1.2 = log(1 + e^0.4)
    #          = 0.9130153; row 2 logits (1, 0) / 0.5 = (2, 0), target 1: log(e^2 + e^0) - 0 = 2.1269280;
    #          mean = 1.5199716
    assert info_nce(student, teacher, 0.5).item() == pytest.approx(1.5199716, abs=1e-6)
    # T = 0.07 (released): row 1 log(1 + e^(0.2 / 0.07)) = 2.9129868; row 2 log(1 + e^(1 / 0.07)) = 14.2857149;
    #          mean = 8.5993508
    assert info_nce(student, teacher, 0.07).item() == pytest.approx(8.5993508, rel=1e-6)
    # the term without projection heads is the same number; the teacher side carries no gradient
    teacher.requires_grad_(True)
    loss = QueryContrast(2, 2, temperature=0.07, project=False)(student, teacher)
    assert loss.item() == pytest.approx(8.5993508, rel=1e-6)
    loss.backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None
    # swapping the teacher rows makes the other pairing the positive one: a different loss
    assert info_nce(student, teacher.detach().flip(0), 0.5).item() != pytest.approx(1.5199716, abs=1e-3)


def test_contrastive_heads_are_the_released_projection_and_train():
    from kdhub_detection.contrastive import QueryContrast
    torch.manual_seed(0)
    head = QueryContrast(8, 16, hidden=32)
    kinds = [type(m).__name__ for m in head.student_proj]
    assert kinds == ["Linear", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.student_proj[0].in_features == 8 and head.teacher_proj[0].in_features == 16
    s, t = torch.randn(6, 8, requires_grad=True), torch.randn(6, 16, requires_grad=True)
    head(s, t).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    assert head.teacher_proj[0].weight.grad.abs().sum() > 0 and head.student_proj[0].weight.grad.abs().sum() > 0


def test_feature_loss_is_summed_over_decoder_layers_by_hand():
    from mmengine.structures import InstanceData
    from kdhub_detection.detr_distill import DETRDistill, feature_terms
    d = DETRDistill(top_k=1)
    d.num_layers, d.adapters = 2, torch.nn.ModuleList([torch.nn.Identity()])
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).view(1, 2, 1, 2)  # feature (1, 0) at x0, (0, 2) at x1
    s = torch.zeros(1, 2, 1, 2)
    t_cls = torch.zeros(2, 1, 1, 1)                              # one query, score sigmoid(0) = 0.5 (no GT: c = 0.5)
    t_box = torch.full((2, 1, 1, 4), 0.5)
    t_hidden = torch.tensor([[1.0, 0.0], [0.0, 3.0]]).view(2, 1, 1, 2)  # layer 0 along x0, layer 1 along x1
    per_layer = d._feature([s], [t], t_cls, t_box, t_hidden, [InstanceData(bboxes=torch.zeros(0, 4))],
                           [{"img_shape": (10, 20)}])
    # layer 0: Psi = (0.5 * 1, max(0.01, 0)) / 0.5 = (1, 0.02); mean of the 4 squared elements
    #          ((1 * 1)^2 + 0 + 0 + (0.02 * 2)^2) / 4 = 1.0016 / 4 = 0.2504
    # layer 1: Psi = (0.01, 0.5) / 0.5 = (0.02, 1); ((0.02 * 1)^2 + 0 + 0 + (1 * 2)^2) / 4 = 4.0004 / 4 = 1.0001
    assert [v.item() for v in per_layer] == [pytest.approx(0.2504), pytest.approx(1.0001)]
    summed = feature_terms(per_layer, 2.0, "sum")                 # released code: one loss per layer
    assert set(summed) == {"d0.loss_kd_feat", "loss_kd_feat"}
    assert summed["d0.loss_kd_feat"].item() == pytest.approx(0.5008)
    assert summed["loss_kd_feat"].item() == pytest.approx(2.0002)
    assert sum(v.item() for v in summed.values()) == pytest.approx(2.501)  # 2 * (0.2504 + 1.0001)
    averaged = feature_terms(per_layer, 2.0, "mean")
    assert set(averaged) == {"loss_kd_feat"} and averaged["loss_kd_feat"].item() == pytest.approx(1.2505)
    with pytest.raises(ConfigError, match="feature_reduction"):
        DETRDistill(feature_reduction="avg")


def test_teacher_boxes_are_clamped_to_the_image_by_hand():
    from kdhub_detection.matching import clamp_to_image
    boxes = torch.tensor([[0.9, 0.5, 0.4, 0.2],      # corners (0.7, 0.4, 1.1, 0.6) -> (0.7, 0.4, 1.0, 0.6)
                          [0.05, 0.0, 0.3, 0.4],     # corners (-0.1, -0.2, 0.2, 0.2) -> (0, 0, 0.2, 0.2)
                          [0.5, 0.5, 0.2, 0.2]])     # inside: unchanged
    expected = torch.tensor([[0.85, 0.5, 0.3, 0.2], [0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]])
    assert torch.allclose(clamp_to_image(boxes), expected, atol=1e-6)


@pytest.mark.parametrize("clamp", [True, False])
def test_detrdistill_matches_and_distils_on_clamped_teacher_boxes(mm, tiny_detr, tmp_path, clamp):
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    student, teacher, ckpt = tiny_detr
    model, data = _build(mm, distill(tmp_path, "d.py", student, teacher, ckpt,
                                     f"dict(type='DETRDistill', top_k=10, clamp_teacher_boxes={clamp})"))
    seen, pairs = [], []
    match, contrast = model.distiller.logits.match, model.distiller.contrast.forward

    def spy_match(s_logits, s_boxes, t_logits, t_boxes, metas):
        seen.append(t_boxes.detach().clone())
        out = match(s_logits, s_boxes, t_logits, t_boxes, metas)
        pairs.append(sum(len(s_idx) for s_idx, _ in out))
        return out

    def spy_contrast(s_q, t_q):
        assert s_q.requires_grad and not t_q.requires_grad and len(s_q) == len(t_q) == pairs[-1]
        return contrast(s_q, t_q)

    model.distiller.logits.match, model.distiller.contrast.forward = spy_match, spy_contrast
    losses = model(**data, mode="loss")
    assert len(seen) == 2 and pairs == [2 * 8, 2 * 8]            # two layers; 8 queries per image all matched
    corners = bbox_cxcywh_to_xyxy(torch.stack(seen))
    if clamp:
        assert corners.min() >= 0 and corners.max() <= 1
    assert all(torch.isfinite(v) for v in losses.values())


def test_released_query_prior_uses_the_students_reference_layer_on_teacher_queries(mm, tiny_detr, tmp_path):
    from kdhub_detection.detr_distill import run_transformer
    from kdhub_detection.query_group import released_query_inputs
    student, teacher, ckpt = tiny_detr
    model, data = _build(mm, distill(tmp_path, "d.py", student, teacher, ckpt,
                                     "dict(type='DETRDistill', top_k=10, query_prior='released')"))
    s_det, t_det = model.student, model.teacher
    inputs, samples = data["inputs"], data["data_samples"]
    s_det.eval()  # the encoder's attention dropout draws anew on a second run; without it both runs agree
    s_feats = s_det.extract_feat(inputs)
    s_dec_in, _ = run_transformer(s_det, s_feats, samples)
    with torch.no_grad():
        t_dec_in, _ = run_transformer(t_det, t_det.extract_feat(inputs), samples)
    q = released_query_inputs(s_det, s_feats, samples, t_dec_in)
    assert torch.equal(q["query_pos"], t_dec_in["query_pos"]) and torch.equal(q["query"], t_dec_in["query"])
    own_layer = s_det.reference_points_fc(t_dec_in["query_pos"]).sigmoid()     # the layer's own output
    assert torch.allclose(q["reference_points"], own_layer)
    assert not torch.allclose(q["reference_points"], t_dec_in["reference_points"])  # not the teacher's points
    assert torch.allclose(q["memory"], s_dec_in["memory"], atol=1e-6)       # the student's encoder, run again
    assert q["memory"] is not s_dec_in["memory"]
    s_det.train()
    losses = model(**data, mode="loss")
    group = [k for k in losses if "loss_qg_" in k]
    assert {"loss_qg_cls", "loss_qg_bbox", "loss_qg_iou", "d0.loss_qg_cls"} <= set(group)
    sum(losses[k] for k in group).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.reference_points_fc.weight.grad.abs().sum() > 0
    assert model.student.encoder.layers[0].ffn.layers[0][0].weight.grad.abs().sum() > 0
    assert model.student.query_embedding.weight.grad is None       # the group runs on the teacher's queries


def test_released_query_prior_is_refused_for_dino_with_the_fix(mm, tiny_dino, tmp_path):
    student, teacher, ckpt = tiny_dino
    models, _ = mm
    released = "dict(type='DETRDistill', query_prior='released')"
    cfg = load(distill(tmp_path, "d.py", student, teacher, ckpt, released)).cfg
    with pytest.raises(ConfigError, match="query_prior='released'.*DINO.*query_prior='teacher_queries'"):
        models.build(cfg.model)
    with pytest.raises(ConfigError, match="query_prior"):
        from kdhub_detection.detr_distill import DETRDistill
        DETRDistill(query_prior="teacher")


def test_released_query_prior_on_conditional_detr_uses_the_students_reference_head(mm, tmp_path):
    student = deformable_detr(tmp_path, "cs.py", base=8, detector="ConditionalDETR")
    teacher = deformable_detr(tmp_path, "ct.py", base=16, detector="ConditionalDETR")
    ckpt = save_random_detector(mm, teacher, tmp_path / "ct.pth")
    model, data = _build(mm, distill(tmp_path, "cd.py", student, teacher, ckpt,
                                     "dict(type='DETRDistill', query_prior='released')"))
    losses = model(**data, mode="loss")
    group = [k for k in losses if "loss_qg_" in k]
    assert {"loss_qg_cls", "d0.loss_qg_iou"} <= set(group)
    sum(losses[k] for k in group).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    # Conditional DETR's decoder makes its reference points from the positional query with its own head
    assert model.student.decoder.ref_point_head.layers[0].weight.grad.abs().sum() > 0
    assert model.student.query_embedding.weight.grad is None
