"""A teacher trained outside kdhub: the user's own torch-geometric code trains a GNN on a Planetoid data set,
saves its weights the way users do, and a shipped recipe's ``teacher.checkpoint`` points at the file.

kdhub must distil from exactly those weights: the soft labels it caches equal the user's model's logits, and the
teacher test accuracy it reports equals the accuracy the user's own model gets on the same split. A file that does
not fit is refused before anything is written, naming the file, the first differing keys and shapes, and the fix.
"""
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.datasets import Planetoid
from torch_geometric.nn import GAT, GATConv, GCN, GraphSAGE

from graph_helpers import tiny_graph, write_planetoid_raw
from kdhub.cli import main as kdhub_main
from kdhub_graph.config import CONFIG_DIR, load
from kdhub_graph.data import glnn_split
from kdhub_graph.models import build_teacher

CLASSES, FEATURES = 3, 8


@pytest.fixture(scope="module")
def planetoid(tmp_path_factory):
    """Tiny Cora raw files (600 nodes, 3 classes, 8 features): the folder kdhub reads (data.root)."""
    root = tmp_path_factory.mktemp("planetoid")
    x, y, pairs = tiny_graph(CLASSES, 200, FEATURES, seed=4)
    write_planetoid_raw(root / "Cora" / "raw", "Cora", x, y, pairs, labelled=CLASSES * 20, tests=200)
    return root


class ExampleGAT(nn.Module):
    """A GAT written as in PyG's examples/gat.py: numbered attributes, ELU, one averaged output head."""

    def __init__(self, in_channels, hidden, out_channels, heads):
        super().__init__()
        self.conv1 = GATConv(in_channels, hidden, heads, dropout=0.3)
        self.conv2 = GATConv(hidden * heads, out_channels, heads=1, concat=False, dropout=0.3)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=0.6, training=self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.6, training=self.training)
        return self.conv2(x, edge_index)


def user_trains(model, root, epochs):
    """The user's own loop: PyG's Planetoid reader on their own copy, Adam, cross-entropy on the public
    training nodes, full batch. Returns the PyG Data object it trained on."""
    mine = root.parent / f"{root.name}_user_copy"
    if not mine.exists():
        shutil.copytree(root, mine)
    data = Planetoid(str(mine), "Cora")[0]
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
    return data


def _bare(model):
    return model.state_dict()


def _ddp_style_under_state_dict(model):
    return {"state_dict": nn.DataParallel(model).state_dict(), "epoch": 40}  # 'module.' keys, as DDP writes


def _tutorial_checkpoint_compiled(model):
    opt = torch.optim.Adam(model.parameters())
    return {"epoch": 40, "model_state_dict": torch.compile(model).state_dict(),  # '_orig_mod.' keys
            "optimizer_state_dict": opt.state_dict(), "loss": 0.1}


def _kdhub_style(model):
    return {"model": model.state_dict()}


CASES = {
    # recipe, the user's model (PyG's own classes or an example-style module), how it is saved, overrides, epochs
    "gcn_bare": ("glnn_cora_gcn.yaml", lambda: GCN(FEATURES, 64, 2, CLASSES), _bare, [], 40),
    "sage_ddp": ("glnn_cora_sage.yaml", lambda: GraphSAGE(FEATURES, 128, 2, CLASSES), _ddp_style_under_state_dict,
                 ["teacher.aggr=mean"], 40),
    "gat_example": ("glnn_cora_gat.yaml", lambda: ExampleGAT(FEATURES, 16, CLASSES, heads=8), _kdhub_style,
                    ["teacher.act=elu"], 40),
    "pyg_gat": ("ffg2m_cora_gat.yaml", lambda: GAT(FEATURES, 128, 2, CLASSES, heads=8), _bare,
                ["teacher.out_heads=8"], 40),
    "gcn_3x512_compiled": ("ffg2m_cora_gcn_authors.yaml", lambda: GCN(FEATURES, 512, 3, CLASSES),
                           _tutorial_checkpoint_compiled, [], 15),
}


@pytest.mark.parametrize("case", list(CASES))
def test_distils_from_exactly_the_users_weights(case, planetoid, tmp_path):
    recipe, make, save, extra, epochs = CASES[case]
    model = make()
    data = user_trains(model, planetoid, epochs)
    path = tmp_path / "users" / "teacher.pt"
    path.parent.mkdir()
    torch.save(save(model), path)
    model.eval()
    with torch.no_grad():
        logits = model(data.x, data.edge_index)

    work = tmp_path / "work"
    assert kdhub_main(["train", str(CONFIG_DIR / recipe), "--work-dir", str(work), "--cfg-options",
                       "data.source=pyg", "data.name=Cora", f"data.root={planetoid}", "seeds=[0]",
                       "student.epochs=2", "device=cpu", f"teacher.checkpoint={path}", *extra]) == 0
    summary = json.loads((work / "summary.json").read_text())

    # the soft labels kdhub distilled from are the user's model's logits
    cached = list((path.parent / "soft_labels").glob("*.pt"))
    assert len(cached) == 1 and summary["per_seed"][0]["soft_labels_cached"] is False
    soft = torch.load(cached[0], weights_only=True)["logits"]
    assert torch.allclose(soft, logits, atol=1e-5), (soft - logits).abs().max()
    # and the teacher accuracy kdhub reports is the user's model's own on the recipe's split (seed 0, GLNN's
    # 20 labelled / 30 validation nodes per class, the rest test)
    masks = glnn_split(data.y, 20, 30, seed=0)
    for metric, mask in (("test_acc", masks["test_mask"]), ("val_acc", masks["val_mask"])):
        mine = (logits[mask].argmax(1) == data.y[mask]).float().mean().item() * 100
        assert summary["teacher"][metric] == pytest.approx(mine, abs=1e-9), metric
    assert summary["teacher"]["test_acc"] > 60  # the user's teacher learnt something on this graph
    assert summary["params"]["teacher"] == sum(p.numel() for p in model.parameters())

    if "teacher.act=elu" in extra:  # the activation is not in the file: read as another teacher, no cache reuse
        again = tmp_path / "relu"
        assert kdhub_main(["train", str(CONFIG_DIR / recipe), "--work-dir", str(again), "--cfg-options",
                           "data.source=pyg", "data.name=Cora", f"data.root={planetoid}", "seeds=[0]",
                           "student.epochs=2", "device=cpu", f"teacher.checkpoint={path}", "baseline=false"]) == 0
        assert json.loads((again / "summary.json").read_text())["per_seed"][0]["soft_labels_cached"] is False
        assert len(list((path.parent / "soft_labels").glob("*.pt"))) == 2


def _refused(capsys, recipe, path, planetoid, work, *extra):
    rc = kdhub_main(["train", str(CONFIG_DIR / recipe), "--work-dir", str(work), "--cfg-options",
                     "data.source=pyg", "data.name=Cora", f"data.root={planetoid}", "seeds=[0]",
                     f"teacher.checkpoint={path}", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and str(path) in err, err
    assert not work.exists(), "nothing may be written before the teacher is checked"
    return err


def test_a_teacher_that_does_not_fit_is_refused_up_front(planetoid, tmp_path, capsys):
    work = tmp_path / "work"
    torch.manual_seed(0)

    narrow = tmp_path / "narrow.pt"  # a GCN 32 wide where the recipe says 64
    torch.save(GCN(FEATURES, 32, 2, CLASSES).state_dict(), narrow)
    err = _refused(capsys, "glnn_cora_gcn.yaml", narrow, planetoid, work)
    assert "teacher.checkpoint" in err and "3 shape difference(s)" in err
    assert "convs.0.lin.weight 32x8 in the file, 64x8 in the model" in err
    assert "set teacher.hidden=32" in err

    sage = tmp_path / "sage.pt"  # PyG's GraphSAGE has a root weight; the recipe's GLNN aggregator has none
    torch.save(GraphSAGE(FEATURES, 128, 2, CLASSES).state_dict(), sage)
    err = _refused(capsys, "glnn_cora_sage.yaml", sage, planetoid, work)
    assert "unexpected key(s) (convs.0.lin_r.weight; convs.1.lin_r.weight)" in err
    assert "set teacher.aggr=mean" in err

    gat = tmp_path / "gat.pt"  # PyG's GAT averages 8 heads in its output layer; the recipe's has one
    torch.save(GAT(FEATURES, 128, 2, CLASSES, heads=8).state_dict(), gat)
    err = _refused(capsys, "glnn_cora_gat.yaml", gat, planetoid, work)
    assert "convs.1.att_src 1x8x3 in the file, 1x1x3 in the model" in err and "set teacher.out_heads=8" in err

    other = tmp_path / "other_data.pt"  # trained on data with 5 features and 4 classes
    torch.save(GCN(5, 64, 2, 4).state_dict(), other)
    err = _refused(capsys, "glnn_cora_gcn.yaml", other, planetoid, work)
    assert "first layer takes 5 input features but the data has 8" in err
    assert "output layer gives 4 classes but the data has 3" in err

    lightning = tmp_path / "lightning.ckpt"  # a wrapper's state dict: every key under its attribute name
    torch.save({"state_dict": {f"model.{k}": v for k, v in GCN(FEATURES, 64, 2, CLASSES).state_dict().items()}},
               lightning)
    err = _refused(capsys, "glnn_cora_gcn.yaml", lightning, planetoid, work)
    assert "every key in the file starts with 'model.'" in err

    pickled = tmp_path / "whole_model.pt"  # torch.save(model): a pickled object, not weights
    torch.save(GCN(FEATURES, 64, 2, CLASSES), pickled)
    err = _refused(capsys, "glnn_cora_gcn.yaml", pickled, planetoid, work)
    assert "holds a pickled Python object" in err and "save the model's state_dict() instead" in err

    elu = tmp_path / "elu_teacher.pth"  # a graph run's own teacher file records its activation; the config's differs
    arch = {**load(CONFIG_DIR / "glnn_cora_gcn.yaml", ["data.path=x.npz"])["teacher"], "act": "elu"}
    torch.save({"model": build_teacher(arch, FEATURES, CLASSES).state_dict(), "arch": arch, "in_channels": FEATURES,
                "num_classes": CLASSES}, elu)
    err = _refused(capsys, "glnn_cora_gcn.yaml", elu, planetoid, work)
    assert "was trained with teacher.act=elu, but the config says relu; set teacher.act=elu" in err

    other_layout = tmp_path / "weights.pt"
    torch.save({"epoch": 3, "weights": [torch.zeros(2)]}, other_layout)
    err = _refused(capsys, "glnn_cora_gcn.yaml", other_layout, planetoid, work)
    assert "holds no teacher state dict (its top level: epoch, weights)" in err and "'model_state_dict'" in err
