"""Graph data: PyG data sets by name from a local root, sparse-npz graphs, the embedded CSBM, and GLNN's splits.

Everything becomes one PyG ``Data`` with ``x``, ``edge_index`` (undirected), ``y`` and, after
:func:`prepare`, the masks of a seed's split. ``y`` is a class index per node, -1 for a node without a label (an
npz may mark one so; Planetoid's CiteSeer has 15 placeholders for test nodes missing from its release, which PyG
fills with zero features and the label 0). Such nodes stay in the graph and in no split. Labels and features are
checked when a graph is loaded, so bad ones stop the run before anything is written. The inductive setting (GLNN) hides a fraction of the test
nodes, and every edge touching them, from training: ``obs_mask`` marks the observed nodes and
``obs_edge_index`` is the graph a teacher may see while training.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, subgraph, to_undirected

from kdhub.checkpoint import tensor_bytes
from kdhub.config import ConfigError, resolve_path

from .csbm import csbm

NPZ_KEYS = ("adj_data", "adj_indices", "adj_indptr", "adj_shape", "attr_data", "attr_indices", "attr_indptr",
            "attr_shape", "labels")


def _pyg_datasets() -> Dict[str, Any]:
    """name -> (PyG class, canonical name, folder under the root, raw file names)."""
    from torch_geometric.datasets import Amazon, Coauthor, Planetoid

    out: Dict[str, Any] = {}
    for name in ("Cora", "CiteSeer", "PubMed"):
        files = [f"ind.{name.lower()}.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")]
        out[name.lower()] = (Planetoid, name, name, files)
    for name in ("Computers", "Photo"):
        out[name.lower()] = (Amazon, name, name, [f"amazon_electronics_{name.lower()}.npz"])
    for name in ("CS", "Physics"):
        out[name.lower()] = (Coauthor, name, name, [f"ms_academic_{name[:3].lower()}.npz"])
    return out


def load_pyg(root: str, name: str, source: str) -> Data:
    """A PyG data set by name (Planetoid, Amazon, Coauthor) from its raw files under ``root/<Name>/raw``,
    offline: the root may be read-only and nothing is downloaded."""
    table = _pyg_datasets()
    if name.lower() not in table:
        raise ConfigError(f"{source}: data.name {name!r} is not a supported PyG data set; valid choices: "
                          f"{', '.join(t[1] for t in table.values())}")
    cls, canonical, folder, files = table[name.lower()]
    raw = resolve_path(root, source) / folder / "raw"
    missing = [f for f in files if not (raw / f).is_file()]
    if missing:
        raise ConfigError(
            f"{source}: data.root: no raw files for {canonical} (looked for {raw / missing[0]}; missing: "
            f"{', '.join(missing)}). Put the file(s) {', '.join(files)} of the PyG release in {raw}/, set "
            f"data.root to the folder that holds {folder}/raw/, or use data.source: csbm for the embedded graph.")
    with tempfile.TemporaryDirectory(prefix="kdhub-pyg-") as tmp:
        shutil.copytree(raw, Path(tmp) / folder / "raw")  # PyG writes processed/ beside raw/
        data = cls(tmp, canonical)[0]
    y = data.y.clone()
    if cls.__name__ == "Planetoid":
        y[_planetoid_placeholders(raw / f"ind.{canonical.lower()}.test.index")] = -1
    return Data(x=data.x, edge_index=data.edge_index, y=y, num_nodes=data.num_nodes)


def _planetoid_placeholders(test_index: Path) -> torch.Tensor:
    """The nodes PyG's Planetoid reader adds where the test indices skip a number (CiteSeer's nodes missing from
    the release): zero features, label 0 from the argmax of an all-zero row. Planetoid's own masks leave them out."""
    listed = np.loadtxt(test_index, dtype=np.int64, ndmin=1)
    return torch.from_numpy(np.setdiff1d(np.arange(listed.min(), listed.max() + 1), listed))


def _class_indices(labels: np.ndarray, where: str) -> np.ndarray:
    """An npz's ``labels`` as one class index per node (-1: no label): a vector of whole numbers, a column, or a
    one-hot matrix (an all-zero row: no label). Classes must be 0..C-1, each held by some node."""
    if labels.dtype.kind not in "biuf":
        raise ConfigError(f"{where}: labels are {labels.dtype} values; give one integer class index per node "
                          f"(0..C-1, -1 for a node without a label)")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2:
        counts = labels.sum(axis=1)
        if not (np.isin(labels, (0, 1)).all() and (counts <= 1).all()):
            raise ConfigError(f"{where}: labels are a {labels.shape[0]} x {labels.shape[1]} matrix that is not "
                              f"one-hot (a row with several classes, or values other than 0 and 1); each node "
                              f"needs one class")
        labels = np.where(counts == 1, labels.argmax(axis=1), -1)
    elif labels.ndim != 1:
        raise ConfigError(f"{where}: labels have shape {labels.shape}; give one class index per node")
    if labels.dtype.kind == "f" and not (np.isfinite(labels) & (labels == np.round(labels))).all():
        raise ConfigError(f"{where}: labels hold values that are not whole numbers; give class indices 0..C-1")
    labels = labels.astype(np.int64)
    if (labels < -1).any():
        raise ConfigError(f"{where}: label {labels.min()} is below -1; classes are 0..C-1, and -1 marks a node "
                          f"without a label")
    present = np.unique(labels[labels >= 0])
    if len(present) == 0:
        raise ConfigError(f"{where}: no node has a label (every label is -1)")
    absent = np.setdiff1d(np.arange(present.max() + 1), present)
    if len(absent):
        raise ConfigError(f"{where}: no node has class {absent[0]} (labels run from {present.min()} to "
                          f"{present.max()}); classes must be 0..C-1, e.g. subtract 1 from 1-based labels")
    return labels


def load_npz(path: str, source: str) -> Data:
    """A graph in the sparse-npz layout of the GLNN/CPF papers (adj_*, attr_*, labels)."""
    import scipy.sparse as sp

    p = resolve_path(path, source)
    if not p.is_file():
        raise ConfigError(f"{source}: data.path: npz file not found: {path}. Give the path of a graph saved "
                          f"with keys {', '.join(NPZ_KEYS)}, or use data.source: csbm for the embedded graph.")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise ConfigError(f"{source}: npz file {p} lacks key(s) {', '.join(missing)} (it has: "
                                  f"{', '.join(f.files)}); the layout needs {', '.join(NPZ_KEYS)}")
            adj = sp.csr_matrix((f["adj_data"], f["adj_indices"], f["adj_indptr"]), shape=tuple(f["adj_shape"]))
            attr = sp.csr_matrix((f["attr_data"], f["attr_indices"], f["attr_indptr"]),
                                 shape=tuple(f["attr_shape"]))
            labels = f["labels"]
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{source}: data.path: cannot read {p} as a sparse-npz graph "
                          f"({type(exc).__name__}: {exc})") from None
    if not (adj.shape[0] == attr.shape[0] == len(labels)):
        raise ConfigError(f"{source}: npz file {p}: adjacency has {adj.shape[0]} nodes, attributes "
                          f"{attr.shape[0]} rows and labels {len(labels)} entries; they must agree")
    coo = adj.tocoo()
    edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    n = adj.shape[0]
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(to_undirected(edge_index, num_nodes=n), num_nodes=n)
    x = torch.from_numpy(attr.toarray().astype(np.float32))
    labels = _class_indices(labels, f"{source}: data.path: npz file {p}")
    return Data(x=x, edge_index=edge_index, y=torch.from_numpy(labels), num_nodes=n)


def load_graph(d: Dict[str, Any], source: str) -> Data:
    """The graph a validated ``data`` config section names."""
    if d["source"] in ("pyg", "planetoid"):
        data = load_pyg(d["root"], d["name"], source)
    elif d["source"] == "npz":
        data = load_npz(d["path"], source)
    else:
        c = d["csbm"]
        data = csbm(c["nodes"], c["classes"], c["features"], c["avg_degree"], c["homophily"],
                    c["feature_signal"], c["seed"])
    bad = ~torch.isfinite(data.x)
    if bad.any():
        node, feature = (int(i) for i in torch.nonzero(bad)[0])
        where = "data.path" if d["source"] == "npz" else "data.root"
        raise ConfigError(f"{source}: {where}: the graph's features hold {int(bad.sum())} NaN or infinite value(s) "
                          f"(the first at node {node}, feature {feature}); clean or impute them")
    if d["largest_component"]:
        data = largest_component(data)
    if d["normalize_features"]:
        data.x = data.x / data.x.abs().sum(1, keepdim=True).clamp_min(1e-12)
    return data


def largest_component(data: Data) -> Data:
    """The subgraph induced by the largest connected component (nodes renumbered in order)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = data.num_nodes
    ei = data.edge_index.numpy()
    adj = sp.coo_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])), shape=(n, n))
    _, comp = connected_components(adj, directed=False)
    keep = torch.from_numpy(comp == np.bincount(comp).argmax())
    edge_index, _ = subgraph(keep, data.edge_index, relabel_nodes=True, num_nodes=n)
    return Data(x=data.x[keep], edge_index=edge_index, y=data.y[keep], num_nodes=int(keep.sum()))


def glnn_split(y: torch.Tensor, train_per_class: int, val_per_class: int, seed: int,
               source: str = "config") -> Dict[str, torch.Tensor]:
    """GLNN's split: per class, ``train_per_class`` labelled and ``val_per_class`` validation nodes drawn at
    random (seeded), every other node with a label tests (a node labelled -1 is in no split)."""
    g = torch.Generator().manual_seed(seed)
    n = len(y)
    train, val = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    labelled = y >= 0
    for c in torch.unique(y[labelled]):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        if len(idx) < train_per_class + val_per_class + 1:
            raise ConfigError(f"{source}: data.split: class {int(c)} has only {len(idx)} nodes, but the split needs "
                              f"{train_per_class} train + {val_per_class} val + at least one test node per class")
        train[idx[:train_per_class]] = True
        val[idx[train_per_class:train_per_class + val_per_class]] = True
    return {"train_mask": train, "val_mask": val, "test_mask": labelled & ~(train | val)}


def prepare(data: Data, d: Dict[str, Any], seed: int, setting: str, source: str = "config") -> Data:
    """A copy of ``data`` with the seed's split and, for inductive/production, the observed graph."""
    out = data.clone()
    for k, v in glnn_split(data.y, d["split"]["train_per_class"], d["split"]["val_per_class"], seed,
                               source).items():
        out[k] = v
    n = data.num_nodes
    if setting == "transductive":
        out.obs_mask = torch.ones(n, dtype=torch.bool)
        out.obs_edge_index = data.edge_index
        out.test_ind_mask = torch.zeros(n, dtype=torch.bool)
        out.test_tran_mask = out.test_mask.clone()
        return out
    g = torch.Generator().manual_seed(seed + 7919)
    test_idx = torch.nonzero(out.test_mask).flatten()
    test_idx = test_idx[torch.randperm(len(test_idx), generator=g)]
    hidden = test_idx[:int(round(d["inductive_fraction"] * len(test_idx)))]
    out.test_ind_mask = torch.zeros(n, dtype=torch.bool)
    out.test_ind_mask[hidden] = True
    out.test_tran_mask = out.test_mask & ~out.test_ind_mask
    out.obs_mask = ~out.test_ind_mask
    out.obs_edge_index, _ = subgraph(out.obs_mask, data.edge_index, num_nodes=n)
    return out


def fingerprint(*tensors: torch.Tensor) -> str:
    """A content hash of tensors (used to key cached soft labels)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()[:20]
