"""A user's own graph: labels in the forms npz files carry them, nodes without a label, bad features."""
import json
import pickle

import numpy as np
import pytest
import torch

from kdhub.config import ConfigError
from kdhub_graph.data import glnn_split, load_npz, load_pyg

from graph_helpers import SHARED, run_cli, tiny_graph, write_npz, write_planetoid_raw


def _with_labels(tmp_path, labels, name="g.npz"):
    """The 6-node path graph of ``write_npz`` with ``labels`` in place of its own."""
    path = write_npz(tmp_path / name, per_class=3)
    arrays = dict(np.load(path))
    arrays["labels"] = labels
    np.savez(path, **arrays)
    return path


def test_labels_as_a_column_or_one_hot_read_as_class_indices_and_minus_one_is_no_label(tmp_path):
    plain = np.array([0, 0, 1, 1, 2, 2])
    assert load_npz(str(_with_labels(tmp_path, plain)), "cfg").y.tolist() == plain.tolist()
    assert load_npz(str(_with_labels(tmp_path, plain[:, None].astype(np.float32))), "cfg").y.tolist() == plain.tolist()
    onehot = np.eye(3, dtype=np.int8)[plain]
    onehot[4] = 0                                                      # an all-zero row: no label
    assert load_npz(str(_with_labels(tmp_path, onehot)), "cfg").y.tolist() == [0, 0, 1, 1, -1, 2]
    y = torch.tensor([0, 0, 1, 1, -1, 2, 2, 2, -1, 0, 1, 2])
    masks = glnn_split(y, 1, 1, seed=0)
    covered = masks["train_mask"] | masks["val_mask"] | masks["test_mask"]
    assert covered.tolist() == (y >= 0).tolist()                       # a node without a label is in no split
    assert int(masks["train_mask"].sum()) == 3 and int(masks["val_mask"].sum()) == 3


@pytest.mark.parametrize("labels, message", [
    (np.array(["a", "a", "b", "b", "c", "c"]), "labels are <U1 values; give one integer class index per node"),
    (np.array([1, 1, 2, 2, 3, 3]), "no node has class 0 (labels run from 1 to 3); classes must be 0..C-1, e.g. "
                                   "subtract 1 from 1-based labels"),
    (np.array([0, 0, 1, 1, -2, 2]), "label -2 is below -1"),
    (np.array([0.0, 0.0, 1.0, 1.5, 2.0, 2.0]), "not whole numbers"),
    (np.array([[1, 1, 0]] * 6), "a 6 x 3 matrix that is not one-hot"),
    (np.full(6, -1), "no node has a label"),
])
def test_labels_that_are_not_class_indices_are_refused_naming_the_file(tmp_path, labels, message):
    path = _with_labels(tmp_path, labels)
    with pytest.raises(ConfigError) as err:
        load_npz(str(path), "cfg")
    assert f"cfg: data.path: npz file {path}: " in str(err.value) and message in str(err.value)


def test_non_finite_features_stop_the_run_before_anything_is_written(tmp_path, tiny):
    npz = write_npz(tmp_path / "nan.npz", nan=True, per_class=3)
    cfg = tiny(data={"source": "npz", "path": str(npz), "split": {"train_per_class": 1, "val_per_class": 1}})
    proc = run_cli(["train", cfg, "--work-dir", tmp_path / "w"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert ("data.path: the graph's features hold 1 NaN or infinite value(s) (the first at node 0, feature 0)"
            in proc.stderr)
    assert not (tmp_path / "w").exists()


def test_planetoid_placeholder_nodes_have_no_label_and_join_no_split(tmp_path):
    """Where CiteSeer's test index skips a number, PyG's reader adds a node with zero features and the label 0;
    it is kept in the graph, labelled -1, and tested by no split (Planetoid's own test mask leaves it out too)."""
    x, y, pairs = tiny_graph(3, 180, 8)
    raw = write_planetoid_raw(tmp_path / "CiteSeer" / "raw", "CiteSeer", x, y, pairs, labelled=12, tests=60)
    listed = [int(i) for i in (raw / "ind.citeseer.test.index").read_text().split()]
    gone = sorted(listed)[10]                                          # a test node missing from the release
    keep = [i for i, node in enumerate(listed) if node != gone]
    for suffix in ("tx", "ty"):
        with open(raw / f"ind.citeseer.{suffix}", "rb") as f:
            rows = pickle.load(f)
        with open(raw / f"ind.citeseer.{suffix}", "wb") as f:
            pickle.dump(rows[keep], f, protocol=2)
    (raw / "ind.citeseer.test.index").write_text("".join(f"{listed[i]}\n" for i in keep))
    data = load_pyg(str(tmp_path), "CiteSeer", "cfg")
    assert data.y[gone].item() == -1 and float(data.x[gone].abs().sum()) == 0.0
    assert (data.y >= 0).sum().item() == len(y) - 1
    masks = glnn_split(data.y, 4, 4, seed=0)
    assert not any(bool(m[gone]) for m in masks.values())
    release = SHARED / "planetoid"
    if (release / "CiteSeer" / "raw").is_dir():                        # the real release: 15 such nodes
        assert int((load_pyg(str(release), "CiteSeer", "cfg").y < 0).sum()) == 15


def test_the_kept_config_repeats_a_run_whose_paths_are_relative_to_its_config(tmp_path, monkeypatch):
    """config.yaml names the run's files absolutely, as the run found them, so it repeats the run from anywhere."""
    import yaml

    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    write_npz(folder / "data" / "g.npz", per_class=6)
    cfg = folder / "my.yaml"
    cfg.write_text(yaml.safe_dump({"task": "graph", "method": "none", "seeds": [0],
                                   "data": {"source": "npz", "path": "data/g.npz",
                                            "split": {"train_per_class": 1, "val_per_class": 1}},
                                   "teacher": {"hidden": 8, "epochs": 2}, "student": {"hidden": 8, "epochs": 2}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_cli(["train", cfg, "--work-dir", "first"])
    kept = yaml.safe_load((elsewhere / "first" / "config.yaml").read_text())
    assert kept["data"]["path"] == str(folder / "data" / "g.npz")
    run_cli(["train", elsewhere / "first" / "config.yaml", "--work-dir", "again"])
    first, again = (json.loads((elsewhere / w / "summary.json").read_text()) for w in ("first", "again"))
    assert again["student"] == first["student"] and again["teacher"] == first["teacher"]
