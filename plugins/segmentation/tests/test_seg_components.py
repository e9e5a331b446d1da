"""TransKD's components on their own: shapes, the paper's formulas, and where gradients go."""
import pytest
import torch
import torch.nn.functional as F

from kdhub_segmentation.csf import CSF, CrossSelectiveFusion
from kdhub_segmentation.ea import EmbeddingAssistant, OverlapPatchEmbedding
from kdhub_segmentation.gl_mixer import GatedConv1d, GLMixer
from kdhub_segmentation.hcl import HierarchicalContextLoss, hcl_stage
from kdhub_segmentation.patch_embed_loss import PatchEmbeddingLoss
from kdhub_segmentation.pea import PatchEmbeddingAlignment

S_WIDTHS, T_WIDTHS, SIZES = [8, 16, 40, 64], [16, 32, 80, 128], [16, 8, 4, 2]


def maps(widths, batch=2, grad=False):
    return [torch.randn(batch, c, s, s, requires_grad=grad) for c, s in zip(widths, SIZES)]


def test_csf_maps_student_stages_to_teacher_widths_and_fuses_deeper_stages():
    torch.manual_seed(0)
    csf = CSF(S_WIDTHS, T_WIDTHS, mid_channels=16, squeeze_channels=8)
    feats = maps(S_WIDTHS, grad=True)
    out = csf(feats)
    assert [tuple(o.shape) for o in out] == [(2, c, s, s) for c, s in zip(T_WIDTHS, SIZES)]
    assert not csf.stages[-1].fuse and all(st.fuse for st in csf.stages[:-1])
    # the shallowest output depends on every deeper stage (fusion runs deepest -> shallowest) ...
    out[0].sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    # ... and the deepest output on the deepest stage only
    feats2 = maps(S_WIDTHS, grad=True)
    csf(feats2)[-1].sum().backward()
    assert feats2[-1].grad.abs().sum() > 0 and all(f.grad is None for f in feats2[:-1])


def test_csf_gate_is_a_softmax_over_the_two_branches():
    torch.manual_seed(0)
    stage = CrossSelectiveFusion(8, 16, mid_channels=4, squeeze_channels=2).eval()
    f, deeper = torch.randn(3, 8, 4, 4), torch.randn(3, 4, 2, 2)
    x = stage.reduce(f)
    y = F.interpolate(deeper, size=(4, 4), mode="nearest")
    w = stage.select(stage.squeeze(F.adaptive_avg_pool2d(x + y, 1))).view(3, 2, 4, 1, 1).softmax(1)
    _, fused = stage(f, deeper)
    assert torch.allclose(fused, w[:, 0] * x + w[:, 1] * y, atol=1e-6)
    assert torch.allclose(w.sum(1), torch.ones(3, 4, 1, 1))
    with pytest.raises(ValueError, match="deeper stage"):
        stage(f)


def test_pea_is_token_wise_linear():
    pea = PatchEmbeddingAlignment(8, 16)
    tokens = torch.randn(2, 10, 8)
    out = pea(tokens)
    assert out.shape == (2, 10, 16)
    assert torch.allclose(out[:, 3], pea(tokens[:, 3:4])[:, 0], atol=1e-6)


def test_gl_mixer_mixes_global_attention_and_gated_local_convolution():
    torch.manual_seed(0)
    mixer = GLMixer(16, num_heads=2)
    tokens = torch.randn(2, 9, 16, requires_grad=True)
    out = mixer(tokens)
    assert out.shape == tokens.shape
    assert mixer.alpha.item() == mixer.beta.item() == 0.5
    glob, _ = mixer.attention(tokens, tokens, tokens)
    assert torch.allclose(out, 0.5 * glob + 0.5 * mixer.local(tokens), atol=1e-6)
    out.sum().backward()
    assert mixer.alpha.grad is not None and mixer.beta.grad is not None
    # the gated convolution is local: a token far from position 0 does not see it
    gate = GatedConv1d(4, kernel_size=3)
    x = torch.randn(1, 8, 4)
    y = x.clone()
    y[0, 0] += 10
    assert torch.allclose(gate(x)[0, 4:], gate(y)[0, 4:]) and not torch.allclose(gate(x)[0, :2], gate(y)[0, :2])
    with pytest.raises(ValueError, match="heads"):
        GLMixer(10, num_heads=3)


def test_ea_embeds_image_and_student_stages_at_teacher_widths():
    torch.manual_seed(0)
    ea = EmbeddingAssistant([3] + S_WIDTHS[:-1], T_WIDTHS, patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2])
    image = torch.randn(2, 3, 64, 64)
    feats = maps(S_WIDTHS)
    aligned = [torch.randn(2, s * s, c) for c, s in zip(T_WIDTHS, SIZES)]
    out = ea(aligned, [image] + feats[:-1])
    assert [tuple(o.shape) for o in out] == [tuple(a.shape) for a in aligned]
    assert ea.weights.shape == (2, 4) and torch.all(ea.weights == 0.5)
    emb = ea.embeddings[1]
    assert torch.allclose(out[1], 0.5 * aligned[1] + 0.5 * emb(feats[0]), atol=1e-6)
    assert OverlapPatchEmbedding(3, 8, 7, 4)(image).shape == (2, 256, 8)


def test_hcl_matches_the_formula_and_skips_levels_not_smaller_than_the_map():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    pool = lambda x, k: F.adaptive_avg_pool2d(x, k)
    want = (F.mse_loss(s, t) + 0.5 * F.mse_loss(pool(s, 4), pool(t, 4)) + 0.25 * F.mse_loss(pool(s, 2), pool(t, 2))
            + 0.125 * F.mse_loss(pool(s, 1), pool(t, 1))) / 1.875
    assert torch.allclose(hcl_stage(s, t), want)
    s2, t2 = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)  # 4 and 2 are skipped on a 2 x 2 map
    want2 = (F.mse_loss(s2, t2) + 0.5 * F.mse_loss(pool(s2, 1), pool(t2, 1))) / 1.5
    assert torch.allclose(hcl_stage(s2, t2), want2)
    assert torch.allclose(HierarchicalContextLoss()([s, s2], [t, t2]), want + want2)
    assert hcl_stage(t, t).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        hcl_stage(s, t2)


def test_patch_embedding_loss_weights_stages():
    a = [torch.randn(2, 5, 3) for _ in range(4)]
    t = [torch.randn(2, 5, 3) for _ in range(4)]
    want = sum(w * F.mse_loss(x, y) for w, x, y in zip((0.1, 0.1, 0.5, 1.0), a, t))
    assert torch.allclose(PatchEmbeddingLoss()(a, t), want)
    with pytest.raises(ValueError, match="weights"):
        PatchEmbeddingLoss((1.0,))(a, t)
