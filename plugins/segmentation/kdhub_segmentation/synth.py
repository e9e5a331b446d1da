"""The embedded default data set: deterministic synthetic scenes of textured regions and shaped objects.

Each image is a partition of the canvas into 2-4 irregular "stuff" regions, each filled with one of six
textures (horizontal stripes, vertical stripes, checkerboard, dots, speckle, smooth gradient) in two
random colours, with 1-3 "thing" objects on top (disk, square, triangle, ring), each a uniform random
colour. Colours carry no class information, so a model has to recognise texture (local) and shape
(global extent) to label pixels; capacity and context matter, which is what distillation transfers.

Images (RGB PNG) and masks (8-bit PNG of class indices) are laid out as mmseg expects,
``img_dir/{train,val,test}/*.png`` and ``ann_dir/{train,val,test}/*.png``, in
``$KDHUB_DATA_DIR/segmentation/synthseg-<spec key>`` built atomically by :func:`kdhub.datadir.build_once`.
The same spec gives the same pixels on every run (numpy's PCG64 streams seeded per image).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Optional, Tuple

import numpy as np
from PIL import Image

from kdhub.datadir import GeneratedSpec, build_once, data_folder
from kdhub.progress import track

TEXTURES = ("h-stripes", "v-stripes", "checker", "dots", "speckle", "smooth")
SHAPES = ("disk", "square", "triangle", "ring")
CLASSES = TEXTURES + SHAPES
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (128, 128, 128))
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SynthSegSpec(GeneratedSpec):
    """Sizes of the embedded set; the folder name is derived from these, so each size has its own copy."""

    VERSION: ClassVar[int] = 1
    size: int = 64
    train: int = 2000
    val: int = 200
    test: int = 400
    min_objects: int = 1
    max_objects: int = 3
    noise: float = 6.0


def _colours(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Two random colours at least 90 apart (Euclidean RGB), so every texture is visible."""
    while True:
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if np.linalg.norm(a - b) >= 90:
            return a, b


def _texture(kind: str, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, scale: float) -> np.ndarray:
    """A [H, W] weight in [0, 1] blending the region's two colours."""
    phase = rng.uniform(0, 2 * np.pi)
    if kind in ("h-stripes", "v-stripes"):
        period = rng.uniform(4.0, 7.0) * scale
        coord = yy if kind == "h-stripes" else xx
        return (np.sin(2 * np.pi * coord / period + phase) > 0).astype(np.float64)
    if kind == "checker":
        p = max(2.0, rng.uniform(3.0, 5.0) * scale)
        off = rng.uniform(0, p, 2)
        return ((np.floor((yy + off[0]) / p) + np.floor((xx + off[1]) / p)) % 2).astype(np.float64)
    if kind == "dots":
        p = rng.uniform(5.0, 7.0) * scale
        off = rng.uniform(0, p, 2)
        dy = (yy + off[0]) % p - p / 2
        dx = (xx + off[1]) % p - p / 2
        return (dy * dy + dx * dx < (0.28 * p) ** 2).astype(np.float64)
    if kind == "speckle":
        cell = max(1, int(round(scale)))
        h, w = yy.shape
        coarse = rng.random(((h + cell - 1) // cell, (w + cell - 1) // cell)) < 0.5
        return np.kron(coarse, np.ones((cell, cell)))[:h, :w].astype(np.float64)
    if kind == "smooth":
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        return (t - t.min()) / max(t.max() - t.min(), 1e-9)
    raise ValueError(kind)


def _shape_mask(kind: str, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    r = rng.uniform(0.13, 0.22) * size
    cy, cx = rng.uniform(r, size - r, 2)
    dy, dx = yy - cy, xx - cx
    angle = rng.uniform(0, np.pi / 2)
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if kind == "disk":
        return dx * dx + dy * dy < r * r
    if kind == "ring":
        d2 = dx * dx + dy * dy
        return (d2 < r * r) & (d2 > (0.55 * r) ** 2)
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.82 * r
    if kind == "triangle":  # equilateral, circumradius r, rotated by ``angle``
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = angle + np.pi / 2 + k * 2 * np.pi / 3
            inside &= np.cos(a) * dx + np.sin(a) * dy > -0.5 * r
        return inside
    raise ValueError(kind)


def render(spec: SynthSegSpec, split: str, index: int) -> Tuple[np.ndarray, np.ndarray]:
    """One (image [H, W, 3] uint8, mask [H, W] uint8) pair, a pure function of (spec, split, index)."""
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), index, spec.VERSION])
    size, scale = spec.size, spec.size / 64.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    # stuff: a Voronoi partition of warped coordinates, so boundaries are irregular
    k = int(rng.integers(2, 5))
    seeds = rng.uniform(0, size, (k, 2))
    amp, freq = rng.uniform(2, 6) * scale, rng.uniform(1.0, 2.5) * 2 * np.pi / size
    wy = yy + amp * np.sin(freq * xx + rng.uniform(0, 2 * np.pi))
    wx = xx + amp * np.sin(freq * yy + rng.uniform(0, 2 * np.pi))
    region = np.argmin((wy[None] - seeds[:, 0, None, None]) ** 2 + (wx[None] - seeds[:, 1, None, None]) ** 2, axis=0)
    kinds = rng.choice(len(TEXTURES), size=k, replace=False)
    image = np.zeros((size, size, 3))
    mask = np.zeros((size, size), dtype=np.uint8)
    for i in range(k):
        sel = region == i
        a, b = _colours(rng)
        t = _texture(TEXTURES[kinds[i]], rng, yy, xx, scale)[..., None]
        image[sel] = (a * (1 - t) + b * t)[sel]
        mask[sel] = kinds[i]
    # things: uniformly coloured shapes on top
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        shape = int(rng.integers(len(SHAPES)))
        sel = _shape_mask(SHAPES[shape], rng, yy, xx, size)
        image[sel] = rng.uniform(0, 255, 3)
        mask[sel] = len(TEXTURES) + shape
    image += rng.normal(0, spec.noise, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), mask


def dataset_dir(spec: SynthSegSpec, root: Optional[Path] = None) -> Path:
    return data_folder("segmentation", f"synthseg-{spec.key()}", root)


def _write(spec: SynthSegSpec, folder: Path) -> None:
    for split in SPLITS:
        img_dir, ann_dir = folder / "img_dir" / split, folder / "ann_dir" / split
        img_dir.mkdir(parents=True)
        ann_dir.mkdir(parents=True)
        for i in track(range(spec.count(split)), f"generating segmentation {split} images"):
            image, mask = render(spec, split, i)
            Image.fromarray(image, "RGB").save(img_dir / f"{i:05d}.png")
            Image.fromarray(mask, "L").save(ann_dir / f"{i:05d}.png")
    meta = {**asdict(spec), "version": spec.VERSION, "classes": list(CLASSES)}
    (folder / "spec.json").write_text(json.dumps(meta, indent=2) + "\n")


def ensure_embedded(spec: SynthSegSpec, root: Optional[Path] = None) -> Path:
    """The folder holding ``img_dir/`` and ``ann_dir/`` for ``spec``, generated (atomically) if needed."""
    return build_once(dataset_dir(spec, root), lambda tmp: _write(spec, tmp), "spec.json")


def generate(**spec) -> Path:
    """The registered data set: the generated set described by ``SynthSegSpec(**spec)``, built once; its folder."""
    return ensure_embedded(SynthSegSpec(**spec))
