"""Data transforms for the TransKD authors' Cityscapes recipe that mmseg 1.2 does not have.

``DownsampleSegMap`` puts the label map at the resolution of the model's output (a quarter of the image for
SegFormer), resized directly from the loaded label with nearest-neighbour sampling, as the authors' training
and evaluation scripts do; mmseg's decode head then compares logits and labels at that size without
upsampling. ``RandomShift`` is the authors' small translation: image and labels move by the same random whole
number of pixels (each in its own grid) and the exposed border is filled as their code fills it.
"""
from __future__ import annotations

import random
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


def _pair(value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    near, far = value
    return int(near), int(far)


def shift_array(array: np.ndarray, dx: int, dy: int, near: int, far: int) -> np.ndarray:
    """``array`` [H, W] or [H, W, C] moved right by ``dx`` and down by ``dy`` pixels (negative: left / up),
    same shape.

    The authors' code grows the canvas by (dx, dy) at the top-left (a negative amount cuts rows/columns
    off instead), fills the grown part with ``near``, places the array at (dy, dx), and crops the
    canvas's top-left H x W, where anything beyond the canvas reads ``far``. So a positive shift exposes
    the top rows / left columns, filled with ``near``, and a negative one the bottom rows / right columns,
    filled with ``far``; where both are exposed (a corner), ``far`` wins.
    """
    h, w = array.shape[:2]
    canvas = np.full((h + dy, w + dx) + array.shape[2:], near, dtype=array.dtype)
    # the array's pixel (y, x) lands at (y + dy, x + dx) of the canvas; keep what falls inside it
    canvas[max(dy, 0):, max(dx, 0):] = array[max(-dy, 0):, max(-dx, 0):]
    out = np.full_like(array, far)
    out[:min(h, h + dy), :min(w, w + dx)] = canvas[:h, :w]
    return out


@TRANSFORMS.register_module()
class RandomShift(BaseTransform):
    """Translate the image and every label map by (dx, dy), each drawn uniformly from -max_shift..max_shift.

    The offsets are whole pixels of each array's own grid: with labels at a quarter of the image's
    resolution (the authors' recipe) a label moves four times as far in image space as the image does,
    which is what the authors' code does. ``pad_val`` / ``seg_pad_val`` are the fills for the border a
    positive shift exposes (top / left) and a negative one exposes (bottom / right), an int for both. The
    defaults are the authors': image 0 on both sides; labels 255 (ignored) on the top / left but 0
    (Cityscapes' 'road') on the bottom / right, because their crop beyond the grown canvas fills zeros.
    ``seg_pad_val=255`` ignores both borders instead. ``prob`` is the chance of shifting at all (theirs: 1).

    Required keys: ``img``; modified: ``img`` and each key in ``seg_fields`` (``gt_seg_map``); added:
    ``shift`` (dx, dy).
    """

    def __init__(self, max_shift: int = 2, pad_val: Union[int, Sequence[int]] = 0,
                 seg_pad_val: Union[int, Sequence[int]] = (255, 0), prob: float = 1.0):
        if max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0, got {max_shift}")
        self.max_shift, self.prob = int(max_shift), float(prob)
        self.pad_val, self.seg_pad_val = _pair(pad_val), _pair(seg_pad_val)

    def _offsets(self) -> Tuple[int, int]:
        if self.prob < 1.0 and random.random() >= self.prob:
            return 0, 0
        dx = random.randint(-self.max_shift, self.max_shift)  # both ends included, x first, as the authors draw
        dy = random.randint(-self.max_shift, self.max_shift)
        return dx, dy

    def transform(self, results: dict) -> dict:
        dx, dy = self._offsets()
        results["img"] = shift_array(results["img"], dx, dy, *self.pad_val)
        for key in results.get("seg_fields", []):
            results[key] = shift_array(results[key], dx, dy, *self.seg_pad_val)
        results["shift"] = (dx, dy)
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(max_shift={self.max_shift}, pad_val={self.pad_val}, "
                f"seg_pad_val={self.seg_pad_val}, prob={self.prob})")


@TRANSFORMS.register_module()
class DownsampleSegMap(BaseTransform):
    """Resize every label map to the current image size divided by ``factor``, rounded half up
    (int(H / factor + 0.5) x int(W / factor + 0.5)), with nearest-neighbour sampling.

    ``backend='pillow'`` samples as PIL does (the authors' code resizes PIL images), output pixel x reading
    input pixel floor((x + 0.5) * W_in / W_out); ``'cv2'`` is OpenCV's nearest rule. Place it after the
    image's Resize and after LoadAnnotations: the label is resized once, from the file's resolution.

    Required keys: ``img_shape`` and ``seg_fields``; modified: each key in ``seg_fields``.
    """

    def __init__(self, factor: int = 4, backend: str = "pillow"):
        if factor <= 0:
            raise ValueError(f"DownsampleSegMap: factor must be positive, got {factor}")
        self.factor, self.backend = factor, backend

    def transform(self, results: dict) -> dict:
        h, w = results["img_shape"][:2]
        size = (int(w / self.factor + 0.5), int(h / self.factor + 0.5))  # (width, height), as mmcv takes it
        for key in results.get("seg_fields", []):
            results[key] = mmcv.imresize(results[key], size, interpolation="nearest", backend=self.backend)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(factor={self.factor}, backend={self.backend!r})"
