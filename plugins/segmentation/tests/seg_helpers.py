"""Helpers shared by the segmentation plugin tests: tiny SegFormers, tiny data, tiny configs."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TINY_SYNTH = dict(size=32, train=16, val=4, test=4, seed=0)


def mit(embed_dims=8, num_layers=(1, 1, 1, 1), channels=16, num_classes=10, num_stages=4, strides=(4, 2, 2, 2)):
    """A tiny SegFormer (EncoderDecoder + MixVisionTransformer + SegformerHead) config dict."""
    heads = [1, 2, 5, 8][:num_stages]
    return dict(
        type="EncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[127.5] * 3, std=[64.0] * 3, bgr_to_rgb=True,
                               pad_val=0, seg_pad_val=255, size=(32, 32)),
        backbone=dict(type="MixVisionTransformer", in_channels=3, embed_dims=embed_dims, num_stages=num_stages,
                      num_layers=list(num_layers)[:num_stages], num_heads=heads, patch_sizes=[7, 3, 3, 3][:num_stages],
                      strides=list(strides)[:num_stages], sr_ratios=[8, 4, 2, 1][:num_stages],
                      out_indices=tuple(range(num_stages)), mlp_ratio=2, drop_path_rate=0.0),
        decode_head=dict(type="SegformerHead", in_channels=[embed_dims * h for h in heads],
                         in_index=list(range(num_stages)), channels=channels, dropout_ratio=0.1,
                         num_classes=num_classes, norm_cfg=dict(type="BN", requires_grad=True), align_corners=False,
                         loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode="whole"))


def run_cli(args, check=True, prefix=None, env=None, timeout=600):
    """``python -m kdhub ARGS`` in a subprocess (the real launcher, as users run it)."""
    cmd = (prefix or [sys.executable, "-m", "kdhub"]) + [str(a) for a in args]
    full_env = dict(os.environ, KDHUB_PROGRESS="0", PYTHONWARNINGS="ignore", **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def write_configs(folder: Path, iters: int = 6, teacher_iters: int = 8, extra: str = "") -> Path:
    """Tiny teacher, student and TransKD configs (32 px, 16 training images) over the real config bases."""
    from kdhub_segmentation.task import CONFIG_DIR

    base = CONFIG_DIR / "_base_"
    common = f"""task = 'segmentation'
_base_ = ['{base / 'synth_data.py'}', '{base / 'synth_runtime.py'}']
synth = {TINY_SYNTH!r}
crop_size = (32, 32)
data_preprocessor = dict(size=crop_size)
train_dataloader = dict(batch_size=4, dataset=dict(synth=synth))
val_dataloader = dict(batch_size=4, dataset=dict(synth=synth))
test_dataloader = dict(batch_size=4, dataset=dict(synth=synth))
log_processor = dict(window_size=1)
default_hooks = dict(logger=dict(type='LoggerHook', interval=2, log_metric_by_epoch=False),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3, max_keep_ckpts=2))
"""
    for name, model, n in (("teacher.py", mit(16, (1, 1, 1, 1), 16), teacher_iters),
                           ("student.py", mit(8, (1, 1, 1, 1), 16), iters)):
        (folder / name).write_text(common + f"""model = {model!r}
train_cfg = dict(type='IterBasedTrainLoop', max_iters={n}, val_interval=3)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
""")
    (folder / "transkd.py").write_text(f"""task = 'segmentation'
_base_ = ['./student.py']
model = dict(_delete_=True, type='SegDistiller', student=dict(config='student.py'),
             teacher=dict(config='teacher.py', checkpoint=None),
             distiller=dict(type='TransKDDistiller', variant='base', csf_channels=8, csf_squeeze_channels=4))
baseline = True
{extra}""")
    return folder / "transkd.py"


def write_cityscapes(root: Path, split: str, n: int, seed: int) -> None:
    """``n`` scenes of 256 x 128 (Cityscapes' 2048 x 1024 at an eighth) with train-id label maps (0..18, 255)."""
    import cv2

    rng = np.random.default_rng(seed)
    for folder in ("leftImg8bit", "gtFine"):
        (root / "data" / "cityscapes" / folder / split / "aachen").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        stem = f"aachen_{i:06d}_000019"
        label = np.full((128, 256), 255, np.uint8)
        for k in range(6):
            y, x = int(rng.integers(0, 96)), int(rng.integers(0, 224))
            label[y:y + 32, x:x + 32] = int(rng.integers(0, 19))
        image = (rng.integers(0, 40, (128, 256, 3)) + (label[..., None] % 19) * 11).astype(np.uint8)
        base = root / "data" / "cityscapes"
        cv2.imwrite(str(base / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png"), image)
        cv2.imwrite(str(base / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelTrainIds.png"), label)
