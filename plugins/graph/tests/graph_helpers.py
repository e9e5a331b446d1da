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


def write_npz(path: Path, drop=(), nan=False, per_class: int = 2):
    """A path graph of two classes, ``per_class`` nodes each (4 by default), in the sparse-npz layout."""
    import scipy.sparse as sp
    n = 2 * per_class
    adj = sp.csr_matrix(np.eye(n, k=1, dtype=np.float32) + np.eye(n, k=-1, dtype=np.float32))
    x = np.eye(n, dtype=np.float32)
    if nan:
        x[0, 0] = np.nan
    attr = sp.csr_matrix(x)
    arrays = dict(adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
                  attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=attr.shape,
                  labels=np.repeat(np.array([0, 1], dtype=np.int8), per_class))
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


def tiny_graph(classes: int = 3, per_class: int = 12, features: int = 8, seed: int = 0):
    """A small connected, homophilous graph as numpy arrays: (x [n, features], labels [n], undirected edge
    list [m, 2] with each pair once). A ring through every node keeps it connected (GLNN's largest-component
    step keeps all of it); extra edges join nodes of one class; features are noisy class means."""
    rng = np.random.default_rng(seed)
    n = classes * per_class
    labels = rng.permutation(np.repeat(np.arange(classes), per_class))
    means = rng.normal(0.0, 1.0, (classes, features))
    x = (means[labels] + rng.normal(0.0, 0.8, (n, features))).astype(np.float32)
    edges = {(i, (i + 1) % n) for i in range(n)}
    for c in range(classes):
        members = np.flatnonzero(labels == c)
        for _ in range(2 * per_class):
            a, b = rng.choice(members, 2, replace=False)
            edges.add((int(a), int(b)))
    pairs = np.array(sorted({(min(a, b), max(a, b)) for a, b in edges}), dtype=np.int64)
    return x, labels.astype(np.int64), pairs


def write_graph_npz(path: Path, x, labels, pairs) -> Path:
    """The GLNN/CPF sparse-npz layout (CSR adjacency with both directions, CSR attributes, labels)."""
    import scipy.sparse as sp
    n = len(labels)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    adj = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    attr = sp.csr_matrix(x)
    np.savez(path, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
             attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=attr.shape,
             labels=labels)
    return path


#: PyG's read_planetoid_data marks the 500 nodes after the labelled ones as validation nodes, so a
#: Planetoid graph needs at least len(y) + 500 nodes
PLANETOID_VAL = 500


def write_planetoid_raw(raw: Path, name: str, x, labels, pairs, labelled: int, tests: int) -> Path:
    """The eight Planetoid raw files of ``name`` (ind.<name>.x/.tx/.allx/.y/.ty/.ally/.graph/.test.index) in
    ``raw`` for a graph whose node ``i`` has features ``x[i]`` and label ``labels[i]``, laid out as the
    original release: the first ``labelled`` nodes are x/y, the first ``n - tests`` nodes allx/ally, the last
    ``tests`` nodes tx/ty, listed in test.index in a shuffled order (as in the release), features as scipy
    CSR matrices, labels one-hot, the graph a dict of neighbour lists, all pickled."""
    import pickle
    from collections import defaultdict

    import scipy.sparse as sp
    n, classes = len(labels), int(labels.max()) + 1
    assert n >= labelled + PLANETOID_VAL and 0 < tests <= n - labelled, "PyG's reader needs len(y) + 500 nodes"
    onehot = np.eye(classes, dtype=np.int64)[labels]
    rest = n - tests
    order = np.random.default_rng(1).permutation(np.arange(rest, n))  # test.index lists them shuffled
    graph = defaultdict(list)
    for a, b in pairs:
        graph[int(a)].append(int(b))
        graph[int(b)].append(int(a))
    raw.mkdir(parents=True, exist_ok=True)
    parts = {"x": sp.csr_matrix(x[:labelled]), "y": onehot[:labelled], "allx": sp.csr_matrix(x[:rest]),
             "ally": onehot[:rest], "tx": sp.csr_matrix(x[order]), "ty": onehot[order], "graph": graph}
    for suffix, obj in parts.items():
        with open(raw / f"ind.{name.lower()}.{suffix}", "wb") as f:
            pickle.dump(obj, f, protocol=2)
    (raw / f"ind.{name.lower()}.test.index").write_text("".join(f"{i}\n" for i in order))
    return raw
