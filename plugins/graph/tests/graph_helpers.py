"""Helpers shared by the graph plugin tests."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

# The project's shared test data (Cora/CiteSeer), beside the checkout; KDHUB_SHARED_DATA overrides.
SHARED = Path(os.environ.get("KDHUB_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))


def tiny_config(tmp_path: Path, **over) -> Path:
    """A CSBM config small enough to train teacher, baseline and student in seconds."""
    cfg = {
        "task": "graph", "method": "glnn", "setting": "transductive", "seeds": [0], "checkpoint_interval": 10,
        "data": {"source": "csbm", "split": {"train_per_class": 10, "val_per_class": 20},
                 "csbm": {"nodes": 600, "classes": 3, "features": 16, "avg_degree": 6.0, "homophily": 0.85,
                          "feature_signal": 0.9, "seed": 0}},
        "teacher": {"model": "sage", "hidden": 32, "epochs": 40, "patience": 20, "batch_size": 64},
        "student": {"hidden": 32, "dropout": 0.3, "epochs": 80, "patience": 30, "weight_decay": 0.0005},
    }
    for key, value in over.items():
        node = cfg
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(args, env=None, check=True):
    e = {**os.environ, "KDHUB_PROGRESS": "0", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "kdhub", *map(str, args)], capture_output=True, text=True, env=e)
    if check and proc.returncode != 0:
        raise AssertionError(f"kdhub {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_npz(path: Path, drop=(), nan=False):
    """A 4-node graph in the sparse-npz layout."""
    import scipy.sparse as sp
    adj = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=np.float32))
    x = np.eye(4, dtype=np.float32)
    if nan:
        x[0, 0] = np.nan
    attr = sp.csr_matrix(x)
    arrays = dict(adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
                  attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=attr.shape,
                  labels=np.array([0, 0, 1, 1], dtype=np.int8))
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path
