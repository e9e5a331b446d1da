"""Unit tests of the speech distillation components on hand-made tensors and tiny SpeechBrain models."""
import pytest
import torch
from speechbrain.lobes.models.conv_tasnet import MaskNet
from speechbrain.lobes.models.dual_path import Decoder, Dual_Path_Model, Encoder, SBTransformerBlock

from kdhub.taps import FeatureTaps
from kdhub_speech.intermediate import MASKS, IntermediateDistillation, read_frames
from kdhub_speech.metrics import si_snr
from kdhub_speech.models import Separator
from kdhub_speech.objective_shifting import ObjectiveShifting
from kdhub_speech.pit_kd import align_teacher, output_distillation, pit, pit_each, reorder


def sepformer(n=16, k=20):
    blk = lambda: SBTransformerBlock(num_layers=1, d_model=n, nhead=2, d_ffn=32, dropout=0.0,
                                     use_positional_encoding=True, norm_before=True)
    return Separator(Encoder(16, n), Dual_Path_Model(n, n, blk(), blk(), num_layers=2, K=k, num_spks=2,
                                                    linear_layer_after_inter_intra=False),
                     Decoder(in_channels=n, out_channels=1, kernel_size=16, stride=8, bias=False))


def convtasnet(n=16, b=8):
    return Separator(Encoder(16, n), MaskNet(n, b, 16, 3, 2, 2, 2, norm_type="gLN"),
                     Decoder(in_channels=n, out_channels=1, kernel_size=16, stride=8, bias=False))


def test_separator_shapes_both_families():
    torch.manual_seed(0)
    mix = torch.randn(3, 1203)
    for model in (sepformer(), convtasnet()):
        assert model(mix).shape == (3, 1203, 2)
        assert model(mix[:1]).shape == (1, 1203, 2)


def test_frames_view_of_dual_path_and_tcn_blocks():
    torch.manual_seed(0)
    mix = torch.randn(2, 1600)
    sf, ct = sepformer(), convtasnet()
    with FeatureTaps(sf, ["masknet.dual_mdl.1"]) as a, FeatureTaps(ct, ["masknet.temporal_conv_net.temporalblock_1_1"]) as b:
        sf(mix), ct(mix)
        frames = sf.num_frames(mix)
        dual, tcn = a["masknet.dual_mdl.1"], b["masknet.temporal_conv_net.temporalblock_1_1"]  # read once each
        assert dual.dim() == 4                         # [B, N, K, S]
        assert sf.frames(dual, frames).shape == (2, 16, frames)
        assert tcn.shape == (2, frames, 8)   # [B, L, B_ch]
        assert ct.frames(tcn, frames).shape == (2, 8, frames)
    # overlap-add inverts the model's own chunking
    w = torch.randn(2, 16, frames)
    seg, gap = sf.masknet._Segmentation(w, sf.masknet.K)
    assert torch.allclose(sf.frames(seg, frames), 2 * w, atol=1e-5)   # every frame lies in two chunks


def test_teacher_is_aligned_to_the_references_then_the_student_to_the_teacher():
    torch.manual_seed(0)
    refs = torch.randn(2, 800, 2)
    teacher = refs[..., [1, 0]] + 0.01 * torch.randn(2, 800, 2)      # right sources, swapped order
    aligned, sigma = align_teacher(teacher, refs)
    assert sigma.tolist() == [[1, 0], [1, 0]]
    assert torch.allclose(aligned, refs, atol=0.05)
    student = (aligned[..., [1, 0]] + 0.1 * torch.randn(2, 800, 2)).requires_grad_()
    before = aligned.clone()
    loss, pi = output_distillation(student, aligned)
    assert pi.tolist() == [[1, 0], [1, 0]]
    assert loss.item() < -15                                         # -SI-SNR of a close match
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert torch.equal(aligned, before)                              # cal_si_snr's in-place mask hit a clone


def test_teacher_only_alignment_leaves_the_teacher_alone():
    t = torch.randn(1, 100, 2)
    out, perms = align_teacher(t, None)
    assert out is t and perms is None


@pytest.mark.parametrize("spks", [2, 3])
def test_batched_pit_matches_speechbrains_pitwrapper(spks):
    from speechbrain.nnet.losses import PitWrapper, cal_si_snr
    torch.manual_seed(spks)
    refs = torch.randn(5, 600, spks)
    est = refs[..., torch.randperm(spks)] + 0.8 * torch.randn(5, 600, spks)
    loss, perms = pit(est, refs)
    sb_pit = PitWrapper(cal_si_snr)
    sb_loss, sb_perms = sb_pit(est.clone(), refs)
    assert torch.allclose(loss, sb_loss, atol=1e-3)
    assert perms.tolist() == [list(p) for p in sb_perms]
    assert torch.allclose(reorder(est, perms), sb_pit.reorder_tensor(est, sb_perms))
    assert torch.allclose(-loss, si_snr(reorder(est, perms), refs).mean(-1), atol=1e-3)


def test_objective_shifting_schedule():
    s = ObjectiveShifting(start=0.9, end=0.1, until=0.5)
    assert s.alpha(0) == pytest.approx(0.9)
    assert s.alpha(0.25) == pytest.approx(0.5)
    assert s.alpha(0.5) == pytest.approx(0.1) and s.alpha(1.0) == pytest.approx(0.1)
    c = ObjectiveShifting(start=1.0, end=0.0, shape="cosine")
    assert c.alpha(0.5) == pytest.approx(0.5) and c.alpha(0.25) > 0.5
    with pytest.raises(ValueError, match="start"):
        ObjectiveShifting(start=1.5)


def test_intermediate_distillation_gradients_reach_student_and_adapters_never_teacher():
    torch.manual_seed(0)
    student, teacher = convtasnet(n=16, b=8), sepformer(n=16)
    pairs = [("masknet.temporal_conv_net.temporalblock_0_1", "masknet.dual_mdl.0"), (MASKS, MASKS)]
    chans = IntermediateDistillation.probe_channels(student, teacher, pairs, 800)
    assert chans == [(8, 16), (16, 16)]
    kd = IntermediateDistillation(pairs, chans)
    for p in teacher.parameters():
        p.requires_grad_(False)
    mix = torch.randn(2, 800)
    with FeatureTaps(student, [s for s, _ in pairs]) as st, FeatureTaps(teacher, [t for _, t in pairs], detach=True) as tt:
        s_est = student(mix)
        with torch.no_grad():
            t_est = teacher(mix)
        _, pi = output_distillation(s_est, t_est)
        frames = student.num_frames(mix)
        loss = kd(read_frames(student, st, [s for s, _ in pairs], frames, pi),
                  read_frames(teacher, tt, [t for _, t in pairs], frames, None))
    loss.backward()
    assert all(p.grad is not None for p in kd.parameters())
    assert student.masknet.temporal_conv_net.temporalblock_0_0.layers.conv.conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_masks_are_put_in_the_permutation_order():
    masks = torch.arange(2 * 3 * 1 * 1, dtype=torch.float).view(2, 3, 1, 1)   # [spks, B, N, L]
    from kdhub_speech.intermediate import _masks_in_order
    out = _masks_in_order(masks, [(0, 1), (1, 0), (0, 1)]).view(3, 2)
    assert out.tolist() == [[0, 3], [4, 1], [2, 5]]


def test_mask_pairs_only_with_masks():
    with pytest.raises(ValueError, match="masks"):
        IntermediateDistillation([(MASKS, "masknet.dual_mdl.0")], [(16, 16)])


def test_pit_against_several_reference_sets_equals_separate_pits():
    torch.manual_seed(3)
    est, a, b = torch.randn(3, 200, 2), torch.randn(3, 200, 2), torch.randn(3, 200, 2)
    for (loss, perms), ref in zip(pit_each(est, [a, b]), (a, b)):
        ref_loss, ref_perms = pit(est, ref)
        assert torch.allclose(loss, ref_loss, atol=1e-5) and torch.equal(perms, ref_perms)


def test_a_checkpoint_interrupted_mid_save_is_never_recovered(tmp_path):
    """SpeechBrain writes CKPT.yaml before the parameter files; the atomic checkpointer shows a checkpoint only
    once every file is written, so recovery after a save that died halfway loads the previous one."""
    import speechbrain as sb
    from kdhub_speech.brain import AtomicCheckpointer

    model = torch.nn.Linear(2, 2)
    ckpt = AtomicCheckpointer(tmp_path, recoverables={"model": model})
    ckpt.save_checkpoint(meta={"n": 1})
    first = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)

    def dies(obj, path):
        raise KeyboardInterrupt("killed while saving")
    ckpt.custom_save_hooks["model"] = dies
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(meta={"n": 2})
    assert [c.meta["n"] for c in sb.utils.checkpoints.Checkpointer(tmp_path).list_checkpoints()] == [1]
    fresh = torch.nn.Linear(2, 2)
    AtomicCheckpointer(tmp_path, recoverables={"model": fresh}).recover_if_possible()
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in first.items())
    assert not any(p.name.startswith(AtomicCheckpointer.STAGING) for p in tmp_path.iterdir())  # cleaned up
