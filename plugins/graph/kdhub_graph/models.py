"""Teachers built from PyG layers (GCN, GraphSAGE, GAT) and the graph-free MLP student."""
from __future__ import annotations

from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv
from torch_geometric.utils import add_self_loops

from .sampler import SampledSubgraph


class MLP(nn.Module):
    """The student: needs node features only, so inference needs no graph."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, layers: int = 2,
                 dropout: float = 0.0, norm: str = "none"):
        super().__init__()
        dims = [in_channels] + [hidden] * (layers - 1) + [out_channels]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        make_norm = {"none": lambda c: nn.Identity(), "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm]
        self.norms = nn.ModuleList(make_norm(hidden) for _ in range(layers - 1))
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lin, norm in zip(self.lins[:-1], self.norms):
            x = F.dropout(F.relu(norm(lin(x))), self.dropout, self.training)
        return self.lins[-1](x)


ACTIVATIONS = {"relu": F.relu, "elu": F.elu}


class GNN(nn.Module):
    """A stack of PyG message-passing layers with an activation (ReLU by default, as PyG's own models; ELU
    as PyG's GAT example) and dropout between them.

    ``self_loops`` adds each node to its own neighbourhood before every layer (GraphSAGE's "gcn"
    aggregator: W * mean(neighbours and self)). The activation is not part of a state dict, so a teacher
    trained elsewhere must name its own in the config (``teacher.act``).
    """

    def __init__(self, convs: nn.ModuleList, dropout: float, self_loops: bool = False, act: str = "relu"):
        super().__init__()
        self.convs, self.dropout, self.self_loops = convs, dropout, self_loops
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if self.self_loops:
            edge_index, _ = add_self_loops(edge_index, num_nodes=x.size(0))
        for i, conv in enumerate(self.convs):
            x = F.dropout(x, self.dropout, self.training)
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = self.act(x)
        return x

    def forward_sampled(self, x: torch.Tensor, sub: SampledSubgraph) -> torch.Tensor:
        """Logits of the seed nodes of a sampled subgraph (``x`` holds its nodes' features)."""
        return self(x, sub.edge_index)[:sub.batch_size]


def build_teacher(arch: Dict[str, Any], in_channels: int, out_channels: int) -> GNN:
    """``arch``: model (gcn | sage | gat), hidden, layers, dropout, act (relu | elu), aggr (sage: gcn | mean), heads,
    out_heads and attn_dropout (gat; ``hidden`` is split across the heads of the hidden layers, the output
    layer averages ``out_heads`` heads).

    Layers are held in ``convs`` (``convs.0``, ``convs.1``, ...), the naming of PyG's own ``GCN``,
    ``GraphSAGE`` and ``GAT`` models, so their state dicts load into these teachers as they are."""
    h, n = arch["hidden"], arch["layers"]
    dims = [in_channels] + [h] * (n - 1) + [out_channels]
    if arch["model"] == "gcn":
        convs = [GCNConv(a, b, cached=False) for a, b in zip(dims[:-1], dims[1:])]
    elif arch["model"] == "sage":
        gcn_aggr = arch.get("aggr", "gcn") == "gcn"
        convs = [SAGEConv(a, b, aggr="mean", root_weight=not gcn_aggr) for a, b in zip(dims[:-1], dims[1:])]
        return GNN(nn.ModuleList(convs), arch["dropout"], self_loops=gcn_aggr, act=arch.get("act", "relu"))
    else:
        heads = arch["heads"]
        per_head = max(1, h // heads)
        dims = [in_channels] + [per_head] * (n - 1) + [out_channels]
        convs = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == n - 1
            convs.append(GATConv(a if i == 0 else a * heads, b, heads=arch.get("out_heads", 1) if last else heads,
                                 concat=not last, dropout=arch["attn_dropout"]))
    return GNN(nn.ModuleList(convs), arch["dropout"], act=arch.get("act", "relu"))
