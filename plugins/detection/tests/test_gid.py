"""GID components on hand-made cases (GISM selection, relation loss, GI-box positives) and on tiny detectors."""
import pytest
import torch

from kdhub import RKDDistanceLoss
from kdhub.config import ConfigError

from conftest import batch_of, save_random_detector
from detection_helpers import distill, load, retinanet


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
    gid = GID()
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
