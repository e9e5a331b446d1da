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
            x = F.dropout(F.relu(norm(lin(x)), inplace=True), self.dropout, self.training)
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


def init_like_dgl_(gnn: GNN) -> GNN:
    """Re-initialise ``gnn``'s layers in place as DGL 0.6.1 initialises its own, the library GLNN's released code
    pins (graphless-neural-networks, ``requirements.txt``; the paper does not state an initialisation):

    - SAGEConv: the neighbour (and, with the mean aggregator, the root) weight Xavier-uniform with the ReLU gain
      sqrt(2), the bias zero;
    - GraphConv: the weight Xavier-uniform with gain 1, the bias zero (PyG's GCNConv default already);
    - GATConv: the projection and both attention vectors Xavier-normal with the ReLU gain, the bias zero.

    Why it matters: PyG's SAGEConv starts its linear maps as ``torch.nn.Linear`` does (uniform within
    +-1/sqrt(fan_in), bias included), about 3x narrower per layer than DGL on Cora (layer 1: 0.026 against 0.088;
    layer 2: 0.088 against 0.30), so a 2-layer SAGE's first logits are about 10x smaller. Where a teacher's best
    validation epoch comes within the first few epochs, its logits are then still almost flat, and soft labels
    near the uniform distribution give the MLP's KL term too little signal against its weight decay (the
    measurements are in the plugin's README). Returns ``gnn``."""
    relu = nn.init.calculate_gain("relu")
    for conv in gnn.convs:
        if isinstance(conv, SAGEConv):
            nn.init.xavier_uniform_(conv.lin_l.weight, gain=relu)
            if getattr(conv, "lin_r", None) is not None:  # the root weight (mean aggregator; DGL's fc_self)
                nn.init.xavier_uniform_(conv.lin_r.weight, gain=relu)
            if conv.lin_l.bias is not None:
                nn.init.zeros_(conv.lin_l.bias)
        elif isinstance(conv, GCNConv):
            nn.init.xavier_uniform_(conv.lin.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        elif isinstance(conv, GATConv):
            for name in ("lin", "lin_src", "lin_dst", "res"):
                lin = getattr(conv, name, None)
                if lin is not None and getattr(lin, "weight", None) is not None:
                    nn.init.xavier_normal_(lin.weight, gain=relu)
            nn.init.xavier_normal_(conv.att_src, gain=relu)
            nn.init.xavier_normal_(conv.att_dst, gain=relu)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        else:
            raise TypeError(f"init_like_dgl_: no DGL initialisation known for {type(conv).__name__}")
    return gnn


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
