"""The scale path: lean CSBM generation, layer-wise inference, the on-disk soft labels and the streamed loops,
each checked against an independent expectation on tiny graphs."""
import numpy as np
import pytest
import torch

from kdhub_graph.csbm import csbm, csbm_csr
from kdhub_graph.glnn import GLNN
from kdhub_graph.layerwise import layerwise_inference
from kdhub_graph.models import MLP, build_teacher, init_like_dgl_
from kdhub_graph.sampler import CSR, sample
from kdhub_graph.soft_label_store import SoftLabelReader, SoftLabelWriter, glnn_fields, sidecar
from kdhub_graph.streaming import (block_batches, cache_glnn_soft_labels, predict, train_sampled_teacher,
                                   train_streamed_student)


def _teacher(aggr="gcn", layers=2, features=12, classes=4, seed=0):
    torch.manual_seed(seed)
    arch = {"model": "sage", "hidden": 16, "layers": layers, "dropout": 0.5, "aggr": aggr}
    return init_like_dgl_(build_teacher(arch, features, classes)).eval()


@pytest.mark.parametrize("args", [(500, 4, 8, 6.0, 0.9, 1.0, 3), (1200, 10, 5, 25.0, 0.8, 1.0, 0), (40, 3, 4, 2.0, 0.5, 1.0, 1)])
def test_csbm_csr_is_the_pyg_graph(args):
    """The lean generator gives the graph PyG's to_undirected + coalesce path gives, as the same CSR."""
    data, lean = csbm(*args), csbm_csr(*args)
    want = CSR.from_edge_index(data.edge_index, args[0])
    assert torch.equal(lean.x, data.x) and torch.equal(lean.y, data.y)
    assert torch.equal(lean.csr.ptr, want.ptr) and torch.equal(lean.csr.col, want.col)


@pytest.mark.parametrize("aggr,layers", [("gcn", 2), ("mean", 2), ("gcn", 3)])
def test_layerwise_inference_equals_the_full_graph_forward(aggr, layers):
    data = csbm(700, 4, 12, 7.0, 0.8, seed=2)
    csr = CSR.from_edge_index(data.edge_index, 700)
    teacher = _teacher(aggr, layers)
    want = teacher(data.x, data.edge_index)  # PyG's own path over the whole graph
    got = layerwise_inference(teacher, data.x, csr, batch_size=97)  # 97 does not divide 700
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    rows = torch.empty_like(want)  # the sink receives the same rows, batch by batch
    assert layerwise_inference(teacher, data.x, csr, 128, sink=lambda a, b, out: rows[a:b].copy_(out)) is None
    torch.testing.assert_close(rows, want, atol=1e-5, rtol=1e-5)


def test_layerwise_inference_fanouts():
    data = csbm(300, 3, 12, 6.0, 0.8, seed=1)
    csr = CSR.from_edge_index(data.edge_index, 300)
    teacher = _teacher()
    max_deg = int((csr.ptr[1:] - csr.ptr[:-1]).max())
    g = torch.Generator().manual_seed(0)
    # a fan-out at least the largest degree keeps every neighbour
    torch.testing.assert_close(layerwise_inference(teacher, data.x, csr, 64, [max_deg, max_deg], g),
                               teacher(data.x, data.edge_index), atol=1e-5, rtol=1e-5)
    # fan-out 0 keeps no neighbour: with the "gcn" aggregator each node sees itself alone
    torch.testing.assert_close(layerwise_inference(teacher, data.x, csr, 64, [0, 0], g),
                               teacher(data.x, torch.empty(2, 0, dtype=torch.long)), atol=1e-5, rtol=1e-5)


def test_layerwise_inference_refuses_other_layers():
    gcn = build_teacher({"model": "gcn", "hidden": 8, "layers": 2, "dropout": 0.0}, 4, 3)
    csr = CSR.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2)
    with pytest.raises(TypeError, match="SAGEConv"):
        layerwise_inference(gcn, torch.randn(2, 4), csr)


def test_sampler_reused_id_map_gives_the_same_subgraphs_and_is_left_clean():
    """Sampling on one graph, batch after batch, reuses its id map: every subgraph is the one a fresh graph object
    (a fresh map) gives, and the map is all -1 again after each call."""
    data = csbm(400, 4, 4, avg_degree=8.0, seed=0)
    csr = CSR.from_edge_index(data.edge_index, 400)
    for i, seeds in enumerate(torch.randperm(400, generator=torch.Generator().manual_seed(0)).split(64)):
        a = sample(CSR.from_edge_index(data.edge_index, 400), seeds, [5, 3], torch.Generator().manual_seed(i))
        b = sample(csr, seeds, [5, 3], torch.Generator().manual_seed(i))
        assert torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)
        assert (csr.id_map() == -1).all()


def test_soft_labels_on_disk_are_the_in_memory_rows(tmp_path):
    glnn = GLNN(MLP(4, 8, 5), temperature=2.0)
    logits = torch.randn(1000, 5) * 3
    want = glnn.prepare_teacher(logits)
    path = tmp_path / "soft.npy"
    with SoftLabelWriter(path, 1000, glnn_fields(5), {"temperature": 2.0}) as out:
        for start in range(0, 1000, 333):  # uneven batches
            out.write(start, glnn.prepare_teacher(logits[start:start + 333]))
    reader = SoftLabelReader(path)
    ids = torch.tensor([999, 0, 500, 17, 17])
    got = reader.rows(ids)
    torch.testing.assert_close(got["teacher_probs"], want["teacher_probs"][ids])
    torch.testing.assert_close(got["teacher_entropy"], want["teacher_entropy"][ids])
    assert reader.meta["temperature"] == 2.0 and len(reader) == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["soft.npy", "soft.npy.json"]  # no temporary left

    # a writer that fails half way leaves the committed pair as it was and no temporary file
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with SoftLabelWriter(path, 1000, glnn_fields(5)) as out:
            out.write(0, glnn.prepare_teacher(torch.zeros(10, 5)))
            raise RuntimeError("boom")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["soft.npy", "soft.npy.json"]
    with pytest.raises(RuntimeError, match="rows written"):  # an incomplete array is never published
        SoftLabelWriter(path, 1000, glnn_fields(5)).commit()

    np.save(path, np.zeros((3, 2), dtype=np.float32))  # an array its sidecar does not describe
    with pytest.raises(ValueError, match="sidecar"):
        SoftLabelReader(path)
    assert sidecar(path).is_file()


def test_cached_glnn_soft_labels_are_the_teachers_full_graph_soft_labels(tmp_path):
    data = csbm(600, 4, 12, 6.0, 0.8, seed=4)
    teacher, glnn = _teacher(), GLNN(MLP(12, 8, 4))
    reader = cache_glnn_soft_labels(teacher, glnn, data.x, CSR.from_edge_index(data.edge_index, 600),
                                    tmp_path / "t.npy", batch_size=100)
    with torch.no_grad():
        want = glnn.prepare_teacher(teacher(data.x, data.edge_index))
    got = reader.rows(slice(None))
    torch.testing.assert_close(got["teacher_probs"], want["teacher_probs"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["teacher_entropy"], want["teacher_entropy"], atol=1e-5, rtol=1e-5)


def test_block_batches_visit_every_node_once_per_epoch():
    nodes = torch.arange(10, 1010)
    g = torch.Generator().manual_seed(0)
    epochs = [torch.cat(list(block_batches(nodes, 64, 4, g))) for _ in range(2)]
    for seen in epochs:
        assert torch.equal(seen.sort().values, nodes)
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch


def test_streamed_glnn_student_learns_from_cached_soft_labels(tmp_path):
    """Sampled teacher -> layer-wise soft labels on disk -> streamed student, on a CSBM graph of 4 classes.

    Bound: the features are a class centre plus unit Gaussian noise, so with balanced classes the best a
    feature-only classifier can do on unseen nodes is the nearest class centre (estimated here from all nodes'
    features and labels, 500 per class). The student sees labels of 10% of the nodes only through the teacher
    (lambda 0), so it must come within 10 points of that classifier; chance is 25%. (It is distilled over every
    node, test nodes included, so fitting their teacher labels may take it slightly above.)"""
    n, classes, feats = 2000, 4, 16
    g = csbm_csr(n, classes, feats, 8.0, 0.85, 0.8, seed=0)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    train, test = perm[:200], perm[200:700]
    labelled = torch.zeros(n, dtype=torch.bool)
    labelled[train] = True
    teacher = _teacher(features=feats, classes=classes)
    t_losses = train_sampled_teacher(teacher, g.x, g.y, g.csr, train, [10, 5], 64, 15, lr=0.01)
    assert t_losses[-1] < 0.5 * t_losses[0]
    torch.manual_seed(0)
    glnn = GLNN(MLP(feats, 32, classes), lam=0.0)
    soft = cache_glnn_soft_labels(teacher, glnn, g.x, g.csr, tmp_path / "soft.npy", batch_size=300)
    teacher_acc = (soft.rows(test)["teacher_probs"].argmax(1) == g.y[test]).float().mean().item()
    losses = train_streamed_student(glnn, g.x, g.y, labelled, soft, epochs=30, batch_size=256, lr=0.01, block=2)
    assert losses[-1] < 0.8 * losses[0]
    student_acc = (predict(glnn.student, g.x, test) == g.y[test]).float().mean().item()
    centres = torch.stack([g.x[g.y == c].mean(0) for c in range(classes)])
    oracle_acc = (torch.cdist(g.x[test], centres).argmin(1) == g.y[test]).float().mean().item()
    assert teacher_acc > oracle_acc  # the graph helps the teacher beyond the features
    assert student_acc >= oracle_acc - 0.10 and student_acc > 0.25 + 0.15
