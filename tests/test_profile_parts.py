"""The cost-breakdown parts of the benchmarks run the methods' own computation: the losses part, on leaf tensors
taken from the step's forward, gives the loss the method's step computes on the same weights and batch."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

graph_reproduce = pytest.importorskip("graph_reproduce")


@pytest.mark.parametrize("method", ["glnn", "ffg2m"])
def test_graph_losses_part_is_the_steps_loss(method):
    s = graph_reproduce.profile_setup(method, nodes=600, batch=64)
    parts, rows = graph_reproduce.graph_parts(s)
    graph = method == "ffg2m"
    batch = graph_reproduce.make_batch(s, s["targets"], graph)
    with torch.no_grad():
        expected = sum(s["model"](**batch).values())
    assert float(parts["losses"]()) == pytest.approx(float(expected), rel=1e-5)
    assert rows["targets"] == 64
    assert rows["student_rows"] == len(batch["x"]) and (rows["student_rows"] > 64) == graph
    for name in ("student_step", "batch_building", "plain_losses", "plain_student_step"):
        parts[name]()
    assert ("selection" in parts) == graph
    if graph:  # the selection part picks exactly the nodes and edges the step's batch holds
        sub = parts["selection"]()
        assert torch.equal(s["g"].x[sub.n_id], batch["x"]) and torch.equal(sub.edge_index, batch["edge_index"])


def test_graph_teacher_rows_are_cached_outside_the_graph():
    s = graph_reproduce.profile_setup("glnn", nodes=600, batch=64)
    assert set(s["per_node"]) == {"teacher_probs", "teacher_entropy"}
    assert not any(v.requires_grad for v in s["per_node"].values())


@pytest.fixture(scope="module")
def detection_data(tmp_path_factory):
    """The embedded detection set, generated once for this module's tests into a temporary folder."""
    pytest.importorskip("mmdet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KDHUB_DATA_DIR", str(tmp_path_factory.mktemp("kdhub-data")))
        yield


@pytest.mark.parametrize("family", ["gid", "detr"])
def test_detection_losses_part_is_the_steps_distillation_loss(family, detection_data):
    import detection_distill

    cfg, model, student, inputs, samples = detection_distill.profile_setup(family)
    for module in model.modules():  # the student's attention dropout would draw other masks in each forward
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    parts, shapes, detail = detection_distill.method_parts(family, model, inputs, samples, cfg)
    with torch.no_grad():
        losses = model(inputs, samples, mode="loss")
    own = set(student.loss(inputs, samples))  # the student's detection terms: the student step's part
    expected = sum(v for k, v in losses.items() if k not in own and "loss" in k)
    assert float(parts["losses"]()) == pytest.approx(float(expected), rel=1e-4)
    assert set(detail) <= set(parts)


@pytest.mark.parametrize("family", ["gid", "frcnn", "detr"])
def test_detection_teacher_runs_before_the_students_graph_is_built(family, detection_data):
    """The distillation step runs the frozen teacher first, so the teacher's working memory is freed before the
    student's graph exists (the step's peak is then the larger of the two, not their sum): every call of the
    teacher's backbone and neck modules comes before the first student module call. (A two-stage teacher's RoI
    head runs later, on RoIs that include the student's proposals.)"""
    import detection_distill

    _, model, _, inputs, samples = detection_distill.profile_setup(family)
    calls = []
    trunk = list(model.teacher.backbone.modules()) + list(model.teacher.neck.modules())
    hooks = [m.register_forward_pre_hook(lambda *_, role=role: calls.append(role))
             for role, modules in (("teacher", trunk), ("student", model.student.modules())) for m in modules]
    try:
        model(inputs, samples, mode="loss")
    finally:
        for h in hooks:
            h.remove()
    first_student = calls.index("student")
    assert first_student > 0 and "teacher" not in calls[first_student:]
