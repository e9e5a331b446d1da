"""The embedded default data set: synthetic shapes on textured backgrounds, in COCO format.

Each image holds 1..``max_objects`` objects of five classes (circle, square, triangle, ring, cross) at
scales from ``sizes[0]`` to ``sizes[1]`` pixels, with partial overlaps (a new object may cover up to
``max_overlap`` IoU of an earlier one) on a background of low-frequency noise, stripes and pixel noise.
Colours are drawn around a per-class hue with wide jitter, so shape matters more than colour. Every
image comes from its own seeded generator (seed, split, index): the set is byte-identical on every
machine. Layout: ``{train,val,test}/NNNNNN.png`` and ``annotations/instances_{split}.json``; generated
once per spec into ``$KDHUB_DATA_DIR/detection/synth-<hash>`` (see :mod:`kdhub.datadir`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from kdhub.datadir import GeneratedSpec, build_once, data_folder
from kdhub.progress import track

CLASSES = ("circle", "square", "triangle", "ring", "cross")
SPLITS = ("train", "val", "test")
_HUES = {"circle": (220, 60, 50), "square": (50, 170, 60), "triangle": (60, 90, 220),
         "ring": (230, 190, 40), "cross": (170, 60, 200)}


@dataclass(frozen=True)
class SynthSpec(GeneratedSpec):
    """Image size, object count, scales and overlap of the generated set (split sizes and seed: the base)."""

    VERSION = 1
    image_size: int = 128
    max_objects: int = 5
    sizes: Tuple[int, int] = (12, 56)  # smallest and largest object side (px, before aspect jitter)
    max_overlap: float = 0.3

    def check(self) -> None:
        if not 32 <= self.image_size <= 2048:
            raise ValueError(f"image_size must be in [32, 2048], got {self.image_size}")
        low, high = self.sizes
        if not 4 <= low <= high <= self.image_size:
            raise ValueError(f"sizes must be (min, max) with 4 <= min <= max <= image_size, got {self.sizes} "
                             f"for image_size {self.image_size}")
        if min(self.train, self.val, self.test) < 1 or self.max_objects < 1:
            raise ValueError("train, val, test and max_objects must be >= 1")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    grid = rng.uniform(40, 200, size=(4, 4, 3))
    low = np.asarray(Image.fromarray(grid.astype(np.uint8)).resize((size, size), Image.BICUBIC), np.float64)
    yy, xx = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    img = low + rng.uniform(8, 30) * stripes + rng.normal(0, 8, size=(size, size, 3))
    return np.clip(img, 0, 255)


def _colour(rng: np.random.Generator, cls: str) -> Tuple[int, int, int]:
    base = np.asarray(_HUES[cls], np.float64)
    return tuple(int(v) for v in np.clip(base + rng.normal(0, 35, 3), 0, 255))


def _draw(draw: ImageDraw.ImageDraw, cls: str, box: Tuple[float, float, float, float], fill) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if cls == "circle":
        draw.ellipse(box, fill=fill)
    elif cls == "square":
        draw.rectangle(box, fill=fill)
    elif cls == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=fill)
    elif cls == "ring":
        draw.ellipse(box, outline=fill, width=max(2, int(min(w, h) / 5)))
    else:  # cross
        t = max(2.0, min(w, h) / 3.5)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        draw.rectangle((cx - t / 2, y0, cx + t / 2, y1), fill=fill)
        draw.rectangle((x0, cy - t / 2, x1, cy + t / 2), fill=fill)


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def make_image(spec: SynthSpec, split: str, index: int) -> Tuple[np.ndarray, List[Tuple[int, List[float]]]]:
    """One image (HxWx3 uint8) and its objects as (class index, [x, y, w, h]) in drawing order."""
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), index])
    size = spec.image_size
    img = Image.fromarray(_background(rng, size).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    boxes: List[Tuple[float, float, float, float]] = []
    objects = []
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        for _attempt in range(20):
            s = float(np.exp(rng.uniform(np.log(spec.sizes[0]), np.log(spec.sizes[1]))))
            aspect = float(np.exp(rng.uniform(-0.35, 0.35)))
            w, h = min(size - 1.0, s * aspect), min(size - 1.0, s / aspect)
            x0, y0 = float(rng.uniform(0, size - w)), float(rng.uniform(0, size - h))
            box = (round(x0), round(y0), round(x0 + w), round(y0 + h))
            if all(_iou(box, b) <= spec.max_overlap for b in boxes):
                break
        else:
            continue
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        _draw(draw, cls, box, _colour(rng, cls))
        boxes.append(box)
        objects.append((CLASSES.index(cls), [float(box[0]), float(box[1]), float(box[2] - box[0] + 1),
                                             float(box[3] - box[1] + 1)]))
    return np.asarray(img), objects


def _write(spec: SynthSpec, root: Path) -> None:
    (root / "annotations").mkdir()
    categories = [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]
    for split in SPLITS:
        (root / split).mkdir()
        images, anns = [], []
        for i in track(range(spec.count(split)), f"generating detection {split} images"):
            pixels, objects = make_image(spec, split, i)
            name = f"{i:06d}.png"
            Image.fromarray(pixels).save(root / split / name, optimize=False)
            images.append({"id": i + 1, "file_name": name, "width": spec.image_size, "height": spec.image_size})
            for cls, (x, y, w, h) in objects:
                w, h = min(w, spec.image_size - x), min(h, spec.image_size - y)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cls + 1,
                             "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        coco = {"info": {"description": f"kdhub synthetic shapes ({split})", "version": spec.VERSION},
                "images": images, "annotations": anns, "categories": categories}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    (root / "spec.json").write_text(spec.describe())


def ensure_embedded(spec: SynthSpec, root: Optional[Path] = None) -> Path:
    """The generated set's folder for ``spec`` (built on first use)."""
    spec.check()
    return build_once(data_folder("detection", f"synth-{spec.key()}", root), lambda tmp: _write(spec, tmp),
                      marker="spec.json")


def split_paths(folder: Path, split: str) -> Dict[str, str]:
    """``ann_file`` and image folder of one split of a generated set."""
    return {"ann_file": str(folder / "annotations" / f"instances_{split}.json"), "img": str(folder / split) + "/"}


def generate(**spec) -> Path:
    """The registered data set: the generated set described by ``SynthSpec(**spec)``, built once; its folder."""
    return ensure_embedded(SynthSpec(**spec))
