"""The embedded default data set: a contextual stochastic block model (CSBM), generated deterministically.

Nodes belong to ``classes`` balanced communities. Features are a class centre plus Gaussian noise, so an
MLP can learn something from them alone; edges join nodes of the same class with probability
``homophily``, so aggregating neighbours (what a GNN does) denoises the features. Same arguments, same
graph, on any machine.
"""
from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected


def csbm(nodes: int = 3000, classes: int = 5, features: int = 64, avg_degree: float = 8.0,
         homophily: float = 0.8, feature_signal: float = 1.0, seed: int = 0) -> Data:
    """A CSBM graph as PyG ``Data(x, edge_index, y)`` (undirected, no self-loops)."""
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
    pos = (torch.rand(m, generator=g) * sizes[dst_class]).long()
    members = torch.cat(by_class)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)[:-1]])
    dst = members[offsets[dst_class] + pos]
    edge_index, _ = remove_self_loops(torch.stack([src, dst]))
    edge_index = coalesce(to_undirected(edge_index, num_nodes=nodes), num_nodes=nodes)
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=nodes)
