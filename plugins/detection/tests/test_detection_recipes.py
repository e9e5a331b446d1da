"""Every shipped detection config runs: two training iterations, one validation pass and the test split, through
``kdhub train``, on a tiny data set in the recipe's own format.

The COCO recipes read a COCO json and its images in mmdet's ``data/coco`` layout that the test writes (80 COCO
categories, a few boxes per image); the embedded-data configs read a tiny embedded set. Teachers are random
checkpoints of the teacher config's architecture; ImageNet-initialised backbones load random stand-in files
through mmengine's own loader. Only the data shrinks: COCO images reach the recipe's transforms, models,
losses and CocoMetric at a sixteenth of the recipe's side (:mod:`kdhub_openmmlab.testing`). One model number
follows the data: DINO selects its queries among the encoder's tokens, and a sixteenth-size image has fewer than
the recipe's 900, so the COCO DINO recipes run with 30 queries (at half size, where 900 fit, one such case took
minutes on two cores). A config that is not runnable by itself (no ``task``) must be the ``_base_`` of one that
is, so every file is covered.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from detection_helpers import CONFIGS

RECIPES = sorted(CONFIGS.glob("*.py"))
#: the COCO recipes' images are this many times smaller per side than the recipe's (only the data shrinks)
SHRINK = 16
#: DINO's query count at 1/SHRINK of the recipe's side (the recipe's 900 exceed the encoder's tokens there)
DINO_QUERIES = 30
TINY_SYNTH = dict(image_size=128, train=2, val=2, test=2, max_objects=3, sizes=(16, 48), seed=0)


def write_coco(root: Path, split: str, n: int, seed: int) -> None:
    """``root/data/coco/{split}2017/*.jpg`` and ``annotations/instances_{split}2017.json`` with ``n`` images."""
    import cv2
    from mmdet.datasets import CocoDataset

    rng = np.random.default_rng(seed)
    folder = root / "data" / "coco" / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": name, "supercategory": "thing"}
                  for i, name in enumerate(CocoDataset.METAINFO["classes"])]
    images, annotations = [], []
    for i in range(n):
        height, width = 240, 320
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        for k in range(3):
            x, y = int(rng.integers(0, width - 100)), int(rng.integers(0, height - 100))
            w, h = int(rng.integers(40, 100)), int(rng.integers(40, 100))
            image[y:y + h, x:x + w] = rng.integers(120, 255, 3, dtype=np.uint8)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(1 + k * 7),
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0, "segmentation": []})
        name = f"{i + 1:012d}.jpg"
        cv2.imwrite(str(folder / name), image)
        images.append({"id": i + 1, "file_name": name, "height": height, "width": width})
    ann = root / "data" / "coco" / "annotations" / f"instances_{split}2017.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    write_coco(root, "train", 2, seed=0)
    write_coco(root, "val", 2, seed=1)
    return root


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """torch.hub's cache of this module: the stand-ins of ImageNet checkpoints live here."""
    return tmp_path_factory.mktemp("torch")


def runnable(path: Path) -> bool:
    from kdhub.config import peek_task
    return peek_task(path) == "detection"


def test_every_config_is_runnable_or_the_base_of_a_runnable_one():
    from kdhub.config import inherited_files
    bases = {p.resolve() for r in RECIPES if runnable(r) for p in inherited_files(r)}
    assert [p.name for p in RECIPES if not runnable(p) and p.resolve() not in bases] == []
    assert sum(map(runnable, RECIPES)) >= 20 and sum("coco" in p.name for p in RECIPES) == 8


@pytest.mark.parametrize("recipe", [r for r in RECIPES if runnable(r)], ids=lambda p: p.stem)
def test_shipped_recipe_trains_validates_and_tests(recipe, tmp_path, coco_root, torch_home, monkeypatch, mm):
    from mmdet.datasets import CocoDataset
    from mmengine.config import Config

    from kdhub.cli import main
    from kdhub.config import resolve_path
    from kdhub_openmmlab.teacher import model_config, package_config
    from kdhub_openmmlab.testing import pretrained_stand_ins, random_checkpoint, recipe_config

    cfg = Config.fromfile(str(recipe))
    coco = cfg.train_dataloader.dataset.type != "SynthShapesDataset"
    overrides = {"train_cfg": {"max_epochs": 2, "val_interval": 2}, "baseline": False,
                 "default_hooks": {"checkpoint": {"interval": 2}}}
    # loading in this process: worker processes would outlive each in-process run (and cost their start-up)
    for split in ("train", "val", "test"):
        overrides[f"{split}_dataloader"] = {"num_workers": 0, "persistent_workers": False}
    if not coco:
        spec = {"spec": TINY_SYNTH}
        for split in ("train", "val", "test"):
            overrides[f"{split}_dataloader"]["dataset"] = spec
        overrides.update({f"{s}_evaluator": spec for s in ("val", "test")})
    distilling = cfg.model.type == "KDDistillDetector"
    dino = coco and (cfg.model.student if distilling else cfg.model).type == "DINO"
    if dino:  # DINO picks its queries among the encoder's tokens: an eighth-size image has fewer than 900
        queries = {"num_queries": DINO_QUERIES}
        overrides["model"] = {"student": dict(queries), "teacher": dict(queries)} if distilling else queries
    if distilling:
        teacher = cfg.model.teacher
        file = package_config(teacher.config) or resolve_path(teacher.config, str(recipe))
        classes = CocoDataset.METAINFO["classes"] if coco else ("circle", "square", "triangle", "ring", "cross")
        extra = {"num_queries": DINO_QUERIES} if dino else {}
        ckpt = random_checkpoint(model_config(dict(teacher, config=str(file), **extra), "model.teacher"),
                                 tmp_path / "teacher.pth", "mmdet", {"dataset_meta": {"classes": list(classes)}})
        overrides.setdefault("model", {}).setdefault("teacher", {})["checkpoint"] = str(ckpt)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    pretrained_stand_ins(cfg.model.student if distilling else cfg.model, torch_home, "mmdet")
    child = recipe_config(recipe, tmp_path / recipe.name, shrink=SHRINK if coco else 1, overrides=overrides)
    monkeypatch.chdir(coco_root)  # the recipes name data/coco relative to the working directory
    work = tmp_path / "work"
    assert main(["train", str(child), "--work-dir", str(work)]) == 0

    summary = json.loads((work / "summary.json").read_text())
    tested = summary["student" if distilling else "model"]
    assert set(tested) >= {"AP", "AP50"} and -1 <= tested["AP"] <= 100
    run = work / "student" if distilling else work
    last = torch.load(run / "epoch_2.pth", weights_only=True, mmap=True)
    assert (last["meta"]["epoch"], last["meta"]["iter"]) == (2, 2)  # two epochs of one batch each
    assert not any(k.startswith("teacher.") for k in last["state_dict"])
    log = "".join(p.read_text() for p in run.glob("*/*.log"))
    assert set(re.findall(r"Epoch\(val\) \[(\d+)\]", log)) == {"2"}  # one validation pass, after epoch 2
    exported = torch.load(run / "student.pth", weights_only=True, mmap=True)
    if distilling:
        assert set(summary["teacher"]) >= {"AP", "AP50"}
        assert summary["params"]["teacher"] > summary["params"]["student"]
        assert not any(k.startswith(("student.", "teacher.")) for k in exported["state_dict"])
