"""GID's feature loss, relation loss and RoI level mapping against values worked out by hand from the definitions in
the first author's released reproduction (and the switched-off earlier forms), on inputs small enough to write out."""
import pytest
import torch

from kdhub.config import ConfigError

from detection_helpers import distill, load


def _gid(**kw):
    from kdhub_detection.gid import GID
    return GID(**kw)


def test_defaults_are_the_released_codes():
    gid = _gid()
    assert gid.feature_weight == 0.005 and gid.relation_weight == 40.0
    assert gid.roi_size == 10 and gid.roi_sampling_ratio == 2
    assert gid.feature_norm == "pixel" and gid.relation_scope == "batch"
    assert (gid.canonical_scale, gid.canonical_level, gid.finest_scale) == (224.0, 4, None)
    with pytest.raises(ConfigError, match="feature_norm='mean' is not one of 'pixel', 'instance'"):
        _gid(feature_norm="mean")
    with pytest.raises(ConfigError, match="relation_scope='pairs' is not one of 'batch', 'image'"):
        _gid(relation_scope="pairs")


# Two instances, two channels, a 2 x 2 grid. Teacher minus student, cell by cell:
#   instance 0, channel 0: [[1, 2], [3, 4]] -> squares 1 + 4 + 9 + 16 = 30
#   instance 0, channel 1: [[1, 1], [1, 1]] -> 4
#   instance 1, channel 0: [[0, 0], [0, 0]] -> 0
#   instance 1, channel 1: [[-1, -1], [-1, -1]] -> 4
# Sum over everything: 38.
# 'pixel' (released code): 38 / (N x H x W) = 38 / (2 x 2 x 2) = 4.75
# 'instance' (paper's equation): per instance 34 and 4, mean (34 + 4) / 2 = 19
F_T = torch.tensor([[[[1., 2.], [3., 4.]], [[1., 1.], [1., 1.]]],
                    [[[5., 5.], [5., 5.]], [[0., 0.], [0., 0.]]]])
F_S = torch.tensor([[[[0., 0.], [0., 0.]], [[0., 0.], [0., 0.]]],
                    [[[5., 5.], [5., 5.]], [[1., 1.], [1., 1.]]]])


def test_feature_loss_is_a_per_cell_channel_sum_by_default():
    assert _gid()._feature(F_S, F_T).item() == pytest.approx(4.75)
    assert _gid(feature_norm="instance")._feature(F_S, F_T).item() == pytest.approx(19.0)


def test_feature_loss_goes_through_the_adapter():
    gid = _gid()
    gid.adapter = torch.nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        gid.adapter.weight.copy_(torch.eye(2).view(2, 2, 1, 1) * 2.0)   # adapt(f_S) = 2 f_S
    # teacher minus 2 x student: instance 0 is unchanged (its student features are 0): 30 + 4 = 34;
    # instance 1 channel 0: 5 - 10 = -5 on 4 cells -> 100; channel 1: 0 - 2 = -2 on 4 cells -> 16.
    # Sum 34 + 100 + 16 = 150, / (2 x 2 x 2) = 18.75
    assert gid._feature(F_S, F_T).item() == pytest.approx(18.75)


# Three instances, the first two from image 0, the third from image 1 (features [3, 2, 1, 1]).
# Teacher points (0, 0), (3, 0), (0, 4): distances d01 = 3, d02 = 4, d12 = 5; the 6 off-diagonal entries average
#   (3 + 4 + 5) x 2 / 6 = 4, normalised 0.75, 1.0, 1.25.
# Student points (0, 0), (1, 0), (2, 0): d01 = 1, d02 = 2, d12 = 1, mean 4 / 3, normalised 0.75, 1.5, 0.75.
# Differences 0, 0.5, 0.5; smooth-L1 (beta 1) 0, 0.5 x 0.5^2 = 0.125, 0.125; over both (i, j) and (j, i): 0.5.
# Released form: 0.5 / (n^2 - n) = 0.5 / 6 = 1/12.
T3 = torch.tensor([[0., 0.], [3., 0.], [0., 4.]]).view(3, 2, 1, 1)
S3 = torch.tensor([[0., 0.], [1., 0.], [2., 0.]]).view(3, 2, 1, 1)


def test_relation_over_the_whole_batch_divides_the_smooth_l1_sum_by_the_pairs():
    s = S3.clone().requires_grad_(True)
    image_of = torch.tensor([0., 0., 1.])
    loss = _gid()._relation(s, T3, image_of)
    assert loss.item() == pytest.approx(1 / 12)
    loss.backward()
    assert (s.grad.flatten(1).abs().sum(dim=1) > 0).all()           # every instance of the batch takes part
    # earlier form, pairs within an image: image 0 has two instances, whose normalised distances are 1 in both
    # models (loss 0); image 1 has one (no pair)
    assert _gid(relation_scope="image")._relation(S3, T3, image_of).item() == pytest.approx(0.0)
    # earlier form with all three in one image: kdhub's RKDDistanceLoss averages the same 0.5 over all 9 entries
    assert _gid(relation_scope="image")._relation(S3, T3, torch.zeros(3)).item() == pytest.approx(0.5 / 9)
    # two instances: 0 (the released code returns 0 below three; both normalised matrices are [[0, 1], [1, 0]])
    assert _gid()._relation(S3[:2], T3[:2], image_of[:2]).item() == pytest.approx(0.0)
    assert _gid()._relation(S3[:1], T3[:1], image_of[:1]).item() == 0.0


def _square(side, x0=16.0):
    return [0.0, x0, x0, x0 + side, x0 + side]


# The canonical rule, k = floor(4 + log2(side / 224)):
#   side 56 -> 4 - 2 = 2 (P2); 111 -> 4 + log2(0.4955) = 2.99 -> 2 (P2); 112 -> 3 (P3); 224 -> 4 (P4);
#   448 -> 5 (P5); 896 -> 6 (P6)
SIDES = [56.0, 111.0, 112.0, 224.0, 448.0, 896.0]


@pytest.mark.parametrize("strides, expected", [
    ([8, 16, 32, 64, 128], [0, 0, 0, 1, 2, 3]),   # RetinaNet P3-P7: P2 clamps to P3 (index 0); P4 is index 1
    ([4, 8, 16, 32], [0, 0, 1, 2, 3, 3]),          # Faster R-CNN P2-P5: P6 clamps to P5 (index 3)
    ([8, 16, 32, 64], [0, 0, 0, 1, 2, 3]),         # the embedded-set RetinaNet, P3-P6
])
def test_canonical_level_rule_puts_224_px_on_p4(mm, strides, expected):
    rois = torch.tensor([_square(s) for s in SIDES])
    gid = _gid()
    extractor = gid.roi_extractor(4, strides)
    assert extractor.map_roi_levels(rois, len(strides)).tolist() == expected
    # the earlier mapping (mmdet's rule, floor(log2(side / finest_scale)) from the first level, finest_scale 56):
    # 56 -> 0, 111 -> 0, 112 -> 1, 224 -> 2, 448 -> 3, 896 -> 4 (clamped to the last index)
    old = _gid(finest_scale=56).roi_extractor(4, strides)
    assert old.map_roi_levels(rois, len(strides)).tolist() == [min(v, len(strides) - 1) for v in [0, 0, 1, 2, 3, 4]]


def test_canonical_extractor_pools_the_mapped_level_on_a_10_by_10_grid(mm):
    # FPN levels P3-P7 of a 512 px image, each filled with its own level number: a box's pooled features equal
    # the level it was sent to
    strides = [8, 16, 32, 64, 128]
    feats = tuple(torch.full((1, 2, 512 // s, 512 // s), float(k)) for k, s in zip(range(3, 8), strides))
    rois = torch.tensor([_square(112.0), _square(224.0), _square(448.0, x0=32.0)])
    out = _gid().roi_extractor(2, strides)(feats, rois)
    assert out.shape == (3, 2, 10, 10)
    for box, level in enumerate([3.0, 4.0, 5.0]):
        assert torch.allclose(out[box], torch.full((2, 10, 10), level)), box


def test_canonical_rule_refuses_strides_that_are_not_fpn_levels(mm):
    with pytest.raises(ConfigError, match="strides 2\\^k of consecutive levels.*finest_scale"):
        _gid().roi_extractor(4, [8, 24, 64])
    assert _gid(finest_scale=16).roi_extractor(4, [8, 24, 64]).finest_scale == 16


def test_a_built_distiller_uses_the_released_forms(mm, tiny_retina, tmp_path):
    from kdhub_detection.gid import CanonicalRoIExtractor
    models, _ = mm
    student, teacher, ckpt = tiny_retina
    model = models.build(load(distill(tmp_path, "g.py", student, teacher, ckpt, "dict(type='GID')")).cfg.model)
    gid = model.distiller
    for extractor in (gid.s_roi, gid.t_roi):
        assert isinstance(extractor, CanonicalRoIExtractor) and extractor.featmap_strides == [8, 16, 32, 64]
        layer = extractor.roi_layers[0]
        assert tuple(layer.output_size) == (10, 10) and layer.sampling_ratio == 2 and layer.aligned
    rois = torch.tensor([_square(112.0), _square(224.0)])
    assert gid.s_roi.map_roi_levels(rois, 4).tolist() == [0, 1]
