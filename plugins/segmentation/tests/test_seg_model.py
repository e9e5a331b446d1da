"""SegDistiller with TransKD and the core's terms: gradients, frozen teacher, state, pairing errors."""
import copy

import pytest
import torch
from mmengine.structures import PixelData

from kdhub.config import ConfigError
from seg_helpers import mit


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory, mmseg_scope):
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    teacher = MODELS.build(mit(16))
    teacher.init_weights()
    path = tmp_path_factory.mktemp("teacher") / "teacher.pth"
    torch.save({"meta": {}, "state_dict": teacher.state_dict()}, path)
    return path


def distiller_model(teacher_ckpt, distiller=None, student=None, teacher=None):
    from mmseg.registry import MODELS
    distiller = distiller or dict(type="TransKDDistiller", variant="base", csf_channels=8, csf_squeeze_channels=4)
    model = MODELS.build(dict(type="SegDistiller", student=student or mit(8),
                              teacher=dict(teacher or mit(16), checkpoint=str(teacher_ckpt)), distiller=distiller))
    model.init_weights()
    return model


def batch(n=2, size=32):
    from mmseg.structures import SegDataSample
    torch.manual_seed(1)
    samples = []
    for _ in range(n):
        s = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 10, (1, size, size))))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(s)
    return torch.randn(n, 3, size, size), samples


VARIANTS = [dict(type="TransKDDistiller", variant=v, csf_channels=8, csf_squeeze_channels=4, gl_heads=2)
            for v in ("base", "gl", "ea")] + [
    dict(type="TermsDistiller", terms=[dict(name="kd", loss=dict(type="kd", temperature=2.0),
                                            student="decode_head.conv_seg", teacher="decode_head.conv_seg")]),
    dict(type="TermsDistiller", terms=[dict(name="cwd", loss=dict(type="cwd", tau=4.0), weight=3.0,
                                            student="decode_head.conv_seg", teacher="decode_head.conv_seg")])]


@pytest.mark.parametrize("distiller", VARIANTS, ids=["transkd-base", "transkd-gl", "transkd-ea", "kd", "cwd"])
def test_gradients_reach_student_and_distiller_never_teacher(teacher_ckpt, distiller):
    model = distiller_model(teacher_ckpt, distiller)
    model.train()
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    inputs, samples = batch()
    losses = model(inputs, samples, mode="loss")
    assert "decode.loss_ce" in losses
    kd_terms = [k for k in losses if k.startswith("loss_")]
    assert kd_terms == (["loss_hcl", "loss_embed"] if distiller["type"] == "TransKDDistiller"
                        else [f"loss_{distiller['terms'][0]['name']}"])
    loss, _ = model.parse_losses(losses)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.distiller.parameters()) or not list(model.distiller.parameters())
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    assert not model.teacher.training
    torch.optim.AdamW(model.parameters(), lr=0.1).step()
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


def test_distillation_losses_fall_when_training_the_student(teacher_ckpt):
    model = distiller_model(teacher_ckpt)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    inputs, samples = batch(4)
    history = []
    for _ in range(25):
        losses = model(inputs, samples, mode="loss")
        history.append((losses["loss_hcl"].item(), losses["loss_embed"].item()))
        loss, _ = model.parse_losses(losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[-1][0] < 0.7 * history[0][0] and history[-1][1] < 0.7 * history[0][1]


def test_teacher_is_outside_the_module_tree_but_moves_with_the_model(teacher_ckpt):
    model = distiller_model(teacher_ckpt)
    keys = list(model.state_dict())
    assert keys and not any(k.startswith("teacher") or "._teacher" in k for k in keys)
    assert {k.split(".")[0] for k in keys} == {"student", "distiller"}
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in model.teacher.parameters()) * 2
    model.train()
    assert not model.teacher.training
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in model.teacher.parameters())
    saved = torch.load(teacher_ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(v.double(), model.teacher.state_dict()[k].double()) for k, v in saved.items())


def test_predict_and_tensor_modes_are_the_students(teacher_ckpt):
    model = distiller_model(teacher_ckpt).eval()
    inputs, samples = batch()
    with torch.no_grad():
        assert torch.equal(model(inputs, mode="tensor"), model.student._forward(inputs))
        preds = model(inputs, samples, mode="predict")
    assert preds[0].pred_sem_seg.data.shape == (1, 32, 32)


def test_student_starts_from_the_same_weights_as_a_plain_run(teacher_ckpt):
    from mmseg.registry import MODELS
    torch.manual_seed(5)
    plain = MODELS.build(mit(8))
    plain.init_weights()
    torch.manual_seed(5)
    model = distiller_model(teacher_ckpt, dict(type="TransKDDistiller", variant="ea", csf_channels=8,
                                               csf_squeeze_channels=4))
    for k, v in plain.state_dict().items():
        assert torch.equal(v, model.student.state_dict()[k]), k


def test_transkd_defaults_are_the_authors_gl_attention_and_ea_start(teacher_ckpt):
    """Without keys: GL-Mixer attention with 8 heads and no qkv bias, EA weights 0.1 .. 0.8; earlier forms by key."""
    small = dict(type="TransKDDistiller", csf_channels=8, csf_squeeze_channels=4)
    gl = distiller_model(teacher_ckpt, dict(small, variant="gl")).distiller.gl_mixer
    assert gl.attention.num_heads == 8 and gl.attention.qkv.bias is None
    assert gl.alpha.item() == gl.beta.item() == 0.5
    ea = distiller_model(teacher_ckpt, dict(small, variant="ea")).distiller.ea
    assert torch.equal(ea.weights.data, torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]))
    old_gl = distiller_model(teacher_ckpt, dict(small, variant="gl", gl_attention="mha", gl_heads=1)).distiller
    assert isinstance(old_gl.gl_mixer.attention, torch.nn.MultiheadAttention)
    old_ea = distiller_model(teacher_ckpt, dict(small, variant="ea", ea_init=0.5)).distiller.ea
    assert torch.equal(old_ea.weights.data, torch.full((2, 4), 0.5))


@pytest.mark.parametrize("change, message", [
    (dict(teacher=mit(16, num_stages=3)), "model.student.backbone.num_stages (4) != model.teacher.backbone.num_stages (3)"),
    (dict(teacher=mit(16, strides=(4, 2, 2, 1))), "model.student.backbone.strides"),
    (dict(distiller=dict(type="TransKDDistiller", variant="gl", gl_heads=3)), "model.distiller.gl_heads"),
    (dict(distiller=dict(type="TransKDDistiller", variant="big")), "model.distiller.variant"),
    (dict(distiller=dict(type="TransKDDistiller", variant="gl", gl_attention="linear")),
     "model.distiller.gl_attention"),
    (dict(distiller=dict(type="TransKDDistiller", variant="ea", ea_init="zeros")), "model.distiller.ea_init"),
    (dict(distiller=dict(type="TransKDDistiller", embed_weights=(1.0,))), "model.distiller.embed_weights"),
    (dict(teacher=mit(16, num_classes=5), distiller=VARIANTS[3]), "num_classes"),
    (dict(distiller=dict(type="TermsDistiller", terms=[dict(name="x", loss=dict(type="kd"), student="decode_head.nope",
                                                            teacher="decode_head.conv_seg")])), "decode_head.conv_seg"),
])
def test_pairs_the_components_cannot_bridge_are_named(teacher_ckpt, tmp_path, change, message):
    from mmseg.registry import MODELS
    teacher = change.get("teacher")
    ckpt = teacher_ckpt
    if teacher is not None:  # a checkpoint that fits the changed teacher
        t = MODELS.build(teacher)
        ckpt = tmp_path / "t.pth"
        torch.save({"state_dict": t.state_dict()}, ckpt)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        distiller_model(ckpt, change.get("distiller"), teacher=teacher)


def test_missing_or_unfitting_teacher_checkpoint_is_named(teacher_ckpt, tmp_path):
    with pytest.raises(ConfigError, match="model.teacher.checkpoint: checkpoint not found"):
        distiller_model(tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match="model.teacher.checkpoint: .* does not fit the configured model"):
        distiller_model(teacher_ckpt, teacher=mit(8))
    from mmseg.registry import MODELS
    with pytest.raises(ConfigError, match="model.teacher.checkpoint is not set"):
        MODELS.build(dict(type="SegDistiller", student=mit(8), teacher=mit(16),
                          distiller=dict(type="TransKDDistiller")))


def test_transkd_needs_two_images_per_batch(teacher_ckpt):
    model = distiller_model(teacher_ckpt).train()
    inputs, samples = batch(1)
    with pytest.raises(ConfigError, match="train_dataloader.batch_size: TransKDDistiller needs at least 2"):
        model(inputs, samples, mode="loss")


def test_paper_recipe_pairs_mit_b2_with_mit_b0(mmseg_scope):
    """The Cityscapes recipe loads through the plugin and its B2 teacher / B0 student pair builds with TransKD."""
    from kdhub_segmentation.plugin import kdhub_load_config
    from kdhub_segmentation.task import CONFIG_DIR, check_pairing
    loaded = kdhub_load_config(CONFIG_DIR / "transkd_mit-b2_to_mit-b0_cityscapes-512x1024.py",
                               ["model.distiller.variant=ea"])
    assert loaded.method == "transkd-ea" and loaded.cfg.train_dataloader.batch_size == 2
    assert loaded.cfg.optim_wrapper.optimizer.lr == 6e-5 and loaded.cfg.param_scheduler[1].end == 160000
    check_pairing(loaded.cfg)
