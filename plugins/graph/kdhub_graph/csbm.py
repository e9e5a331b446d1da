"""The embedded default data set: a contextual stochastic block model (CSBM), generated deterministically.

Nodes belong to ``classes`` balanced communities. Features are a class centre plus Gaussian noise, so an
MLP can learn something from them alone; edges join nodes of the same class with probability
``homophily``, so aggregating neighbours (what a GNN does) denoises the features. Same arguments, same
graph, on any machine.

Two outputs of one draw: :func:`csbm` gives PyG ``Data`` with an ``edge_index`` (made undirected and coalesced by
PyG's ``to_undirected`` and ``coalesce``), :func:`csbm_csr` the same graph directly as the sampler's
:class:`~kdhub_graph.sampler.CSR`, for graphs of millions of nodes. The PyG path holds several copies of the
whole edge list at once (the concatenated directions, the sort keys, the permutation, the sorted copies):
about 2.3 GB at 500k nodes and average degree 25, growing linearly to about 11 GB at 2.5M, before the CSR is
even built. :func:`csbm_csr` sorts one array of int64 keys in place instead (about 1 GB for the 62M directed
edges of 2.5M nodes, beside the 1 GB of features).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

from .sampler import CSR


def _draw(nodes: int, classes: int, features: int, avg_degree: float, homophily: float, feature_signal: float,
          seed: int):
    """Labels, features and the drawn (directed, possibly repeated or self-looped) edges ``src -> dst``."""
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must be in [0, 1], got {homophily}")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(nodes) % classes
    y = y[torch.randperm(nodes, generator=g)]
    centres = torch.randn(classes, features, generator=g)
    centres = centres / centres.norm(dim=1, keepdim=True) * feature_signal * features ** 0.5 / 4
    x = centres[y] + torch.randn(nodes, features, generator=g)

    by_class = [torch.nonzero(y == c).flatten() for c in range(classes)]
    sizes = torch.tensor([len(b) for b in by_class])
    m = int(nodes * avg_degree / 2)
    src = torch.randint(0, nodes, (m,), generator=g)
    same = torch.rand(m, generator=g) < homophily
    shift = torch.randint(1, classes, (m,), generator=g)  # a different class, uniformly
    dst_class = torch.where(same, y[src], (y[src] + shift) % classes)
    del same, shift
    pos = (torch.rand(m, generator=g) * sizes[dst_class]).long()
    members = torch.cat(by_class)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)[:-1]])
    pos += offsets[dst_class]
    del dst_class
    dst = members[pos]
    return x, y, src, dst


def csbm(nodes: int = 3000, classes: int = 5, features: int = 64, avg_degree: float = 8.0,
         homophily: float = 0.8, feature_signal: float = 1.0, seed: int = 0) -> Data:
    """A CSBM graph as PyG ``Data(x, edge_index, y)`` (undirected, no self-loops)."""
    x, y, src, dst = _draw(nodes, classes, features, avg_degree, homophily, feature_signal, seed)
    edge_index, _ = remove_self_loops(torch.stack([src, dst]))
    edge_index = coalesce(to_undirected(edge_index, num_nodes=nodes), num_nodes=nodes)
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=nodes)


class CSBMGraph(NamedTuple):
    x: torch.Tensor  # (nodes, features) float32
    y: torch.Tensor  # (nodes,) int64
    csr: CSR  # undirected: every edge is in both nodes' lists


def csbm_csr(nodes: int = 3000, classes: int = 5, features: int = 64, avg_degree: float = 8.0,
             homophily: float = 0.8, feature_signal: float = 1.0, seed: int = 0) -> CSBMGraph:
    """The graph :func:`csbm` returns for the same arguments, with its edges as a :class:`CSR` built without an
    ``edge_index``: ``csr`` equals ``CSR.from_edge_index(csbm(...).edge_index, nodes)``.

    Each undirected edge {u, v} (u != v) becomes the keys ``v * nodes + u`` and ``u * nodes + v`` (target-major),
    one int64 array sorted in place; repeated keys are dropped, ``ptr`` is where each target's keys start and
    ``col`` the keys modulo ``nodes``."""
    x, y, src, dst = _draw(nodes, classes, features, avg_degree, homophily, feature_signal, seed)
    s, d = src.numpy(), dst.numpy()
    m = len(s)
    keys = np.empty(2 * m, dtype=np.int64)
    np.multiply(d, nodes, out=keys[:m])
    keys[:m] += s
    np.multiply(s, nodes, out=keys[m:])
    keys[m:] += d
    loop = np.concatenate([s == d, s == d])
    del src, dst, s, d
    keys = keys[~loop]
    del loop
    keys.sort()
    if len(keys):
        fresh = np.empty(len(keys), dtype=bool)
        fresh[0] = True
        np.not_equal(keys[1:], keys[:-1], out=fresh[1:])
        keys = keys[fresh]
        del fresh
    ptr = np.searchsorted(keys, np.arange(nodes + 1, dtype=np.int64) * nodes)
    np.remainder(keys, nodes, out=keys)
    return CSBMGraph(x, y, CSR(torch.from_numpy(ptr.astype(np.int64)), torch.from_numpy(keys)))
