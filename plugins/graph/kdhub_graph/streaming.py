"""Mini-batch training loops whose memory does not grow with the graph beyond its inputs: a GNN teacher on
neighbour-sampled subgraphs, and the GLNN student streamed over node batches that read their features and
cached soft-label rows per batch.

These are the loops of the scale path (``benchmarks/graph_scale.py``); the graph task's own training
(:mod:`kdhub_graph.task`) runs on the core Trainer with validation, early stopping and checkpoints, and holds
the whole graph's soft labels in memory. Here there is no per-epoch evaluation, so the cost of an epoch is
that of its batches alone.

Batch order (:func:`block_batches`): node ids are cut into contiguous blocks of ``block`` batches, the blocks
are visited in a random order and the ids inside a block are shuffled before being cut into batches, each
batch sorted. A memory-mapped feature or soft-label file is then read block by block, near-sequentially, while
every batch still mixes ``block x batch_size`` random nodes of its block. On a graph whose ids are ordered by
something correlated with the labels, a larger ``block`` mixes more.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from torch import nn

from .glnn import GLNN
from .layerwise import layerwise_inference
from .models import GNN
from .sampler import CSR, rows, sample
from .soft_label_store import SoftLabelReader, SoftLabelWriter, glnn_fields

Features = Union[torch.Tensor, np.ndarray]


def block_batches(nodes: torch.Tensor, batch_size: int, block: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of sorted batches of ``nodes`` in the block-shuffled order the module describes."""
    span = batch_size * max(1, block)
    starts = torch.randperm((len(nodes) + span - 1) // span, generator=generator) * span
    for s in starts.tolist():
        chunk = nodes[s:s + span]
        chunk = chunk[torch.randperm(len(chunk), generator=generator)]
        for b in chunk.split(batch_size):
            yield b.sort().values


def feature_rows(x: Features, nodes: torch.Tensor) -> torch.Tensor:
    """Rows of a feature tensor or of a (memory-mapped) numpy array, as a float32 tensor."""
    if isinstance(x, torch.Tensor):
        return rows(x, nodes)
    return torch.from_numpy(np.ascontiguousarray(x[nodes.numpy()], dtype=np.float32))


def train_sampled_teacher(gnn: GNN, x: Features, y: torch.Tensor, csr: CSR, train_nodes: torch.Tensor,
                          fanouts: Sequence[int], batch_size: int, epochs: int, lr: float = 0.003,
                          weight_decay: float = 0.0, seed: int = 0,
                          on_epoch: Optional[Callable[[int, float], None]] = None) -> List[float]:
    """Supervised GNN training on neighbour-sampled subgraphs of shuffled batches of ``train_nodes`` (Adam, cross
    entropy on the seeds). The sampler reuses the graph's id map for every batch
    (:meth:`~kdhub_graph.sampler.CSR.id_map`), so a batch costs what its subgraph costs, whatever the graph's size.
    Returns each epoch's mean loss."""
    g = torch.Generator().manual_seed(seed)

    def loss_of(seeds: torch.Tensor) -> torch.Tensor:
        sub = sample(csr, seeds, fanouts, g)
        return F.cross_entropy(gnn.forward_sampled(feature_rows(x, sub.n_id), sub), y[seeds])

    return _fit(gnn, gnn.parameters(), lambda: train_nodes[torch.randperm(len(train_nodes), generator=g)].split(
        batch_size), loss_of, epochs, lr, weight_decay, on_epoch)


def _fit(model: nn.Module, params, batches: Callable[[], Iterable[torch.Tensor]],
         loss_of: Callable[[torch.Tensor], torch.Tensor], epochs: int, lr: float, weight_decay: float,
         on_epoch: Optional[Callable[[int, float], None]]) -> List[float]:
    """The loop both trainers share: ``model`` in training mode, Adam on ``params``, one step per batch of node ids
    from ``batches()`` (called once per epoch) on ``loss_of(batch)``; ``model`` back in eval mode at the end.
    Returns each epoch's mean loss over nodes (each batch weighted by its size)."""
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch in batches():
            loss = loss_of(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        losses.append(total / max(1, count))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    model.eval()
    return losses


def cache_glnn_soft_labels(teacher: GNN, algorithm: GLNN, x: torch.Tensor, csr: CSR, path, batch_size: int = 8192,
                           meta: Optional[Dict] = None) -> SoftLabelReader:
    """The teacher's soft labels for every node, computed by :func:`~kdhub_graph.layerwise.layerwise_inference`
    (every neighbour) and written batch by batch to ``path`` as GLNN's prepared rows
    (:meth:`~kdhub_graph.glnn.GLNN.prepare_teacher`: probabilities at its temperature and their entropy), with
    the temperature in the sidecar's metadata. Returns a reader of the committed file."""
    classes = teacher.convs[-1].out_channels
    info = {"temperature": algorithm.kd.temperature, **(meta or {})}
    with SoftLabelWriter(path, len(csr.ptr) - 1, glnn_fields(classes), info) as out:
        layerwise_inference(teacher, x, csr, batch_size,
                            sink=lambda start, _stop, logits: out.write(start, algorithm.prepare_teacher(logits)))
    return SoftLabelReader(path)


def train_streamed_student(algorithm: nn.Module, x: Features, y: torch.Tensor, labelled: torch.Tensor,
                           soft: Optional[SoftLabelReader], epochs: int, batch_size: int, lr: float = 0.01,
                           weight_decay: float = 0.0, nodes: Optional[torch.Tensor] = None, block: int = 32,
                           seed: int = 0, on_epoch: Optional[Callable[[int, float], None]] = None) -> List[float]:
    """Train ``algorithm.student`` on the losses ``algorithm(x, y, labelled, **teacher rows)`` returns (an
    :class:`~kdhub.Algorithm` such as GLNN, or the task's ``PlainStudent`` with ``soft`` None) in batches of
    ``nodes`` (default: every node), each batch reading its features and its rows of ``soft``.

    ``labelled``: a bool per node, whether its label may be used (GLNN's CE term); ``y`` of other nodes is never
    read by the loss. Adam on the student's parameters, one step per batch. Returns each epoch's mean loss."""
    nodes = torch.arange(len(y)) if nodes is None else nodes
    g = torch.Generator().manual_seed(seed)

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        teacher: Dict[str, torch.Tensor] = soft.rows(batch) if soft is not None else {}
        return sum(algorithm(feature_rows(x, batch), y[batch], labelled[batch], **teacher).values())

    return _fit(algorithm, algorithm.student.parameters(), lambda: block_batches(nodes, batch_size, block, g),
                loss_of, epochs, lr, weight_decay, on_epoch)


@torch.no_grad()
def predict(model: torch.nn.Module, x: Features, nodes: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """Class predictions of a feature-only model (the student MLP) for ``nodes``, in batches."""
    model.eval()
    return torch.cat([model(feature_rows(x, b)).argmax(-1) for b in nodes.split(batch_size)]) if len(nodes) else \
        torch.empty(0, dtype=torch.long)
