"""The TransKD authors' Cityscapes recipe: its transforms, input scaling and loss against numbers worked out by hand
from the authors' definitions, the recipe loaded through kdhub, and its data pipeline on a tiny Cityscapes-layout
folder (the end-to-end run of each shipped recipe is in test_seg_recipes.py)."""
import math
import random

import numpy as np
import pytest
import torch

from kdhub_segmentation.task import CONFIG_DIR
from kdhub_segmentation.transforms import DownsampleSegMap, RandomShift, shift_array
from kdhub_segmentation.weighted_nll import ClassWeightedNLLLoss
from seg_helpers import write_cityscapes

STUDENT = CONFIG_DIR / "segformer_mit-b0_cityscapes-512x1024_authors.py"
TEACHER = CONFIG_DIR / "segformer_mit-b2_cityscapes-512x1024_authors.py"
DISTILL = CONFIG_DIR / "transkd_mit-b2_to_mit-b0_cityscapes-512x1024_authors.py"
LABEL = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]], np.uint8)


def test_shift_right_and_up_fills_as_the_authors_expand_then_crop():
    """dx = +1, dy = -1 on a 3 x 4 map: the content moves one column right and one row up. The exposed left column
    is the canvas the authors grow (labels 255, image 0); the exposed bottom row lies beyond that canvas, where
    their crop reads 0 (for labels too)."""
    assert shift_array(LABEL, 1, -1, 255, 0).tolist() == [[255, 5, 6, 7], [255, 9, 10, 11], [0, 0, 0, 0]]
    image = np.stack([LABEL, LABEL + 100, LABEL + 200], axis=-1)
    shifted = shift_array(image, 1, -1, 0, 0)
    assert shifted.shape == (3, 4, 3)
    assert shifted[..., 0].tolist() == [[0, 5, 6, 7], [0, 9, 10, 11], [0, 0, 0, 0]]
    assert shifted[..., 2].tolist() == [[0, 205, 206, 207], [0, 209, 210, 211], [0, 0, 0, 0]]


def test_shift_in_the_other_directions():
    """dx = -1, dy = +1: top row from the grown canvas (255), right column beyond it (0). dx = +2: two columns of
    255. dx = dy = -2: only the bottom-right 1 x 2 block stays, moved to the top-left corner."""
    assert shift_array(LABEL, -1, 1, 255, 0).tolist() == [[255, 255, 255, 0], [2, 3, 4, 0], [6, 7, 8, 0]]
    assert shift_array(LABEL, 2, 0, 255, 0).tolist() == [[255, 255, 1, 2], [255, 255, 5, 6], [255, 255, 9, 10]]
    assert shift_array(LABEL, -2, -2, 255, 0).tolist() == [[11, 12, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert shift_array(LABEL, 0, 0, 255, 0).tolist() == LABEL.tolist()
    assert shift_array(LABEL, -1, 0, 255, 255).tolist() == [[2, 3, 4, 255], [6, 7, 8, 255], [10, 11, 12, 255]]


def test_random_shift_moves_image_and_label_by_the_same_draw(monkeypatch):
    calls = []

    def randint(low, high):
        calls.append((low, high))
        return (1, -1)[len(calls) - 1]

    monkeypatch.setattr(random, "randint", randint)
    image = np.stack([LABEL] * 3, axis=-1)
    out = RandomShift()(dict(img=image, gt_seg_map=LABEL.copy(), seg_fields=["gt_seg_map"]))
    assert calls == [(-2, 2), (-2, 2)] and out["shift"] == (1, -1)  # x then y, both ends included
    assert out["gt_seg_map"].tolist() == [[255, 5, 6, 7], [255, 9, 10, 11], [0, 0, 0, 0]]
    assert out["img"][..., 1].tolist() == [[0, 5, 6, 7], [0, 9, 10, 11], [0, 0, 0, 0]]


def test_random_shift_draws_every_offset_from_minus_two_to_two():
    random.seed(0)
    shift = RandomShift(max_shift=2)
    seen = {shift(dict(img=np.zeros((3, 4, 3), np.uint8), seg_fields=[]))["shift"] for _ in range(400)}
    assert {dx for dx, _ in seen} == {dy for _, dy in seen} == {-2, -1, 0, 1, 2}


def test_downsample_seg_map_takes_pils_nearest_pixels():
    """An 8 x 8 label (value 10 x row + column) for an 8 x 8 image, factor 4 -> 2 x 2. PIL's nearest rule reads
    input pixel floor((x + 0.5) x 4) = 2 and 6 along each axis: [[22, 26], [62, 66]]. The size comes from the image,
    rounded half up: a 6 x 10 image gives int(1.5 + 0.5) x int(2.5 + 0.5) = 2 x 3, whatever the label's own size."""
    label = (10 * np.arange(8)[:, None] + np.arange(8)[None, :]).astype(np.uint8)
    out = DownsampleSegMap(4)(dict(img_shape=(8, 8), gt_seg_map=label, seg_fields=["gt_seg_map"]))
    assert out["gt_seg_map"].tolist() == [[22, 26], [62, 66]]
    out = DownsampleSegMap(4)(dict(img_shape=(6, 10), gt_seg_map=np.zeros((24, 40), np.uint8),
                                   seg_fields=["gt_seg_map"]))
    assert out["gt_seg_map"].shape == (2, 3)


def test_class_weighted_nll_by_hand():
    """Pixels a, b, c; classes 0, 1 with weights (1, 3). a: logits (0, 0), label 0 -> -log 1/2 = ln 2 = 0.6931472.
    b: logits (ln 3, 0), label 1 -> -log 1/4 = ln 4 = 1.3862944. c: label 255, ignored. The authors' NLLLoss(weight)
    mean: (1 ln 2 + 3 ln 4) / (1 + 3) = 1.2130076. With c labelled 1 instead (logits (5, -5): -log p = 10 +
    ln(1 + e^-10) = 10.0000454): (ln 2 + 3 ln 4 + 3 x 10.0000454) / 7 = 4.9788809, which mmseg's CrossEntropyLoss
    with the same class_weight also gives; with the 255 label mmseg's raises IndexError."""
    from mmseg.models.losses import CrossEntropyLoss

    logits = torch.tensor([[0.0, math.log(3), 5.0], [0.0, 0.0, -5.0]]).view(1, 2, 1, 3)
    label = torch.tensor([[[0, 1, 255]]])
    loss = ClassWeightedNLLLoss([1.0, 3.0])(logits, label, ignore_index=255)
    assert loss.item() == pytest.approx(1.2130076, abs=1e-6)
    labelled = torch.tensor([[[0, 1, 1]]])
    assert ClassWeightedNLLLoss([1.0, 3.0])(logits, labelled).item() == pytest.approx(4.9788809, abs=1e-6)
    assert CrossEntropyLoss(class_weight=[1.0, 3.0])(logits, labelled).item() == pytest.approx(4.9788809, abs=1e-6)
    with pytest.raises(IndexError):
        CrossEntropyLoss(class_weight=[1.0, 3.0])(logits, label, ignore_index=255)
    # the authors' 'void' class of weight 0 counts in neither sum: the same value with c labelled void (class 2)
    void = torch.tensor([[0.0, math.log(3), 5.0], [0.0, 0.0, -5.0], [-100.0, -100.0, 0.0]]).view(1, 3, 1, 3)
    loss = ClassWeightedNLLLoss([1.0, 3.0, 0.0])(void, torch.tensor([[[0, 1, 2]]]), ignore_index=255)
    assert loss.item() == pytest.approx(1.2130076, abs=1e-6)
    assert ClassWeightedNLLLoss([1.0, 3.0])(logits, torch.full((1, 1, 3), 255), ignore_index=255).item() == 0.0
    with pytest.raises(ValueError, match="2 class weights for 3 classes"):
        ClassWeightedNLLLoss([1.0, 3.0])(void, label)


def test_authors_input_scaling_is_to_unit_range_without_mean_or_std(mmseg_scope):
    """A BGR pixel (0, 51, 255) becomes RGB (255, 51, 0) / 255 = (1.0, 0.2, 0.0), as the authors' ToTensor gives."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    pre = MODELS.build(Config.fromfile(str(STUDENT)).model.data_preprocessor)
    image = torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1).expand(3, 2, 2).clone()
    out = pre(dict(inputs=[image]), training=False)["inputs"]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 0.2, 0.0]))


def test_authors_recipe_loads_with_their_settings(mmseg_scope):
    from mmengine.config import Config

    from kdhub_segmentation.plugin import kdhub_load_config
    from kdhub_segmentation.task import check_pairing

    loaded = kdhub_load_config(DISTILL, ["model.distiller.variant=gl"])
    cfg = loaded.cfg
    assert loaded.method == "transkd-gl"
    data = cfg.train_dataloader
    assert data.batch_size == 2 and data.drop_last and data.sampler.type == "DefaultSampler"
    assert [t["type"] for t in data.dataset.pipeline] == [
        "LoadImageFromFile", "Resize", "LoadAnnotations", "DownsampleSegMap", "RandomFlip", "RandomShift",
        "PackSegInputs"]
    resize, shift = data.dataset.pipeline[1], data.dataset.pipeline[5]
    assert (resize.scale, resize.keep_ratio, resize.backend) == ((1024, 512), False, "pillow")
    assert (shift.max_shift, shift.pad_val, shift.seg_pad_val) == (2, 0, (255, 0))
    assert data.dataset.pipeline[4].prob == 0.5
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay, opt.betas, opt.eps) == ("AdamW", 6e-5, 0.01, (0.9, 0.999), 1e-8)
    assert "paramwise_cfg" not in cfg.optim_wrapper
    assert [dict(s) for s in cfg.param_scheduler] == [
        dict(type="PolyLR", power=1.0, eta_min=0.0, begin=0, end=1500, by_epoch=True)]
    assert (cfg.train_cfg.type, cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == ("EpochBasedTrainLoop",
                                                                                          1000, 1)
    student = Config.fromfile(str(STUDENT)).model
    assert student.data_preprocessor.mean == [0.0] * 3 and student.data_preprocessor.std == [255.0] * 3
    head = student.decode_head
    assert head.num_classes == 20 and head.loss_decode.type == "ClassWeightedNLLLoss"
    weights = head.loss_decode.class_weight
    assert len(weights) == 20 and weights[0] == 2.5959737 and weights[18] == 10.05567 and weights[19] == 0.0
    teacher = Config.fromfile(str(TEACHER))
    assert teacher.model.decode_head.channels == 768 and teacher.train_dataloader.batch_size == 8
    check_pairing(cfg)  # B2 teacher and B0 student pair with TransKD-GL


def test_authors_train_pipeline_on_a_tiny_cityscapes_folder(tmp_path, mmseg_scope):
    """Images come out whole at 512 x 1024, labels at 128 x 256 with train ids, 255 or the shift's 0."""
    from mmengine.config import Config
    from mmseg.registry import DATASETS

    write_cityscapes(tmp_path, "train", 2, seed=0)
    cfg = Config.fromfile(str(STUDENT))
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(tmp_path / "data" / "cityscapes")))
    assert len(dataset) == 2
    random.seed(0)
    for i in range(2):
        sample = dataset[i]
        assert tuple(sample["inputs"].shape) == (3, 512, 1024) and sample["inputs"].dtype == torch.uint8
        label = sample["data_samples"].gt_sem_seg.data
        assert tuple(label.shape) == (1, 128, 256)
        assert set(label.unique().tolist()) <= set(range(19)) | {255}
