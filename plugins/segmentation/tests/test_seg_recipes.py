"""Every shipped segmentation config runs: two training iterations, one validation pass and the test split,
through ``kdhub train``, on a tiny data set in the recipe's own format.

The Cityscapes recipes read the folder layout mmseg's CityscapesDataset expects (``leftImg8bit/{split}/<city>/
*_leftImg8bit.png`` with ``gtFine/{split}/<city>/*_gtFine_labelTrainIds.png``) that the test writes; the
embedded-data configs read a tiny embedded set. Teachers are random checkpoints of the teacher config's
architecture. Only the data shrinks: Cityscapes images reach the recipe's transforms, models, losses and
IoUMetric at an eighth of the recipe's side (:mod:`kdhub_openmmlab.testing`). A config that is not runnable by
itself (no ``task``) must be the ``_base_`` of one that is, so every file is covered.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from kdhub_segmentation.task import CONFIG_DIR

RECIPES = sorted(CONFIG_DIR.rglob("*.py"))


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


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes(root, "train", 2, seed=0)
    write_cityscapes(root, "val", 1, seed=1)
    return root


def runnable(path: Path) -> bool:
    from kdhub.config import peek_task
    return peek_task(path) == "segmentation"


def test_every_config_is_runnable_or_the_base_of_a_runnable_one():
    from kdhub.config import inherited_files
    bases = {p.resolve() for r in RECIPES if runnable(r) for p in inherited_files(r)}
    assert [p.name for p in RECIPES if not runnable(p) and p.resolve() not in bases] == []
    assert sum("cityscapes" in p.name for p in RECIPES if runnable(p)) == 3


@pytest.mark.parametrize("recipe", [r for r in RECIPES if runnable(r)], ids=lambda p: p.stem)
def test_shipped_recipe_trains_validates_and_tests(recipe, tmp_path, cityscapes_root, monkeypatch):
    from mmengine.config import Config

    from kdhub.cli import main
    from kdhub.config import resolve_path
    from kdhub_openmmlab.teacher import model_config, package_config
    from kdhub_openmmlab.testing import random_checkpoint, recipe_config

    cfg = Config.fromfile(str(recipe))
    cityscapes = cfg.train_dataloader.dataset.type == "CityscapesDataset"
    overrides = {"train_cfg": {"max_iters": 2, "val_interval": 2}, "baseline": False}
    # loading in this process: worker processes would outlive each in-process run (and cost their start-up)
    for split in ("train", "val", "test"):
        overrides[f"{split}_dataloader"] = {"num_workers": 0, "persistent_workers": False}
    if not cityscapes:
        tiny = dict(cfg.train_dataloader.dataset.synth, train=2, val=1, test=1)
        for split in ("train", "val", "test"):
            overrides[f"{split}_dataloader"]["dataset"] = {"synth": tiny}
    distilling = cfg.model.type == "SegDistiller"
    if distilling:
        teacher = cfg.model.teacher
        file = package_config(teacher.config) or resolve_path(teacher.config, str(recipe))
        ckpt = random_checkpoint(model_config(dict(teacher, config=str(file)), "model.teacher"),
                                 tmp_path / "teacher.pth", "mmseg")
        overrides["model"] = {"teacher": {"checkpoint": str(ckpt)}}
    child = recipe_config(recipe, tmp_path / recipe.name, shrink=8 if cityscapes else 1, overrides=overrides)
    monkeypatch.chdir(cityscapes_root)  # the recipes name data/cityscapes relative to the working directory
    work = tmp_path / "work"
    assert main(["train", str(child), "--work-dir", str(work)]) == 0

    summary = json.loads((work / "summary.json").read_text())
    assert 0 <= summary["student" if distilling else "model"]["mIoU"] <= 100
    run = work / "student" if distilling else work
    last = torch.load(run / "iter_2.pth", weights_only=True, mmap=True)
    assert last["meta"]["iter"] == 2
    assert not any(k.startswith("teacher.") for k in last["state_dict"])
    log = "".join(p.read_text() for p in run.glob("*/*.log"))
    assert len(re.findall(r"Iter\(val\) \[\d+/\d+\]\s+aAcc", log)) == 1  # one validation pass
    if distilling:
        assert 0 <= summary["teacher"]["mIoU"] <= 100
        assert summary["params"]["teacher"] > summary["params"]["student"]
