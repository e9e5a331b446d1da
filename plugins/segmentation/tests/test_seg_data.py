"""The embedded data set and the checked folder data set."""
import json

import numpy as np
import pytest
from PIL import Image

from kdhub.config import ConfigError
from kdhub_segmentation.synth import CLASSES, SynthSegSpec, ensure_embedded, render

SPEC = SynthSegSpec(size=32, train=6, val=2, test=2, seed=3)


def test_render_is_deterministic_and_uses_every_kind_of_class():
    a, b = render(SPEC, "train", 4), render(SPEC, "train", 4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == (32, 32, 3) and a[0].dtype == np.uint8 and a[1].shape == (32, 32)
    assert not np.array_equal(render(SPEC, "val", 4)[1], a[1])
    labels = np.unique(np.concatenate([render(SynthSegSpec(), "train", i)[1].ravel() for i in range(40)]))
    assert labels.tolist() == list(range(len(CLASSES)))


def test_generated_once_atomically_into_the_cache(seg_data_dir):
    root = ensure_embedded(SPEC)
    assert root.parent == seg_data_dir / "segmentation"
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        imgs = sorted((root / "img_dir" / split).iterdir())
        masks = sorted((root / "ann_dir" / split).iterdir())
        assert [p.name for p in imgs] == [p.name for p in masks] and len(imgs) == n
    img, mask = render(SPEC, "val", 1)
    assert np.array_equal(np.asarray(Image.open(root / "img_dir" / "val" / "00001.png")), img)
    assert np.array_equal(np.asarray(Image.open(root / "ann_dir" / "val" / "00001.png")), mask)
    assert json.loads((root / "spec.json").read_text())["classes"] == list(CLASSES)
    stamp = (root / "spec.json").stat().st_mtime_ns
    assert ensure_embedded(SPEC) == root and (root / "spec.json").stat().st_mtime_ns == stamp
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def _folder(tmp_path, masks):
    for split in ("train",):
        (tmp_path / "img_dir" / split).mkdir(parents=True)
        (tmp_path / "ann_dir" / split).mkdir(parents=True)
    for i, mask in enumerate(masks):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img_dir" / "train" / f"{i}.png")
        if mask is not None:
            Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "ann_dir" / "train" / f"{i}.png")
    return dict(type="CheckedSegDataset", data_root=str(tmp_path), img_suffix=".png", seg_map_suffix=".png",
                data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"),
                metainfo=dict(classes=("a", "b", "c")), pipeline=[])


def test_checked_dataset_accepts_class_labels_and_ignore_index(tmp_path, mmseg_scope):
    from mmseg.registry import DATASETS
    ok = np.array([[0, 1, 2, 255]] * 4)
    assert len(DATASETS.build(_folder(tmp_path, [ok, ok]))) == 2


def test_image_without_mask_is_named(tmp_path, mmseg_scope):
    from mmseg.registry import DATASETS
    with pytest.raises(ConfigError, match=r"1\.png: its mask .*ann_dir/train/1\.png does not exist"):
        DATASETS.build(_folder(tmp_path, [np.zeros((8, 8)), None]))


def test_labels_outside_the_class_list_are_named(tmp_path, mmseg_scope):
    from mmseg.registry import DATASETS
    with pytest.raises(ConfigError, match=r"0\.png: mask labels \[3, 7\] are outside the class list"):
        DATASETS.build(_folder(tmp_path, [np.array([[0, 3], [7, 255]])]))


def test_missing_image_folder_and_bad_split_are_named(tmp_path, mmseg_scope):
    from mmseg.registry import DATASETS
    with pytest.raises(ConfigError, match="image folder not found"):
        DATASETS.build(dict(type="CheckedSegDataset", data_root=str(tmp_path / "nowhere"), pipeline=[],
                            data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train")))
    with pytest.raises(ConfigError, match="unknown split 'training'"):
        DATASETS.build(dict(type="SynthSegDataset", split="training", pipeline=[]))


def test_synth_dataset_builds_the_embedded_split(mmseg_scope):
    from mmseg.registry import DATASETS
    ds = DATASETS.build(dict(type="SynthSegDataset", split="val", synth=dict(size=32, train=6, val=2, test=2, seed=3),
                             pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"),
                                       dict(type="PackSegInputs")]))
    assert len(ds) == 2 and ds.metainfo["classes"] == CLASSES
    item = ds[1]
    assert tuple(item["inputs"].shape) == (3, 32, 32)
    assert np.array_equal(item["data_samples"].gt_sem_seg.data[0].numpy(), render(SPEC, "val", 1)[1])


def test_masks_of_any_mmseg_data_set_are_checked_for_channels_size_and_labels(tmp_path, mmseg_scope):
    """mmseg's own BaseSegDataset (and ADE20K, Cityscapes ...) reads masks only while training: an RGB mask, a
    mask of another size (stretched to its image in training, an IndexError in the metric) and a label past the
    class list (an IndexError in the loss, or a silently odd mIoU) are found first, naming the mask."""
    from mmseg.registry import DATASETS

    from kdhub_segmentation.datasets import mask_problem
    spec = dict(_folder(tmp_path, [np.array([[0, 1, 2, 255]] * 8)]), type="BaseSegDataset")
    dataset = DATASETS.build(spec)
    dataset.full_init()
    path = str(tmp_path / "ann_dir" / "train" / "0.png")
    assert mask_problem(dataset, path, (4, 8)) is None
    assert "the mask is 4x8 pixels but its image is 8x8" in mask_problem(dataset, path, (8, 8))
    Image.fromarray(np.array([[0, 1, 7, 255]] * 8, np.uint8)).save(path)
    assert "mask labels [7] are outside the class list (metainfo.classes has 3 classes" in mask_problem(dataset, path)
    Image.fromarray(np.zeros((8, 4, 3), np.uint8)).save(path)
    assert "the mask has 3 channels; a mask is one channel of class indices" in mask_problem(dataset, path)


def test_a_segmentation_run_checks_masks_and_head_widths_before_anything_is_written(tmp_path, mmseg_scope):
    from kdhub.config import ConfigError
    from kdhub_segmentation.task import SegRun
    from mmengine.config import Config

    spec = dict(_folder(tmp_path, [np.array([[0, 1, 2, 7] * 2] * 8)]), type="BaseSegDataset")
    cfg = Config(dict(train_dataloader=dict(dataset=spec)))
    with pytest.raises(ConfigError, match=r"train_dataloader.dataset: .*0\.png: mask labels \[7\] are outside"):
        SegRun._check_data(cfg, "cfg.py", Config(dict(decode_head=dict(num_classes=3))))
    Image.fromarray(np.array([[0, 1, 2, 255] * 2] * 8, np.uint8)).save(tmp_path / "ann_dir" / "train" / "0.png")
    with pytest.raises(ConfigError, match=r"model decode_head.num_classes is 2, but the data set has 3 classes"):
        SegRun._check_data(cfg, "cfg.py", Config(dict(decode_head=dict(num_classes=2))))
    SegRun._check_data(cfg, "cfg.py", Config(dict(decode_head=dict(num_classes=4))))  # a 'void' output: allowed
