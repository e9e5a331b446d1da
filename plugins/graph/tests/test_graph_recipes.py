"""Every shipped graph recipe (each file in kdhub_graph/configs, found by glob, so a new recipe is covered on its
own) runs end to end through ``kdhub train``'s own entry, at the recipe's real model sizes, on a tiny data set
written in the recipe's own data format, from a randomly initialised teacher of the recipe's architecture saved
as a user saves one (``torch.save(model.state_dict(), path)``), then once more training its own teacher as
shipped. Only the data location and size (graph, split, embedded-graph size), the seeds, the schedule (two
epochs) and ``device=cpu`` are overridden."""
import json

import numpy as np
import pytest
import torch
import yaml

from graph_helpers import tiny_graph, write_graph_npz, write_planetoid_raw
from kdhub.cli import main as kdhub_main
from kdhub_graph.config import CONFIG_DIR, load
from kdhub_graph.models import build_teacher

RECIPES = sorted(CONFIG_DIR.glob("*.yaml"))
CLASSES, FEATURES = 3, 8


def test_every_shipped_recipe_is_found():
    assert len(RECIPES) >= 9 and (CONFIG_DIR / "demo.yaml") in RECIPES


def test_tiny_planetoid_files_read_back_with_pyg(tmp_path):
    """The test's Planetoid writer, read by PyG's own reader (read_planetoid_data and the Planetoid data set):
    every node's features and label, every edge in both directions; each file holds the same Python types as
    the released Cora files, where the project's copy of them is at hand."""
    import pickle
    import warnings

    from torch_geometric.datasets import Planetoid
    from torch_geometric.io import read_planetoid_data

    from graph_helpers import SHARED

    x, y, pairs = tiny_graph(CLASSES, 180, FEATURES)
    raw = write_planetoid_raw(tmp_path / "Cora" / "raw", "Cora", x, y, pairs, labelled=12, tests=60)
    data = read_planetoid_data(str(raw), "cora")
    assert torch.equal(data.x, torch.from_numpy(x)) and torch.equal(data.y, torch.from_numpy(y))
    edges = {tuple(e) for e in data.edge_index.t().tolist()}
    assert edges == {(int(a), int(b)) for a, b in pairs} | {(int(b), int(a)) for a, b in pairs}
    assert int(data.train_mask.sum()) == 12 and int(data.test_mask.sum()) == 60
    dataset = Planetoid(str(tmp_path), "Cora")[0]
    assert torch.equal(dataset.x, data.x) and torch.equal(dataset.edge_index, data.edge_index)
    released = SHARED / "planetoid" / "Cora" / "raw"
    if released.is_dir():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for suffix in ("x", "tx", "allx", "y", "ty", "ally", "graph"):
                with open(released / f"ind.cora.{suffix}", "rb") as f:
                    theirs = pickle.load(f, encoding="latin1")
                with open(raw / f"ind.cora.{suffix}", "rb") as f:
                    ours = pickle.load(f)
                assert type(ours).__name__ == type(theirs).__name__, suffix


def _data_overrides(source: str, name: str, tmp_path):
    """The recipe's data source at tiny size: (its overrides, the feature count)."""
    if source == "npz":  # GLNN/CPF sparse-npz graph: 3 classes x 12 nodes
        x, y, pairs = tiny_graph(CLASSES, 12, FEATURES)
        path = write_graph_npz(tmp_path / "tiny.npz", x, y, pairs)
        return [f"data.path={path}"], FEATURES
    if source in ("pyg", "planetoid"):  # PyG's Planetoid raw files; its reader needs len(y) + 500 nodes
        x, y, pairs = tiny_graph(CLASSES, 180, FEATURES)
        write_planetoid_raw(tmp_path / "root" / name / "raw", name, x, y, pairs, labelled=CLASSES * 4, tests=60)
        return [f"data.root={tmp_path / 'root'}"], FEATURES
    if source == "csbm":  # the embedded generated graph, at tiny size
        return [f"data.csbm.nodes={CLASSES * 12}", f"data.csbm.classes={CLASSES}",
                f"data.csbm.features={FEATURES}"], FEATURES
    raise AssertionError(f"no tiny writer for data.source {source!r}: add one to this test")


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_trains_two_epochs_and_exports_a_loadable_student(recipe, tmp_path):
    raw = yaml.safe_load(recipe.read_text())
    data = raw.get("data", {})
    overrides, features = _data_overrides(data.get("source", "csbm"), data.get("name", "Cora"), tmp_path)
    overrides += ["data.split.train_per_class=4", "data.split.val_per_class=3", "seeds=[0]",
                  "student.epochs=2", "device=cpu"]
    cfg = load(recipe, overrides)  # the recipe as it will run: its teacher and student sections untouched
    t, s = cfg["teacher"], cfg["student"]
    assert (t["hidden"], t["layers"], s["hidden"], s["layers"]) == \
        (raw["teacher"].get("hidden", 128), raw["teacher"].get("layers", 2),
         raw["student"].get("hidden", 128), raw["student"].get("layers", 2))

    torch.manual_seed(0)  # a user's teacher, randomly initialised, saved as a bare state dict
    teacher = build_teacher(t, features, CLASSES)
    teacher_path = tmp_path / "my_teacher" / "teacher.pt"
    teacher_path.parent.mkdir()
    torch.save(teacher.state_dict(), teacher_path)

    work = tmp_path / "work"
    rc = kdhub_main(["train", str(recipe), "--work-dir", str(work), "--cfg-options", *overrides,
                     f"teacher.checkpoint={teacher_path}"])
    assert rc == 0
    summary = json.loads((work / "summary.json").read_text())
    assert summary["task"] == "graph" and summary["method"] == cfg["method"] and summary["seeds"] == [0]
    roles = ["teacher", "student"] + (["baseline"] if cfg["baseline"] else [])
    for role in roles:
        metrics = summary[role]
        assert {"val_acc", "test_acc"} <= set(metrics), (role, metrics)
        assert all(0.0 <= v <= 100.0 for k, v in metrics.items() if not k.endswith("_std")), (role, metrics)
    # the teacher the run used is the user's file, at the recipe's size
    assert summary["teacher_model"] == t["model"]
    assert summary["params"]["teacher"] == sum(p.numel() for p in teacher.parameters())

    # the exported student: weights only, the recipe's MLP (layers x hidden) on the tiny graph's sizes
    state = torch.load(summary["student_checkpoint"], weights_only=True)
    weights = [state["student"][f"lins.{i}.weight"].shape for i in range(s["layers"])]
    dims = [features] + [s["hidden"]] * (s["layers"] - 1) + [CLASSES]
    assert weights == [torch.Size([b, a]) for a, b in zip(dims[:-1], dims[1:])]
    assert summary["params"]["student"] == sum(v.numel() for k, v in state["student"].items()
                                               if k.startswith("lins."))
    assert (state["in_channels"], state["num_classes"]) == (features, CLASSES)
    # two epochs of student training, then the best weights by validation accuracy
    last = torch.load(work / "seed_0" / "student" / "checkpoints" / "epoch_2.pth", weights_only=True)
    assert last["epoch"] == 2 and last["best_metrics"]["val_acc"] == summary["student"]["val_acc"]
    assert np.isfinite(summary["student"]["test_acc"])

    # as shipped (no teacher.checkpoint), the recipe trains its teacher first: two epochs of that too
    trained = tmp_path / "trained"
    assert kdhub_main(["train", str(recipe), "--work-dir", str(trained), "--cfg-options", *overrides,
                       "teacher.epochs=2", "baseline=false"]) == 0
    summary = json.loads((trained / "summary.json").read_text())
    assert all(0.0 <= summary[r]["test_acc"] <= 100.0 for r in ("teacher", "student"))
    saved = torch.load(trained / "seed_0" / "teacher" / "teacher.pth", weights_only=True)
    assert saved["arch"]["model"] == t["model"] and saved["arch"]["hidden"] == t["hidden"]
    assert {k: v.shape for k, v in saved["model"].items()} == {k: v.shape for k, v in teacher.state_dict().items()}
    assert torch.load(trained / "seed_0" / "teacher" / "checkpoints" / "epoch_2.pth", weights_only=True)["epoch"] == 2
