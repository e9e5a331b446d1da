"""mmseg data sets: a folder data set that checks its masks, and the embedded synthetic set.

``CheckedSegDataset`` is mmseg's ``img_dir``/``ann_dir`` folder layout with the problems users hit most
reported up front, naming the file: an image without its mask, and a mask with labels outside the
class list (other than ``ignore_index``). :func:`mask_problem` is that mask check, plus a mask that is not one
channel (a colour mask, or a grey one saved as RGB) or not its image's size; ``SegRun.check`` runs it on every
mask of any mmseg data set (``BaseSegDataset``, ``ADE20KDataset``, ``CityscapesDataset`` ...) before training,
where mmseg would fail inside the loss or the metric, or stretch a training mask to its image without a word. ``SynthSegDataset`` is the embedded default data (see
:mod:`kdhub_segmentation.synth`), generated on first use when ``data_root`` is None.
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

from kdhub.config import ConfigError

from .synth import CLASSES, PALETTE, SPLITS, SynthSegSpec, ensure_embedded


class SegDataError(ConfigError):
    """A data set problem (missing mask, labels outside the class list); the message names the file."""


@DATASETS.register_module()
class CheckedSegDataset(BaseSegDataset):
    """:class:`mmseg.datasets.BaseSegDataset` that checks every image has a mask whose labels are classes.

    ``check_labels=False`` skips reading the masks (their existence is still checked).
    """

    def __init__(self, *args, check_labels: bool = True, **kwargs):
        self.check_labels = check_labels
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get("img_path", "")
        if not self.ann_file and not os.path.isdir(img_dir):
            raise SegDataError(f"data_prefix.img_path: image folder not found: {img_dir} (data_root "
                               f"{self.data_root!r}); check the dataset's data_root and data_prefix")
        data_list = super().load_data_list()
        if not data_list:
            raise SegDataError(f"data_prefix.img_path: no '*{self.img_suffix}' images in {img_dir}")
        num_classes = len(self.metainfo["classes"])
        for info in data_list:
            mask = info.get("seg_map_path")
            if mask is None:
                continue
            if not os.path.isfile(mask):
                raise SegDataError(f"{info['img_path']}: its mask {mask} does not exist; every image needs a mask "
                                   f"of the same name (suffix '{self.seg_map_suffix}') under data_prefix.seg_map_path")
            if self.check_labels:
                self._check_labels(mask, num_classes)
        return data_list

    def _check_labels(self, path: str, num_classes: int) -> None:
        problem = mask_problem(self, path)
        if problem:
            raise SegDataError(problem)


def mask_problem(dataset: BaseSegDataset, path: str, image_size: Optional[Tuple[int, int]] = None) -> Optional[str]:
    """What is wrong with the mask at ``path`` of ``dataset`` (None: nothing): not one channel, not the image's
    ``image_size`` (width, height), or labels outside the class list once mmseg's ``reduce_zero_label`` and
    ``label_map`` apply (``ignore_index`` aside)."""
    with Image.open(path) as image:
        mask = np.asarray(image)
    if mask.ndim != 2:
        return (f"{path}: the mask has {mask.shape[-1]} channels; a mask is one channel of class indices (a colour "
                f"mask needs converting to indices with its palette; a grey one saved as RGB, saving as mode 'L' or "
                f"'P')")
    if image_size is not None and (mask.shape[1], mask.shape[0]) != tuple(image_size):
        return (f"{path}: the mask is {mask.shape[1]}x{mask.shape[0]} pixels but its image is "
                f"{image_size[0]}x{image_size[1]}; a mask labels its image pixel for pixel")
    num_classes, ignore = len(dataset.metainfo["classes"]), dataset.ignore_index
    labels = np.unique(mask)
    if dataset.reduce_zero_label:  # 0 becomes ignore, the rest shift down by one (mmseg's LoadAnnotations)
        labels = np.unique(np.where(labels == 0, 255, labels - 1))
    if dataset.label_map:
        labels = np.unique([dataset.label_map.get(int(x), int(x)) for x in labels])
    bad = [int(x) for x in labels if not (0 <= x < num_classes or x == ignore)]
    if bad:
        return (f"{path}: mask labels {bad} are outside the class list (metainfo.classes has {num_classes} classes, "
                f"0..{num_classes - 1}; ignore_index={ignore}); fix the mask or the classes")
    return None


@DATASETS.register_module()
class SynthSegDataset(CheckedSegDataset):
    """The embedded synthetic scenes (textures and shapes), split 'train', 'val' or 'test'.

    ``synth`` sets the generator (:class:`~kdhub_segmentation.synth.SynthSegSpec` fields); with
    ``data_root=None`` the set is generated into ``$KDHUB_DATA_DIR/segmentation`` on first use.
    """

    METAINFO = dict(classes=CLASSES, palette=[list(c) for c in PALETTE])

    def __init__(self, split: str = "train", synth: Optional[dict] = None, data_root: Optional[str] = None,
                 **kwargs):
        if split not in SPLITS:
            raise SegDataError(f"dataset split: unknown split {split!r}; valid choices: {', '.join(SPLITS)}")
        if data_root is None:
            try:
                spec = SynthSegSpec(**(synth or {}))
            except TypeError as exc:
                raise SegDataError(f"dataset synth: {exc}; valid keys: size, train, val, test, min_objects, "
                                   f"max_objects, noise, seed") from None
            data_root = str(ensure_embedded(spec))
        kwargs.setdefault("data_prefix", dict(img_path=f"img_dir/{split}", seg_map_path=f"ann_dir/{split}"))
        super().__init__(data_root=data_root, img_suffix=".png", seg_map_suffix=".png", **kwargs)

