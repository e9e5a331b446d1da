"""Every shipped segmentation config runs: two training iterations (one epoch of the tiny set for an epoch-based
recipe), one validation pass and the test split, through ``kdhub train``, on a tiny data set in the recipe's own
format.

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

import pytest
import torch

from kdhub_segmentation.task import CONFIG_DIR
from seg_helpers import write_cityscapes

RECIPES = sorted(CONFIG_DIR.rglob("*.py"))
TRAIN_IMAGES = 8  # one epoch of an epoch-based recipe: 8 / batch size iterations (1 at the authors' teacher's 8)


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes(root, "train", TRAIN_IMAGES, seed=0)
    write_cityscapes(root, "val", 1, seed=1)
    return root


def runnable(path: Path) -> bool:
    from kdhub.config import peek_task
    return peek_task(path) == "segmentation"


def test_every_config_is_runnable_or_the_base_of_a_runnable_one():
    from kdhub.config import inherited_files
    bases = {p.resolve() for r in RECIPES if runnable(r) for p in inherited_files(r)}
    assert [p.name for p in RECIPES if not runnable(p) and p.resolve() not in bases] == []
    assert sum("cityscapes" in p.name for p in RECIPES if runnable(p)) == 6


@pytest.mark.parametrize("recipe", [r for r in RECIPES if runnable(r)], ids=lambda p: p.stem)
def test_shipped_recipe_trains_validates_and_tests(recipe, tmp_path, cityscapes_root, monkeypatch):
    from mmengine.config import Config

    from kdhub.cli import main
    from kdhub.config import resolve_path
    from kdhub_openmmlab.teacher import model_config, package_config
    from kdhub_openmmlab.testing import random_checkpoint, recipe_config

    cfg = Config.fromfile(str(recipe))
    cityscapes = cfg.train_dataloader.dataset.type == "CityscapesDataset"
    by_epoch = cfg.train_cfg.type == "EpochBasedTrainLoop"
    schedule = {"max_epochs": 1, "val_interval": 1} if by_epoch else {"max_iters": 2, "val_interval": 2}
    iters = TRAIN_IMAGES // cfg.train_dataloader.batch_size if by_epoch else 2
    overrides = {"train_cfg": schedule, "baseline": False}
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
    last = torch.load(run / ("epoch_1.pth" if by_epoch else "iter_2.pth"), weights_only=True, mmap=True)
    assert last["meta"]["iter"] == iters
    assert not any(k.startswith("teacher.") for k in last["state_dict"])
    log = "".join(p.read_text() for p in run.glob("*/*.log"))
    val_lines = re.findall(r"(?:Iter|Epoch)\(val\) (?:\[\d+\])?\[\d+/\d+\]\s+aAcc", log)
    assert len(val_lines) == 1  # one validation pass
    if distilling:
        assert 0 <= summary["teacher"]["mIoU"] <= 100
        assert summary["params"]["teacher"] > summary["params"]["student"]
