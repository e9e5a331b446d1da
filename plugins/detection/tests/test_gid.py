"""GID components on hand-made cases (GISM selection, relation loss, GI-box positives, GISM on RoI-head outputs)
and on tiny RetinaNet, FCOS and Faster R-CNN pairs."""
import pytest
import torch

from kdhub import RKDDistanceLoss
from kdhub.config import ConfigError

from conftest import batch_of, save_random_detector, train_steps
from detection_helpers import distill, faster_rcnn, load, retinanet


def test_gism_scores_box_source_nms_and_top_k():
    from kdhub_detection.gism import GISM
    t = torch.tensor([[0.9, 0.1], [0.8, 0.1], [0.1, 0.1], [0.2, 0.7], [0.5, 0.5]])
    s = torch.tensor([[0.1, 0.1], [0.7, 0.1], [0.1, 0.1], [0.2, 0.1], [0.5, 0.45]])
    # GI scores 0.8, 0.1, 0.0, 0.6, 0.05; position 1's box overlaps position 0's (IoU 0.68 > 0.3)
    t_boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [30, 0, 40, 10], [0, 30, 10, 40.]])
    s_boxes = t_boxes + torch.tensor([2., 2., 2., 2.])
    sel = GISM(iou_threshold=0.3, top_k=10).select(t, s, t_boxes, s_boxes)
    assert sel.index.tolist() == [0, 3, 4]                       # by decreasing GI score; 1 suppressed, 2 zero
    assert torch.allclose(sel.scores, torch.tensor([0.8, 0.6, 0.05]))
    assert sel.from_teacher.tolist() == [True, True, False]      # ties (0.5 vs 0.5) take the student's box
    assert torch.equal(sel.bboxes, torch.stack([t_boxes[0], t_boxes[3], s_boxes[4]]))
    assert sel.labels.tolist() == [0, 1, 0]
    assert GISM(iou_threshold=0.3, top_k=2).select(t, s, t_boxes, s_boxes).index.tolist() == [0, 3]
    assert GISM(iou_threshold=0.9, top_k=10).select(t, s, t_boxes, s_boxes).index.tolist() == [0, 3, 1, 4]
    assert GISM(nms_pre=2).select(t, s, t_boxes, s_boxes).index.tolist() == [0, 3]


def test_relation_loss_is_scale_free_and_per_image():
    from kdhub_detection.gid import GID
    torch.manual_seed(0)
    f_t = torch.randn(5, 8, 3, 3)
    assert RKDDistanceLoss()(3.0 * f_t, f_t).item() < 1e-6       # distances normalised by their mean
    f_s = torch.randn(5, 4, 3, 3, requires_grad=True)             # widths may differ
    gid = GID(relation_scope="image")                             # kdhub's earlier form (default: the batch)
    loss = gid._relation(f_s, f_t, torch.tensor([0., 0., 0., 1., 2.]))
    expected = RKDDistanceLoss()(f_s[:3], f_t[:3])                # images 1 and 2 have one instance: no pairs
    assert torch.allclose(loss, expected) and loss.item() > 0
    loss.backward()
    assert f_s.grad[:3].abs().sum() > 0 and f_s.grad[3:].abs().sum() == 0


def _pair(mm, cfg_path):
    models, _ = mm
    loaded = load(cfg_path)
    torch.manual_seed(1)
    model = models.build(loaded.cfg.model)
    model.init_weights()
    return model, batch_of(mm, loaded.cfg, n=2)


def test_gi_box_positives_follow_the_heads_own_assignment(mm, tiny_retina, tmp_path):
    from kdhub_detection.dense_heads import DenseHeadView
    from mmdet.structures.bbox import bbox_overlaps
    from mmengine.structures import InstanceData
    student, teacher, ckpt = tiny_retina
    model, data = _pair(mm, distill(tmp_path, "gid.py", student, teacher, ckpt, "dict(type='GID')"))
    det = model.student
    outs = det.bbox_head(det.extract_feat(data["inputs"]))
    view = DenseHeadView(det.bbox_head)
    metas = [s.metainfo for s in data["data_samples"]]
    gi = [InstanceData(bboxes=torch.tensor([[8., 8., 40., 40.]]), labels=torch.tensor([2])),
          InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))]
    pos = view.positives(outs, gi, metas)
    anchors = torch.cat(view.priors(outs))
    flat = view.flatten(outs, training=True)
    assert pos.shape == flat.logits.shape[:2] == (2, len(anchors))
    assert pos[0].any() and not pos[1].any()
    ious = bbox_overlaps(anchors, gi[0].bboxes).squeeze(1)
    assert (ious[pos[0]] >= 0.5).all() and pos[0][ious >= 0.5].all()  # MaxIoUAssigner, pos_iou_thr 0.5
    # decoding zero deltas gives the anchors back: the flattening order is the prior order
    zero = tuple([torch.zeros_like(m) for m in outs[0]]), tuple([torch.zeros_like(m) for m in outs[1]])
    assert torch.allclose(view.flatten(zero, training=True).boxes[0], anchors, atol=1e-4)


def test_gid_losses_reach_the_student_and_never_the_teacher(mm, tiny_retina, tmp_path):
    from mmengine.logging import MessageHub
    student, teacher, ckpt = tiny_retina
    model, data = _pair(mm, distill(tmp_path, "gid.py", student, teacher, ckpt,
                                    "dict(type='GID', feature_weight=1e-2, top_k=4, log_boxes_every=1)"))
    model.train()
    losses = model(**data, mode="loss")
    assert {"loss_cls", "loss_bbox", "loss_gid_feat", "loss_gid_rel", "loss_gid_cls", "loss_gid_reg"} <= set(losses)
    assert all(len(sel) <= 4 for sel in model.distiller.last_selection)
    assert MessageHub.get_current_instance().get_scalar("train/gid_boxes_per_image").current() > 0
    lines = model.distiller.describe_selection([s.metainfo for s in data["data_samples"]])
    assert len(lines) == 2 and "boxes [[" in lines[0] and "source " in lines[0]
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.distiller.adapter[0].weight.grad.abs().sum() > 0  # FPN 16 -> 32 adapter
    assert not model.teacher.training                               # frozen teacher stays in eval mode
    assert not any(k.startswith("teacher.") for k in model.state_dict())
    # distillation terms alone also move the student: switch the GT loss out by dropping it
    model.zero_grad()
    gid = model.distiller
    s_feats = model.student.extract_feat(data["inputs"])
    s_outs = model.student.bbox_head(s_feats)
    with torch.no_grad():
        t_feats = model.teacher.extract_feat(data["inputs"])
        t_outs = model.teacher.bbox_head(t_feats)
    terms = gid.distill(s_feats, s_outs, t_feats, t_outs, [s.metainfo for s in data["data_samples"]])
    sum(terms.values()).backward()
    assert model.student.bbox_head.retina_cls.weight.grad.abs().sum() > 0


def test_gid_on_fcos_uses_training_units_for_the_eval_mode_teacher(mm, tmp_path):
    models, _ = mm
    student = retinanet(tmp_path, "fs.py", base=8, fpn=16, head="FCOSHead")
    teacher = retinanet(tmp_path, "ft.py", base=16, fpn=32, head="FCOSHead")
    ckpt = save_random_detector(mm, teacher, tmp_path / "ft.pth")
    model, data = _pair(mm, distill(tmp_path, "gidf.py", student, teacher, ckpt, "dict(type='GID')"))
    model.train()
    losses = model(**data, mode="loss")
    assert {"loss_centerness", "loss_gid_reg", "loss_gid_feat"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    head = model.student.bbox_head
    feats = model.student.extract_feat(data["inputs"])
    from kdhub_detection.dense_heads import DenseHeadView
    view = DenseHeadView(head)
    train_view = view.flatten(head(feats), training=True)
    head.eval()
    eval_view = view.flatten(head(feats), training=False)             # eval mode multiplies by the stride
    head.train()
    assert torch.allclose(train_view.reg, eval_view.reg, atol=1e-5)
    assert torch.allclose(train_view.boxes, eval_view.boxes, atol=1e-3)


def test_gid_refuses_teacher_and_student_with_different_heads(mm, tmp_path):
    student = retinanet(tmp_path, "s.py", base=8, fpn=16)
    teacher = retinanet(tmp_path, "t.py", base=8, fpn=16, head="FCOSHead")
    ckpt = save_random_detector(mm, teacher, tmp_path / "t.pth")
    models, _ = mm
    cfg = load(distill(tmp_path, "g.py", student, teacher, ckpt, "dict(type='GID')")).cfg
    with pytest.raises(ConfigError, match="same head type"):
        models.build(cfg.model)


@pytest.fixture(scope="module")
def tiny_frcnn(tmp_path_factory, mm):
    tmp = tmp_path_factory.mktemp("frcnn")
    student, teacher = faster_rcnn(tmp, "student.py"), faster_rcnn(tmp, "teacher.py", base=16, fpn=32, fc=64)
    return student, teacher, save_random_detector(mm, teacher, tmp / "teacher.pth")


def test_gism_on_the_roi_heads_outputs_of_shared_proposals(mm, tiny_frcnn, tmp_path):
    student, teacher, ckpt = tiny_frcnn
    model, _ = _pair(mm, distill(tmp_path, "g.py", student, teacher, ckpt, "dict(type='GID')"))
    gid = model.distiller
    metas = [{"img_shape": (64, 64)}, {"img_shape": (64, 64)}]
    rois = torch.tensor([[0, 0, 0, 20, 20], [0, 1, 1, 21, 21], [0, 40, 40, 60, 60], [0, 0, 40, 20, 60],
                         [1, 5, 5, 25, 25.]])
    t_cls, s_cls = torch.zeros(5, 6), torch.zeros(5, 6)       # 5 classes + background, all uniform ...
    t_cls[0, 2] = t_cls[1, 2] = 4.0                            # ... but the teacher sees class 2 on RoIs 0 and 1
    t_cls[1, 5] = 3.0                                          # (RoI 1 also background: a lower GI score)
    s_cls[2, 4] = 5.0                                          # and the student class 4 on RoI 2; RoI 3 agrees
    t_cls[4, 1] = 1.0                                          # image 1: a mild disagreement
    t_reg, s_reg = torch.zeros(5, 20), torch.zeros(5, 20)      # class-specific deltas: RoIs are kept ...
    t_reg[0] = 3.0
    t_reg[0, 8:12] = torch.tensor([1.0, 0, 0, 0])              # ... except RoI 0, moved by the class-2 deltas
    sel = gid.select_on_rois(rois, s_cls, s_reg, t_cls, t_reg, metas)
    probs = lambda z: z.softmax(dim=1)[:, :5]                  # noqa: E731  (background dropped)
    gi = (probs(t_cls) - probs(s_cls)).abs().max(dim=1).values
    assert gi[3] == 0                                          # no disagreement, no general instance
    assert sel[0].index.tolist() == [2, 0] and sel[1].index.tolist() == [0]  # RoI 1 overlaps RoI 0: suppressed
    assert torch.allclose(sel[0].scores, gi[[2, 0]]) and torch.allclose(sel[1].scores, gi[[4]])
    assert sel[0].from_teacher.tolist() == [False, True] and sel[0].labels.tolist() == [4, 2]
    # the refined box of the more confident model's top class: dx = 1 x std 0.1 x width 20 = 2 px
    assert torch.allclose(sel[0].bboxes, torch.tensor([[40, 40, 60, 60], [2, 0, 22, 20.]]), atol=1e-4)
    # response positives: RoIs the RoI head's own assigner (IoU >= 0.5) gives a GI box, with its class
    pos, labels = gid.s_rois.positives(rois, sel)
    assert pos.tolist() == [True, True, True, False, True] and labels.tolist() == [2, 2, 4, -1, 1]


def test_gid_on_faster_rcnn_losses_reach_the_student_and_never_the_teacher(mm, tiny_frcnn, tmp_path):
    student, teacher, ckpt = tiny_frcnn
    model, data = _pair(mm, distill(tmp_path, "g.py", student, teacher, ckpt, "dict(type='GID', top_k=4)"))
    model.train()
    losses = model(**data, mode="loss")
    gid_terms = {"loss_gid_feat", "loss_gid_rel", "loss_gid_cls", "loss_gid_reg", "loss_gid_rpn_cls",
                 "loss_gid_rpn_reg"}
    assert {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"} | gid_terms <= set(losses)
    assert all(torch.isfinite(losses[k]) for k in gid_terms)
    assert all(0 < len(sel) <= 4 for sel in model.distiller.last_selection)
    assert model.distiller.adapter[0].weight.shape[:2] == (32, 16)                # FPN 16 -> 32
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    # each response term alone moves its own head of the student
    head = model.student.roi_head.bbox_head
    for name, param in (("loss_gid_cls", head.fc_cls.weight), ("loss_gid_reg", head.fc_reg.weight),
                        ("loss_gid_rpn_cls", model.student.rpn_head.rpn_cls.weight),
                        ("loss_gid_feat", model.student.neck.fpn_convs[0].conv.weight)):
        model.zero_grad()
        model(**data, mode="loss")[name].backward()
        assert param.grad.abs().sum() > 0, name
    no_rpn = _pair(mm, distill(tmp_path, "n.py", student, teacher, ckpt, "dict(type='GID', rpn_weight=0)"))[0]
    no_rpn.train()
    assert not {"loss_gid_rpn_cls", "loss_gid_rpn_reg"} & set(no_rpn(**data, mode="loss"))


def test_gid_faster_rcnn_train_steps_lower_the_loss_and_leave_the_teacher(mm, tiny_frcnn, tmp_path):
    student, teacher, ckpt = tiny_frcnn
    model, totals, teacher_before = train_steps(mm, load(distill(tmp_path, "g.py", student, teacher, ckpt,
                                                                 "dict(type='GID', top_k=4)")).cfg)
    assert all(torch.isfinite(torch.tensor(totals))) and totals[-1] < totals[0], totals
    assert all(torch.equal(teacher_before[k], v) for k, v in model.teacher.state_dict().items())


def test_gid_refuses_mixed_detector_kinds_and_checks_two_stage_class_sets(mm, tiny_frcnn, tiny_retina, tmp_path):
    f_student, f_teacher, f_ckpt = tiny_frcnn
    r_student, r_teacher, r_ckpt = tiny_retina
    models, _ = mm
    mixed = load(distill(tmp_path, "m.py", f_student, r_teacher, r_ckpt, "dict(type='GID')")).cfg
    with pytest.raises(ConfigError, match="same head type.*FasterRCNN.*RetinaNet"):
        models.build(mixed.model)
    with pytest.raises(ConfigError, match="DETRDistill supports DETR-family detectors.*FasterRCNN.*GID"):
        load(distill(tmp_path, "d.py", f_student, f_teacher, f_ckpt, "dict(type='DETRDistill')"))
    with pytest.raises(ConfigError, match="different class sets: student roi_head.bbox_head.num_classes=4"):
        load(distill(tmp_path, "c.py", f_student, f_teacher, f_ckpt, "dict(type='GID')"),
             ["model.student.roi_head.bbox_head.num_classes=4"])


@pytest.mark.parametrize("config, teacher", [
    ("gid_faster_rcnn_r18w32_r18w16_synth.py", "faster_rcnn_r18w32_synth.py"),
    ("detrdistill_dino_r18w32_r18w16_synth.py", "dino_r18w32_synth.py")])
def test_shipped_two_stage_and_dino_demo_configs_build(mm, tmp_path, config, teacher):
    from detection_helpers import CONFIGS
    models, _ = mm
    ckpt = save_random_detector(mm, CONFIGS / teacher, tmp_path / "t.pth")
    model = models.build(load(CONFIGS / config, [f"model.teacher.checkpoint={ckpt}"]).cfg.model)
    assert model.teacher.__class__ is model.student.__class__
    assert sum(p.numel() for p in model.teacher.parameters()) > sum(p.numel() for p in model.student.parameters())


def test_gism_in_chunks_from_logits_selects_as_on_whole_probabilities():
    """GISM computes its per-position scores a chunk of positions at a time, from logits through ``prob``; the
    selection is the one the whole-tensor form makes on probabilities computed beforehand."""
    from kdhub_detection.gism import GISM
    g = torch.Generator().manual_seed(0)
    n, c = 5000, 80
    t_logits, s_logits = torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3
    xy, wh = torch.rand(n, 2, generator=g) * 500, torch.rand(n, 2, generator=g) * 100 + 1
    t_boxes = torch.cat([xy, xy + wh], dim=1)
    s_boxes = t_boxes + torch.randn(n, 4, generator=g)
    chunked = GISM(top_k=10, chunk=700).select(t_logits, s_logits, t_boxes, s_boxes, prob=torch.sigmoid)
    whole = GISM(top_k=10, chunk=n).select(t_logits.sigmoid(), s_logits.sigmoid(), t_boxes, s_boxes)
    assert len(whole) == 10
    for key in ("index", "scores", "bboxes", "labels", "from_teacher"):
        assert torch.equal(getattr(chunked, key), getattr(whole, key)), key
