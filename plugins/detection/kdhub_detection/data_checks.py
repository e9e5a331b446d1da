"""Checks of a user's detection data that mmdet leaves to chance, run by ``DetectionRun.check`` before training.

- **Classes.** mmdet numbers labels in the order the annotation file lists its categories (those whose names are in
  ``metainfo.classes``), while the exported model names them in ``metainfo`` order: a different order mislabels
  every prediction with the AP unchanged, a misspelt name drops that class, and a forgotten ``metainfo`` names a
  3-class model with COCO's 80 classes. The data set's classes must be the file's category names, in its order.
- **Class count.** A head with fewer outputs than classes trains the last classes as background; with more, it
  predicts classes no image has. ``num_classes`` must be the data set's class count.
- **Image sizes.** Boxes are checked against the ``width`` and ``height`` the annotation file gives; an image resized
  after the file was written makes them wrong. They must be the image's own (either orientation, for EXIF).
- **Evaluation.** COCO metrics read their ground truth from their own ``ann_file``: it must be the evaluated split's
  annotation file, and that split cannot drop annotations (``on_bad='skip'``), which the metric would still count.
"""
from __future__ import annotations

import json
import os
from typing import Any, List, Optional, Sequence, Tuple

from kdhub.config import ConfigError

from .algorithm import class_count

#: the evaluator of each evaluated split
EVALUATORS = {"val_dataloader": "val_evaluator", "test_dataloader": "test_evaluator"}


def file_categories(ann_file: str) -> List[str]:
    """The category names of a COCO annotation file, in its order."""
    with open(ann_file, encoding="utf-8") as f:
        return [c.get("name") for c in json.load(f).get("categories", [])]


def check_classes(classes: Sequence[str], categories: Sequence[str], ann_file: str) -> None:
    """The data set's ``classes`` must be the file's ``categories`` (all, or some of them) in the file's order."""
    missing = [c for c in classes if c not in categories]
    if missing:
        raise ConfigError(f"metainfo.classes has {len(classes)} names, and {missing[0]!r}" +
                          (f" and {len(missing) - 1} more" if len(missing) > 1 else "") +
                          f" are not among the categories of {ann_file} ({', '.join(categories)}); set "
                          f"metainfo=dict(classes=(...)) to the file's category names, in its order")
    in_file_order = [c for c in categories if c in classes]
    if in_file_order != list(classes):
        raise ConfigError(f"metainfo.classes lists ({', '.join(classes)}) but {ann_file} lists them as "
                          f"({', '.join(in_file_order)}); mmdet numbers labels in the file's order, so every "
                          f"prediction would carry another class's name: give metainfo classes in the file's order")


def dataset_check(model_cfg, scope_key: str = "model"):
    """``check_dataset`` for :func:`kdhub_openmmlab.checks.check_datasets`: the classes and class count of each
    split's data set against its annotation file and the detector ``model_cfg``; no dropped annotations in an
    evaluated split."""
    from mmdet.datasets import CocoDataset

    from .datasets import KDHubCocoDataset

    key, num = class_count(model_cfg)

    def check(split: str, dataset: Any) -> None:
        classes = list(dataset.metainfo.get("classes") or ())
        if isinstance(dataset, CocoDataset) and dataset.ann_file and os.path.isfile(dataset.ann_file):
            # kdhub's data set kept them when it read the file; mmdet's own is read again for them
            categories = getattr(dataset, "file_categories", None) or file_categories(dataset.ann_file)
            check_classes(classes, categories, dataset.ann_file)
        if num is not None and classes and num != len(classes):
            raise ConfigError(f"{scope_key}.{key} is {num}, but the data set has {len(classes)} classes "
                              f"({', '.join(map(str, classes[:6]))}{', ...' if len(classes) > 6 else ''}); set it "
                              f"to {len(classes)}")
        if split in EVALUATORS and isinstance(dataset, KDHubCocoDataset) and dataset.on_bad == "skip":
            raise ConfigError(f"on_bad='skip' on an evaluated split: its metric reads {dataset.ann_file} itself and "
                              f"would count the dropped annotations as missed; fix the file (skip is for training "
                              f"data)")
    return check


def image_size_problem(dataset: Any, info: dict, size: Tuple[int, int]) -> Optional[str]:
    """``check_item``: the annotation file's width and height of an image against the image itself."""
    given = (info.get("width"), info.get("height"))
    if None in given or tuple(size) in (given, given[::-1]):
        return None
    return (f"{info.get('img_path')}: the annotation file gives it {given[0]}x{given[1]} pixels, but the image is "
            f"{size[0]}x{size[1]}; its boxes are read against the file's size: update width and height (or the "
            f"boxes) after resizing images")


def check_evaluators(cfg, source: str) -> None:
    """A COCO metric scores against its own ``ann_file``: the one of the split it evaluates."""
    for loader, evaluator in EVALUATORS.items():
        spec, metric = (cfg.get(loader) or {}).get("dataset") or {}, cfg.get(evaluator)
        metrics = metric if isinstance(metric, (list, tuple)) else [metric] if metric else []
        for m in metrics:
            kind = m.get("type", "")
            if kind == "SynthCocoMetric" and spec.get("type") != "SynthShapesDataset":
                raise ConfigError(f"{source}: {evaluator} is SynthCocoMetric, the embedded set's, but "
                                  f"{loader}.dataset is {spec.get('type')}; use dict(type='CocoMetric', "
                                  f"ann_file=<the split's annotation file>, metric='bbox')")
            ann, data_ann = m.get("ann_file"), spec.get("ann_file")
            if not (ann and data_ann):
                continue
            data_ann = os.path.join(spec.get("data_root") or "", data_ann)
            if os.path.realpath(ann) != os.path.realpath(data_ann):
                raise ConfigError(f"{source}: {evaluator}.ann_file is {ann}, but {loader}.dataset reads {data_ann}; "
                                  f"the metric would score the predictions against another file's ground truth: "
                                  f"give both the same file")
