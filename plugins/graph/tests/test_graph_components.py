"""Data, splits, sampler, GLNN and FF-G2M terms and the soft-label cache, on hand-made or tiny graphs."""
import math
import re

import pytest
import torch
import torch.nn.functional as F

from kdhub_graph.csbm import csbm
from kdhub_graph.data import glnn_split, prepare
from kdhub_graph.ffg2m import FFG2M, high_frequency_loss, low_frequency_loss
from kdhub_graph.glnn import GLNN, labelled_ce, log_softmax, soft_ce
from kdhub_graph.models import MLP, build_teacher
from kdhub_graph.sampler import CSR, RowBuffer, rows, sample, unique
from kdhub_graph.soft_labels import soft_labels


def test_csbm_is_deterministic_undirected_and_homophilous():
    a, b = csbm(500, 4, 8, 6.0, 0.9, 1.0, seed=3), csbm(500, 4, 8, 6.0, 0.9, 1.0, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index) and torch.equal(a.y, b.y)
    src, dst = a.edge_index
    assert not (src == dst).any()
    pairs = set(map(tuple, a.edge_index.t().tolist()))
    assert all((d, s) in pairs for s, d in pairs)
    homophily = (a.y[src] == a.y[dst]).float().mean().item()
    assert 0.85 < homophily < 0.95
    low = csbm(500, 4, 8, 6.0, 0.3, 1.0, seed=3)
    assert (low.y[low.edge_index[0]] == low.y[low.edge_index[1]]).float().mean() < 0.4


def test_glnn_split_counts_and_inductive_hiding():
    data = csbm(400, 4, 8, seed=0)
    masks = glnn_split(data.y, 20, 30, seed=1)
    for c in range(4):
        assert int((masks["train_mask"] & (data.y == c)).sum()) == 20
        assert int((masks["val_mask"] & (data.y == c)).sum()) == 30
    assert not (masks["train_mask"] & masks["val_mask"]).any()
    assert int((masks["train_mask"] | masks["val_mask"] | masks["test_mask"]).sum()) == 400
    cfg = {"split": {"train_per_class": 20, "val_per_class": 30}, "inductive_fraction": 0.2}
    split = prepare(data, cfg, 1, "inductive")
    hidden = split.test_ind_mask
    assert int(hidden.sum()) == round(0.2 * int(masks["test_mask"].sum()))
    assert not hidden[split.obs_edge_index.flatten()].any()  # no observed edge touches a hidden node
    assert torch.equal(split.test_tran_mask | hidden, split.test_mask)


def test_sampler_fanout_and_validity():
    data = csbm(300, 3, 4, avg_degree=10.0, seed=0)
    csr = CSR.from_edge_index(data.edge_index, 300)
    seeds = torch.tensor([5, 17, 42])
    sub = sample(csr, seeds, [3, 2], torch.Generator().manual_seed(0))
    assert torch.equal(sub.n_id[:3], seeds) and sub.batch_size == 3
    edges = set(map(tuple, data.edge_index.t().tolist()))
    src, dst = sub.n_id[sub.edge_index[0]], sub.n_id[sub.edge_index[1]]
    assert all((int(s), int(d)) in edges for s, d in zip(src, dst))
    in_deg = torch.bincount(sub.edge_index[1], minlength=len(sub.n_id))
    assert (in_deg[:3] <= 3).all() and (in_deg[3:] <= 2).all()
    full = sample(csr, seeds, [-1])
    for i, v in enumerate(seeds.tolist()):
        want = set(csr.col[csr.ptr[v]:csr.ptr[v + 1]].tolist())
        got = set(full.n_id[full.edge_index[0][full.edge_index[1] == i]].tolist())
        assert got == want


def test_unique_ids_as_torch_unique():
    torch.manual_seed(0)
    for ids in (torch.randint(0, 50, (200,)), torch.randint(0, 2**31 - 1, (500,)), torch.tensor([7]),
                torch.empty(0, dtype=torch.long), torch.tensor([2**40, 3, 2**40, 5])):
        got = unique(ids)
        assert got.dtype == torch.long and torch.equal(got, torch.unique(ids))


def test_row_buffer_trains_as_fresh_rows_and_refuses_a_live_graph():
    """Rows written in place into a kept block give the same training, bit for bit, as freshly gathered rows;
    overwriting rows that a graph not yet backpropagated saved is autograd's in-place error, not stale values."""
    torch.manual_seed(0)
    x = torch.randn(500, 16)
    batches = [torch.randperm(500, generator=torch.Generator().manual_seed(i))[: 100 + 37 * i] for i in range(6)]

    def train(gather):
        torch.manual_seed(1)
        mlp = MLP(16, 32, 4)
        opt = torch.optim.Adam(mlp.parameters(), lr=0.01)
        for ids in batches:
            loss = mlp(gather(x, ids)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.detach() for p in mlp.parameters()]

    buffer = RowBuffer()
    assert all(torch.equal(a, b) for a, b in zip(train(buffer), train(rows)))
    mlp = MLP(16, 32, 4)
    first = mlp(buffer(x, batches[0])).sum()
    buffer(x, batches[1])  # the next batch, built before the first one's backward
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.backward()


def test_glnn_loss_by_hand_and_gradients():
    torch.manual_seed(0)
    mlp = MLP(4, 8, 3)
    model = GLNN(mlp, lam=0.3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    labelled = torch.tensor([True, True, False, False, False])
    t = torch.randn(5, 3)
    out = model(x=x, y=y, labelled=labelled, teacher_logits=t)
    s = mlp(x)
    ce = F.cross_entropy(s[:2], y[:2])
    kl = (t.softmax(-1) * (t.log_softmax(-1) - s.log_softmax(-1))).sum(-1).mean()
    assert out["loss_ce"].item() == pytest.approx(0.3 * ce.item(), rel=1e-5)
    assert out["loss_kd"].item() == pytest.approx(0.7 * kl.item(), rel=1e-5)
    sum(out.values()).backward()
    assert all(p.grad is not None for p in mlp.parameters())
    assert not t.requires_grad


@pytest.mark.parametrize("classes", [2, 7, 10, 16, 40])
def test_log_softmax_and_cross_entropies_match_torch(classes):
    """The faster CPU path for few classes is the framework's function: values and gradients agree with
    F.log_softmax / F.cross_entropy (to rounding) on either side of the switch at 16 classes."""
    torch.manual_seed(classes)
    logits = (3 * torch.randn(300, classes)).requires_grad_()
    ref = logits.detach().clone().requires_grad_()
    grad = torch.randn(300, classes)
    log_softmax(logits).backward(grad)
    F.log_softmax(ref, -1).backward(grad)
    assert torch.allclose(log_softmax(logits), F.log_softmax(ref, -1), atol=1e-6)
    assert torch.allclose(logits.grad, ref.grad, atol=1e-6)
    y, labelled = torch.randint(classes, (300,)), torch.rand(300) < 0.5
    probs = torch.randn(300, classes).softmax(-1)
    assert labelled_ce(logits, y, labelled).item() == pytest.approx(
        F.cross_entropy(ref[labelled], y[labelled]).item(), rel=1e-6)
    assert soft_ce(logits, probs).item() == pytest.approx(F.cross_entropy(ref, probs).item(), rel=1e-6)


def test_ffg2m_terms_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    z = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    edge_index = torch.tensor([[1, 0], [0, 1]])  # 1 -> 0 and 0 -> 1; targets are nodes 0, 1
    kl = lambda p, q: float((p.softmax(-1) * (p.log_softmax(-1) - q.log_softmax(-1))).sum())
    lfd = (kl(z[1], s[0]) + kl(z[0], s[1]) + kl(z[0], s[0]) + kl(z[1], s[1])) / 4
    assert low_frequency_loss(s, z, edge_index, 2).item() == pytest.approx(lfd, rel=1e-5)
    tau = 1.5
    hfd = (kl((z[0] - z[1]).abs() / tau, (s[0] - s[1]).abs() / tau)
           + kl((z[1] - z[0]).abs() / tau, (s[1] - s[0]).abs() / tau)) / 2
    assert high_frequency_loss(s, z, edge_index, tau).item() == pytest.approx(hfd, rel=1e-5)
    model = FFG2M(MLP(2, 4, 2), lam=0.4, tau=tau)
    out = model(x=torch.randn(3, 2), y=torch.tensor([0, 1]), labelled=torch.tensor([True, False]),
                teacher_logits=z, edge_index=edge_index, num_targets=2)
    assert set(out) == {"loss_ce", "loss_lfd", "loss_hfd"} and all(math.isfinite(v.item()) for v in out.values())


def test_soft_labels_cached_per_teacher_and_graph(tmp_path):
    data = csbm(200, 3, 8, seed=0)
    teacher = build_teacher({"model": "gcn", "hidden": 8, "layers": 2, "dropout": 0.0, "heads": 1,
                             "attn_dropout": 0.0}, 8, 3)
    ckpt = tmp_path / "teacher.pth"
    torch.save({"model": teacher.state_dict()}, ckpt)
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    first, cached = soft_labels(teacher, ckpt, data.x, data.edge_index)
    assert not cached and len(calls) == 1 and not first.requires_grad
    again, cached = soft_labels(teacher, ckpt, data.x, data.edge_index)
    assert cached and len(calls) == 1 and torch.equal(first, again)
    _, cached = soft_labels(teacher, ckpt, data.x, data.edge_index[:, :-2])  # another graph: recompute
    assert not cached and len(calls) == 2


def test_soft_label_cache_falls_back_when_teacher_folder_is_read_only(tmp_path):
    import os
    data = csbm(100, 3, 8, seed=0)
    teacher = build_teacher({"model": "sage", "hidden": 8, "layers": 2, "dropout": 0.0}, 8, 3)
    shared = tmp_path / "shared"
    shared.mkdir()
    ckpt = shared / "teacher.pth"
    torch.save({"model": teacher.state_dict()}, ckpt)
    os.chmod(shared, 0o555)
    try:
        if os.access(shared, os.W_OK):  # root ignores permissions: make the folder unusable another way
            os.chmod(shared, 0o755)
            (shared / "soft_labels").write_text("a file where the cache folder would go")
        _, cached = soft_labels(teacher, ckpt, data.x, data.edge_index, fallback_dir=tmp_path / "mine")
        assert not cached and len(list((tmp_path / "mine").glob("*.pt"))) == 1
        _, cached = soft_labels(teacher, ckpt, data.x, data.edge_index, fallback_dir=tmp_path / "mine")
        assert cached
    finally:
        os.chmod(shared, 0o755)


def test_pyg_data_sets_by_name_from_a_local_root(tmp_path):
    from graph_helpers import write_npz
    from kdhub.config import ConfigError
    from kdhub_graph.data import load_pyg
    raw = tmp_path / "Photo" / "raw"
    raw.mkdir(parents=True)
    write_npz(raw / "amazon_electronics_photo.npz")
    data = load_pyg(str(tmp_path), "photo", "c.yaml")  # PyG's Amazon reader, offline
    assert data.num_nodes == 4 and data.x.shape == (4, 4) and data.edge_index.size(1) == 6
    with pytest.raises(ConfigError, match="missing: ms_academic_cs.npz"):
        load_pyg(str(tmp_path), "CS", "c.yaml")
    with pytest.raises(ConfigError, match="valid choices: Cora, CiteSeer, PubMed, Computers, Photo, CS, Physics"):
        load_pyg(str(tmp_path), "ogbn-arxiv", "c.yaml")


def test_glnn_released_passes_by_hand():
    """GLNN's released loop takes the CE and the KL term in separate passes. Student logits [0, ln 3] give
    p_S = [1/4, 3/4]; label 1: CE = -ln(3/4) = 0.287682. Teacher logits [0, 0] give p_T = [1/2, 1/2]:
    KL(p_T || p_S) = 0.5 ln 2 + 0.5 ln(2/3) = 0.143841. With lambda 0.25 the passes weigh 0.25 and 0.75."""
    glnn = GLNN(torch.nn.Identity(), lam=0.25)
    batch = dict(x=torch.tensor([[0.0, math.log(3.0)]]), y=torch.tensor([1]), labelled=torch.tensor([True]),
                 teacher_logits=torch.zeros(1, 2))
    ce, kd = glnn(**batch, part="ce"), glnn(**batch, part="kd")
    assert list(ce) == ["loss_ce"] and list(kd) == ["loss_kd"]
    assert ce["loss_ce"].item() == pytest.approx(0.25 * 0.287682, abs=1e-6)
    assert kd["loss_kd"].item() == pytest.approx(0.75 * 0.143841, abs=1e-6)
    both = glnn(**batch)
    assert both["loss_ce"].item() + both["loss_kd"].item() == pytest.approx(0.071921 + 0.107881, abs=1e-6)


def test_glnn_prepared_soft_labels_by_hand():
    """The task hands GLNN the teacher prepared once (probabilities at T and their entropy); the KL from those rows
    is the same KL. T = 1: teacher [0, ln 3] -> p_T = [1/4, 3/4], H = 0.562335; student [0, 0] -> p_S = [1/2, 1/2];
    KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812. T = 2: teacher [0, ln 9] and student [0, ln 4] give p_T = [1/4, 3/4]
    and p_S = [1/3, 2/3]; KL = 1/4 ln(3/4) + 3/4 ln(9/8) = 0.0164168, times T^2 = 0.0656670."""
    for temperature, teacher, student, expected in ((1.0, [0.0, math.log(3.0)], [0.0, 0.0], 0.130812),
                                                    (2.0, [0.0, math.log(9.0)], [0.0, math.log(4.0)], 0.0656670)):
        glnn = GLNN(torch.nn.Identity(), lam=0.0, temperature=temperature)
        t = torch.tensor([teacher, teacher])
        rows = glnn.prepare_teacher(t)
        assert rows["teacher_probs"].flatten().tolist() == pytest.approx([0.25, 0.75] * 2, abs=1e-6)
        assert rows["teacher_entropy"].tolist() == pytest.approx([0.562335] * 2, abs=1e-6)
        batch = dict(x=torch.tensor([student, student]), y=torch.tensor([1, 0]), labelled=torch.tensor([True, False]))
        prepared = glnn(**batch, **rows)["loss_kd"]
        direct = glnn(**batch, teacher_logits=t)["loss_kd"]
        assert prepared.item() == pytest.approx(expected, abs=1e-6)
        assert direct.item() == pytest.approx(expected, abs=1e-6)


def test_released_batches_drop_the_last_partial_batch():
    """GLNN's train_mini_batch: max(1, N // batch) batches of a fresh permutation, the remainder dropped, and one
    batch of every node when there are fewer than ``batch``."""
    from kdhub_graph.task import released_batches
    g = torch.Generator().manual_seed(0)
    nodes = torch.arange(100, 105)
    two = released_batches(nodes, 2, g)
    assert [len(b) for b in two] == [2, 2] and len(set(torch.cat(two).tolist())) == 4
    assert set(torch.cat(two).tolist()) <= set(nodes.tolist())
    assert [len(b) for b in released_batches(nodes[:3], 4, g)] == [3]
    assert [len(b) for b in released_batches(torch.arange(8), 4, g)] == [4, 4]


def test_dgl_initialisation_by_hand():
    """DGL 0.6.1's starts, worked out by hand for 1000 -> 1000 layers (fan_in + fan_out = 2000).
    SAGEConv: Xavier-uniform with gain sqrt(2): bound sqrt(2) * sqrt(6 / 2000) = sqrt(0.006) = 0.0774597, standard
    deviation bound / sqrt(3) = sqrt(0.002) = 0.0447214, zero bias. PyG's own start is uniform within
    1 / sqrt(1000) = 0.0316228 (standard deviation 0.0182574). GraphConv: gain 1, bound sqrt(0.003) = 0.0547723.
    GATConv's attention vectors [1, 1, 1000]: fan_in = fan_out = 1000, Xavier-normal with gain sqrt(2): standard
    deviation sqrt(2) * sqrt(2 / 2000) = 0.0447214."""
    from kdhub_graph.models import init_like_dgl_

    torch.manual_seed(0)
    arch = {"model": "sage", "hidden": 1000, "layers": 2, "dropout": 0.0, "aggr": "gcn"}
    sage = build_teacher(arch, 1000, 1000)
    assert sage.convs[0].lin_l.weight.abs().max().item() == pytest.approx(0.0316228, abs=1e-4)  # PyG's start
    assert init_like_dgl_(sage) is sage
    for conv in sage.convs:
        w = conv.lin_l.weight
        assert 0.07740 < w.abs().max().item() <= 0.0774597
        assert w.std().item() == pytest.approx(0.0447214, rel=5e-3)
        assert torch.equal(conv.lin_l.bias, torch.zeros(1000))
    mean = init_like_dgl_(build_teacher(dict(arch, aggr="mean"), 1000, 1000))
    for conv in mean.convs:  # the root weight (DGL's fc_self) too
        assert conv.lin_r.weight.std().item() == pytest.approx(0.0447214, rel=5e-3)
    gcn = init_like_dgl_(build_teacher(dict(arch, model="gcn"), 1000, 1000))
    assert 0.05470 < gcn.convs[0].lin.weight.abs().max().item() <= 0.0547723
    assert torch.equal(gcn.convs[0].bias, torch.zeros(1000))
    gat = build_teacher(dict(arch, model="gat", heads=1, attn_dropout=0.0), 1000, 1000)
    for p in (gat.convs[0].att_src, gat.convs[0].att_dst):
        torch.nn.init.constant_(p, 5.0)
    init_like_dgl_(gat)
    att = torch.cat([c.att_src.flatten() for c in gat.convs] + [c.att_dst.flatten() for c in gat.convs])
    assert att.std().item() == pytest.approx(0.0447214, rel=0.05)
    assert torch.equal(gat.convs[0].bias, torch.zeros(1000))


def test_a_methods_own_subsection_sets_its_settings_and_is_checked():
    """``distill.glnn.lambda`` / ``distill.ffg2m.tau`` override the shared keys for that method; a key the method
    does not have, a value that is not a number and a temperature of 0 are errors naming the key."""
    from kdhub.config import ConfigError
    from kdhub_graph.config import CONFIG_DIR, load

    demo = CONFIG_DIR / "demo.yaml"
    distill = load(demo, ["distill.lambda=0.2", "distill.glnn.lambda=0.9"])["distill"]
    assert GLNN.from_config(torch.nn.Identity(), distill).lam == 0.9
    distill = load(demo, ["method=ffg2m", "distill.tau=1.5", "distill.ffg2m.tau=100"])["distill"]
    assert FFG2M.from_config(torch.nn.Identity(), distill).tau == 100.0
    for options, message in ((["distill.glnn.lamda=0.9"], "unknown key 'distill.glnn.lamda' (did you mean "
                                                           "'distill.glnn.lambda'?); method 'glnn' has the settings "
                                                           "lambda, temperature"),
                             (["distill.glnn.temperature=hot"], "key 'distill.glnn.temperature' must be a number"),
                             (["distill.temperature=0"], "distill.temperature must be above 0")):
        with pytest.raises(ConfigError, match=re.escape(f"{demo}: {message}")):
            load(demo, options)


@pytest.mark.parametrize("option, message", [
    ("student.batch_size=0", "key 'student.batch_size' must be at least 1, got 0"),
    ("teacher.epochs=-1", "key 'teacher.epochs' must be at least 1, got -1"),
    ("student.layers=0", "key 'student.layers' must be at least 1, got 0"),
    ("data.split.train_per_class=0", "key 'data.split.train_per_class' must be at least 1, got 0"),
    ("teacher.heads=3", "teacher.hidden (128) must be a multiple of teacher.heads (3)"),
    ("student.dropout=1.5", "key 'student.dropout' must be at most 1, got 1.5"),
    ("teacher.dropout=-1", "key 'teacher.dropout' must be at least 0, got -1.0"),
    ("teacher.lr=-1", "key 'teacher.lr' must be at least 0, got -1.0"),
    ("student.lr=NaN", "key 'student.lr' must be a finite number, got nan"),
    ("student.weight_decay=-0.1", "key 'student.weight_decay' must be at least 0, got -0.1"),
    ("seeds=[0,0]", "key 'seeds' repeats a seed ([0, 0])"),
    ("seeds=[true]", "key 'seeds' must be a non-empty list of integers, got [True]"),
    ("setting=inductive data.inductive_fraction=0", "no inductive test node would be left"),
])
def test_counts_that_would_train_nothing_or_something_else_are_refused(option, message):
    """A batch size, epoch count, depth or label count of 0 (or below), and a GAT width the heads cannot split,
    would train nothing, a random model or a narrower one; a dropout outside [0, 1], a negative or NaN learning
    rate, repeated seeds or no inductive test node fail, or mislead, only after training began: each is refused
    by key at load."""
    from kdhub.config import ConfigError
    from kdhub_graph.config import CONFIG_DIR, load

    options = option.split() + (["teacher.model=gat"] if "heads" in option else [])
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(CONFIG_DIR / "demo.yaml", options)


def test_null_clears_a_path_key_and_a_number_given_to_a_text_key_is_its_text():
    """--cfg-options reads values as YAML does: teacher.checkpoint=null (to train the teacher a shipped config
    names) clears the key, and data.root=2024 (a folder named 2024) is the text 2024; both were type errors."""
    from kdhub_graph.config import CONFIG_DIR, load

    cfg = load(CONFIG_DIR / "demo.yaml", ["teacher.checkpoint=null", "data.source=pyg", "data.root=2024"])
    assert cfg["teacher"]["checkpoint"] == "" and cfg["data"]["root"] == "2024"
