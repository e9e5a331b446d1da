"""Teacher inference over every node of a large graph in bounded memory, one layer at a time.

``teacher(x, edge_index)`` on the whole graph holds every layer's activations of every node and the gathered
per-edge messages of a layer (E x channels: 62M x 100 floats, 25 GB, for 2.5M nodes of average degree 25).
Sampled mini-batches of target nodes instead recompute each target's whole k-hop neighbourhood, which at
fan-outs (10, 5) is ~60 nodes of layer-1 work per target.

Layer-wise inference computes layer 1 for all nodes, in batches of consecutive target ids, from each target's
1-hop neighbourhood in the previous layer's output (the features for layer 1); then layer 2 the same way from
layer 1's output, and so on. Each node's layer-l output is computed once, and at any time only the input and
output of one layer exist for the whole graph (N x channels each), plus one batch's messages. With every
neighbour (``fanouts`` None or -1) the result is the teacher's full-graph forward ``teacher(x, edge_index)``.

Works for :class:`~kdhub_graph.models.GNN` teachers of PyG ``SAGEConv`` layers (both aggregators: "gcn" adds
each node to its own neighbourhood, as ``GNN.forward`` does; "mean" passes the targets' own rows as the root
input). A layer is called on the bipartite pair (previous layer's output for all nodes, the batch's rows) with
``size=(N, batch)``, so PyG gathers only the batch's neighbour rows.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch_geometric.nn import SAGEConv

from .models import GNN
from .sampler import CSR, _sample_neighbours

#: called with (first target id, last target id + 1, the teacher's output rows of those targets)
Sink = Callable[[int, int, torch.Tensor], None]


def _batch_edges(csr: CSR, start: int, stop: int, fanout: int, self_loops: bool,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
    """Edges (global neighbour id -> position of the target in the batch) into targets ``start..stop-1``."""
    if fanout < 0:  # every neighbour: the targets' lists are one contiguous slice of ``col``
        lo, hi = int(csr.ptr[start]), int(csr.ptr[stop])
        nbr = csr.col[lo:hi]
        owner = torch.repeat_interleave(torch.arange(stop - start), csr.ptr[start + 1:stop + 1] - csr.ptr[start:stop],
                                        output_size=hi - lo)
    else:
        owner, nbr = _sample_neighbours(csr, torch.arange(start, stop), fanout, generator)
    if self_loops:
        nbr = torch.cat([nbr, torch.arange(start, stop)])
        owner = torch.cat([owner, torch.arange(stop - start)])
    return torch.stack([nbr, owner])


@torch.no_grad()
def layerwise_inference(teacher: GNN, x: torch.Tensor, csr: CSR, batch_size: int = 8192,
                        fanouts: Optional[Sequence[int]] = None, generator: Optional[torch.Generator] = None,
                        sink: Optional[Sink] = None) -> Optional[torch.Tensor]:
    """The teacher's output for every node of the graph ``csr`` (incoming-neighbour lists) with features ``x``,
    computed layer by layer in batches of ``batch_size`` consecutive targets, in eval mode.

    ``fanouts``: neighbours per target for each layer, -1 for all of them (default: all, which equals
    ``teacher(x, edge_index)``); sampled neighbours are drawn independently per layer and target.
    ``sink``: receives the last layer's rows batch by batch (e.g. to write soft labels to disk), and then the
    (N x classes) output is never held; without it the output is returned."""
    convs = list(teacher.convs)
    for conv in convs:
        if not isinstance(conv, SAGEConv):
            raise TypeError(f"layerwise_inference: SAGEConv layers only, got {type(conv).__name__}")
    fanouts = [-1] * len(convs) if fanouts is None else list(fanouts)
    if len(fanouts) != len(convs):
        raise ValueError(f"layerwise_inference: {len(fanouts)} fan-outs for {len(convs)} layers")
    num_nodes = len(csr.ptr) - 1
    if x.size(0) != num_nodes:
        raise ValueError(f"layerwise_inference: {x.size(0)} feature rows for a graph of {num_nodes} nodes")
    was_training = teacher.training
    teacher.eval()
    try:
        h = x
        for i, (conv, k) in enumerate(zip(convs, fanouts)):
            last = i == len(convs) - 1
            out = None if last and sink is not None else x.new_empty(num_nodes, conv.out_channels)
            for start in range(0, num_nodes, batch_size):
                stop = min(start + batch_size, num_nodes)
                edges = _batch_edges(csr, start, stop, k, teacher.self_loops, generator)
                rows = conv((h, h[start:stop]), edges, size=(num_nodes, stop - start))
                if not last:
                    rows = teacher.act(rows)
                if out is None:
                    sink(start, stop, rows)
                else:
                    out[start:stop] = rows
            h = out  # the previous layer's activations are dropped here
        return h
    finally:
        teacher.train(was_training)
