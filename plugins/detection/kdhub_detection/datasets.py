"""COCO-format data sets with annotation checks, and the generated embedded set.

mmdet's CocoDataset silently drops boxes that lie wholly outside their image and annotations whose
category id is not in the file, and keeps boxes that stick out of the image. ``KDHubCocoDataset`` checks
every annotation first: with ``on_bad='error'`` (default) the first bad one stops the run with a message
naming the file, the annotation and the fix; with ``on_bad='skip'`` bad annotations are dropped, counted,
logged and reported in the run's ``summary.json``.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from mmdet.datasets import CocoDataset
from mmdet.evaluation import CocoMetric
from mmdet.registry import DATASETS, METRICS
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger

from kdhub.config import ConfigError

from .synth import CLASSES, SynthSpec, ensure_embedded, split_paths

ON_BAD = ("error", "skip")
#: ann_file -> [(annotation id, reason)] of annotations skipped in this process (reported in summary.json)
SKIPPED: Dict[str, List[Tuple[int, str]]] = defaultdict(list)
TOLERANCE = 1.0  # pixels a box may extend past the border (rounding in converted data sets)


class BadAnnotationError(ConfigError):
    """An annotation file with an invalid entry; the message names the file, the entry and the fix."""


def check_annotations(coco: dict, source: str) -> List[Tuple[int, str]]:
    """``(annotation id, reason)`` for every annotation with an unknown category, a missing image, an empty
    box or a box outside its image."""
    images = {img["id"]: img for img in coco.get("images", [])}
    categories = {c["id"] for c in coco.get("categories", [])}
    bad = []
    for ann in coco.get("annotations", []):
        aid = ann.get("id")
        img = images.get(ann.get("image_id"))
        if ann.get("category_id") not in categories:
            bad.append((aid, f"unknown category_id {ann.get('category_id')!r} (the file's categories: "
                             f"{sorted(categories)})"))
            continue
        if img is None:
            bad.append((aid, f"image_id {ann.get('image_id')!r} is not in the file's images"))
            continue
        box = ann.get("bbox") or []
        if len(box) != 4:
            bad.append((aid, f"bbox {box!r} is not [x, y, w, h]"))
            continue
        x, y, w, h = (float(v) for v in box)
        width, height = float(img["width"]), float(img["height"])
        if w <= 0 or h <= 0:
            bad.append((aid, f"bbox {box} has no area"))
        elif x < -TOLERANCE or y < -TOLERANCE or x + w > width + TOLERANCE or y + h > height + TOLERANCE:
            bad.append((aid, f"bbox {box} lies outside its {int(width)}x{int(height)} image "
                             f"{img.get('file_name', img['id'])!r}"))
    return bad


@DATASETS.register_module()
class KDHubCocoDataset(CocoDataset):
    """mmdet's CocoDataset plus annotation checks (``on_bad``: 'error' or 'skip')."""

    def __init__(self, *args, on_bad: str = "error", **kwargs):
        if on_bad not in ON_BAD:
            raise ConfigError(f"dataset on_bad={on_bad!r}; valid choices: {', '.join(ON_BAD)}")
        self.on_bad = on_bad
        self._bad_ids: set = set()
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local:
            try:
                with open(local) as f:
                    coco = json.load(f)
            except json.JSONDecodeError as exc:
                raise BadAnnotationError(f"{self.ann_file}: not valid JSON ({exc})") from None
        #: the file's category names in its order, for the class check of kdhub train (data_checks.py)
        self.file_categories = [c.get("name") for c in coco.get("categories", [])]
        bad = check_annotations(coco, self.ann_file)
        if bad and self.on_bad == "error":
            aid, reason = bad[0]
            raise BadAnnotationError(
                f"{self.ann_file}: annotation id {aid}: {reason} ({len(bad)} bad annotation(s) in the file). Fix the "
                f"file, or set on_bad='skip' in the dataset config (e.g. --cfg-options "
                f"train_dataloader.dataset.on_bad=skip) to drop them (they are counted in summary.json)")
        self._bad_ids = {aid for aid, _ in bad}
        if bad:
            SKIPPED[str(self.ann_file)] = bad
            MMLogger.get_current_instance().warning(
                f"kdhub: skipped {len(bad)} bad annotation(s) in {self.ann_file} (on_bad='skip'); first: "
                f"id {bad[0][0]}: {bad[0][1]}")
        return super().load_data_list()

    def parse_data_info(self, raw_data_info: dict):
        if self._bad_ids:
            raw_data_info = dict(raw_data_info, raw_ann_info=[a for a in raw_data_info["raw_ann_info"]
                                                              if a.get("id") not in self._bad_ids])
        return super().parse_data_info(raw_data_info)


@DATASETS.register_module()
class SynthShapesDataset(KDHubCocoDataset):
    """The embedded synthetic shapes set (:mod:`.synth`), generated on first use; ``spec`` overrides sizes."""

    METAINFO = {"classes": CLASSES, "palette": [(220, 20, 60), (0, 160, 60), (30, 60, 220), (230, 190, 40),
                                               (170, 60, 200)]}

    def __init__(self, split: str = "train", spec: Optional[dict] = None, root: Optional[str] = None, **kwargs):
        try:
            folder = ensure_embedded(SynthSpec(**(spec or {})), root)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"SynthShapesDataset spec={spec!r}: {exc}") from None
        if split not in ("train", "val", "test"):
            raise ConfigError(f"SynthShapesDataset split={split!r}; valid choices: train, val, test")
        paths = split_paths(folder, split)
        kwargs.update(data_root="", ann_file=paths["ann_file"], data_prefix=dict(img=paths["img"]))
        super().__init__(**kwargs)


@METRICS.register_module()
class SynthCocoMetric(CocoMetric):
    """mmdet's CocoMetric on a split of the generated set (its annotation file is found from the spec)."""

    def __init__(self, split: str = "val", spec: Optional[dict] = None, root: Optional[str] = None, **kwargs):
        folder = ensure_embedded(SynthSpec(**(spec or {})), root)
        super().__init__(ann_file=split_paths(folder, split)["ann_file"], **kwargs)
