"""TransKD's components on their own: shapes, the paper's formulas, and where gradients go."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdhub_segmentation.csf import CSF, CrossSelectiveFusion
from kdhub_segmentation.ea import EmbeddingAssistant, OverlapPatchEmbedding
from kdhub_segmentation.gl_mixer import GatedConv1d, GLMixer, TokenSelfAttention
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
    assert torch.allclose(out, 0.5 * mixer.attention(tokens) + 0.5 * mixer.local(tokens), atol=1e-6)
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
    with pytest.raises(ValueError, match="attention"):
        GLMixer(16, attention="linear")


def test_gl_mixer_attention_is_segformers_with_eight_heads_and_no_qkv_bias():
    """The authors' GL-Mixer on MiT-B0's 256-wide last stage: one qkv map 256 -> 3 x 256 without bias, 8 heads of
    32 channels (scale 32^-0.5), an output map 256 -> 256 with bias."""
    mixer = GLMixer(256)
    att = mixer.attention
    assert isinstance(att, TokenSelfAttention) and att.num_heads == 8
    assert att.scale == 32 ** -0.5
    assert tuple(att.qkv.weight.shape) == (768, 256) and att.qkv.bias is None
    assert tuple(att.proj.weight.shape) == (256, 256) and tuple(att.proj.bias.shape) == (256,)
    assert sorted(n for n, _ in att.named_parameters()) == ["proj.bias", "proj.weight", "qkv.weight"]
    assert GLMixer(256, qkv_bias=True).attention.qkv.bias.shape == (768,)
    # kdhub's earlier form stays behind the switch: torch's MultiheadAttention, whose input projection has a bias
    old = GLMixer(256, num_heads=1, attention="mha").attention
    assert isinstance(old, nn.MultiheadAttention) and old.num_heads == 1 and old.in_proj_bias.shape == (768,)


def test_token_self_attention_by_hand():
    """Two tokens (1, 0) and (0, 2), width 2, two heads of one channel each (scale 1), q = k = v = the tokens and an
    identity output map. Head 1 reads channel 0, values (1, 0): token 0 scores (1, 0) -> weights (e, 1) / (e + 1) ->
    e / (e + 1) = 0.7310586; token 1 scores (0, 0) -> 0.5. Head 2 reads channel 1, values (0, 2): token 0 scores
    (0, 0) -> 1.0; token 1 scores (0, 4) -> 2 e^4 / (1 + e^4) = 1.9640276."""
    att = TokenSelfAttention(2, num_heads=2)
    with torch.no_grad():
        att.qkv.weight.copy_(torch.cat([torch.eye(2)] * 3))
        att.proj.weight.copy_(torch.eye(2))
        att.proj.bias.zero_()
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    assert torch.allclose(att(x), torch.tensor([[[0.7310586, 1.0], [0.5, 1.9640276]]]), atol=1e-6)
    # the same module agrees with torch's own multi-head attention given the same weights and a zero input bias
    torch.manual_seed(0)
    att = TokenSelfAttention(16, num_heads=8)
    ref = nn.MultiheadAttention(16, 8, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(att.qkv.weight)
        ref.in_proj_bias.zero_()
        ref.out_proj.weight.copy_(att.proj.weight)
        ref.out_proj.bias.copy_(att.proj.bias)
    tokens = torch.randn(2, 9, 16)
    assert torch.allclose(att(tokens), ref(tokens, tokens, tokens, need_weights=False)[0], atol=1e-5)


def test_ea_embeds_image_and_student_stages_at_teacher_widths():
    torch.manual_seed(0)
    ea = EmbeddingAssistant([3] + S_WIDTHS[:-1], T_WIDTHS, patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2])
    image = torch.randn(2, 3, 64, 64)
    feats = maps(S_WIDTHS)
    aligned = [torch.randn(2, s * s, c) for c, s in zip(T_WIDTHS, SIZES)]
    out = ea(aligned, [image] + feats[:-1])
    assert [tuple(o.shape) for o in out] == [tuple(a.shape) for a in aligned]
    emb = ea.embeddings[1]
    # stage 2: PEA weight 0.2, EA weight 0.6 (the authors' start, next test)
    assert torch.allclose(out[1], 0.2 * aligned[1] + 0.6 * emb(feats[0]), atol=1e-6)
    assert OverlapPatchEmbedding(3, 8, 7, 4)(image).shape == (2, 256, 8)


def test_ea_mixing_weights_start_as_in_the_authors_code():
    """0.1 x (k + 1) for the k-th of the eight scalars, the four PEA weights first."""
    ea = EmbeddingAssistant([3] + S_WIDTHS[:-1], T_WIDTHS, patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2])
    assert ea.weights.shape == (2, 4) and ea.weights.requires_grad
    assert torch.equal(ea.weights.data, torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]))
    old = EmbeddingAssistant([3] + S_WIDTHS[:-1], T_WIDTHS, [7, 3, 3, 3], [4, 2, 2, 2], init=0.5)
    assert torch.equal(old.weights.data, torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="init"):
        EmbeddingAssistant([3], [16], [7], [4], init="zeros")


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
