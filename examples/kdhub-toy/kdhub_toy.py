"""kdhub-toy: the smallest complete third-party kdhub plugin.

It registers a task (``toy``), a distiller (``toy_kd``: Hinton KD on an MLP) and a data set (Gaussian
blobs), reads JSON configs through the core's loader, trains on the core's Trainer, and observes every
run of any domain through the lifecycle hooks, appending them to ``<work_dir>/events.jsonl``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import kdhub
from kdhub.checkpoint import atomic_save, load_checkpoint
from kdhub.config import Field, validate
from kdhub.engine import Trainer
from kdhub.runs import RunContext, RunInfo

SCHEMA = {
    "task": Field(str),
    "method": Field(str, "toy_kd", choices=("toy_kd", "none")),
    "seed": Field(int, 0),
    "data": {"n": Field(int, 512), "dim": Field(int, 8), "classes": Field(int, 4), "noise": Field(float, 2.0)},
    "teacher": {"hidden": Field(int, 128), "epochs": Field(int, 30)},
    "student": {"hidden": Field(int, 8), "epochs": Field(int, 20)},
    "distill": {"temperature": Field(float, 4.0), "alpha": Field(float, 0.7)},
    "lr": Field(float, 0.01),
    "batch_size": Field(int, 64),
}


def blobs(n: int, dim: int, classes: int, noise: float, seed: int):
    """Deterministic Gaussian blobs: class centres on a sphere, isotropic noise; 75/25 split."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(classes, dim, generator=g), dim=1) * 3.0
    y = torch.arange(n) % classes
    x = centres[y] + noise * torch.randn(n, dim, generator=g)
    cut = 3 * n // 4
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def mlp(dim: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, classes))


class ToyKD(kdhub.Algorithm):
    """(1 - alpha) * CE + alpha * KD(T) on the logits of one teacher."""

    def __init__(self, student, teacher, temperature: float, alpha: float):
        super().__init__(student, teacher)
        self.kd, self.alpha = kdhub.KDLoss(temperature), alpha

    def loss(self, x, y):
        t = self.teacher_forward(x)
        s = self.student(x)
        return {"loss_ce": (1 - self.alpha) * F.cross_entropy(s, y), "loss_kd": self.alpha * self.kd(s, t)}


class Supervised(nn.Module):
    """Plain training of one network (teacher, or the baseline student)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, y):
        return {"loss_ce": F.cross_entropy(self.net(x), y)}


def accuracy(net, data) -> float:
    net.eval()
    with torch.no_grad():
        return (net(data[0]).argmax(1) == data[1]).float().mean().item() * 100


class ToyTask(kdhub.Task):
    """Logit distillation of a wide MLP into a narrow one on Gaussian blobs."""

    def _fit(self, model, net, train, test, cfg, ctx, epochs, resume):
        torch.manual_seed(cfg["seed"])
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"])

        def batches(epoch):
            order = torch.randperm(len(train[0]))
            for i in range(0, len(order), cfg["batch_size"]):
                idx = order[i:i + cfg["batch_size"]]
                yield train[0][idx], train[1][idx]

        trainer = Trainer(model, opt, ctx, epochs=epochs, batches=batches,
                          evaluate=lambda: {"acc": accuracy(net, test)}, progress=False)
        return trainer.fit(resume=resume)

    def train(self, loaded, work_dir, resume=False, launcher="none"):
        cfg = validate(loaded.cfg, SCHEMA, str(loaded.path))
        d = cfg["data"]
        train, test = blobs(d["n"], d["dim"], d["classes"], d["noise"], cfg["seed"])
        torch.manual_seed(cfg["seed"])
        teacher = mlp(d["dim"], cfg["teacher"]["hidden"], d["classes"])
        tctx = RunContext(RunInfo("toy", "teacher", Path(work_dir) / "teacher", loaded.path))
        t_metrics = self._fit(Supervised(teacher), teacher, train, test, cfg, tctx, cfg["teacher"]["epochs"], resume)
        torch.manual_seed(cfg["seed"] + 1)
        student = mlp(d["dim"], cfg["student"]["hidden"], d["classes"])
        ctx = RunContext(RunInfo("toy", cfg["method"], Path(work_dir), loaded.path))
        if cfg["method"] == "toy_kd":
            model = ToyKD(student, teacher, cfg["distill"]["temperature"], cfg["distill"]["alpha"])
        else:
            model = Supervised(student)
        s_metrics = self._fit(model, student, train, test, cfg, ctx, cfg["student"]["epochs"], resume)
        path = atomic_save({"student": student.state_dict()}, Path(work_dir) / "student.pth")
        return ctx.finish(teacher=t_metrics, student=s_metrics, student_checkpoint=path,
                          params={"teacher": kdhub.count_parameters(teacher),
                                  "student": kdhub.count_parameters(student)})

    def evaluate(self, loaded, checkpoint):
        cfg = validate(loaded.cfg, SCHEMA, str(loaded.path))
        d = cfg["data"]
        _, test = blobs(d["n"], d["dim"], d["classes"], d["noise"], cfg["seed"])
        student = mlp(d["dim"], cfg["student"]["hidden"], d["classes"])
        student.load_state_dict(load_checkpoint(checkpoint)["student"])
        return {"acc": accuracy(student, test)}


@kdhub.hookimpl
def kdhub_register(registry):
    registry.add_task("toy", ToyTask())
    registry.add_distiller("toy_kd", ToyKD)
    registry.add_dataset("toy_blobs", blobs)


def _log(run: RunInfo, event: str, **fields) -> None:
    with open(Path(run.work_dir) / "events.jsonl", "a") as f:
        f.write(json.dumps({"time": time.time(), "event": event, "task": run.task, "method": run.method,
                            **fields}, default=str) + "\n")


@kdhub.hookimpl
def kdhub_run_start(run):
    _log(run, "run_start")


@kdhub.hookimpl
def kdhub_metrics_logged(run, step, metrics):
    _log(run, "metrics", step=step, metrics=metrics)


@kdhub.hookimpl
def kdhub_evaluation_done(run, role, step, metrics):
    _log(run, "evaluation", role=role, step=step, metrics=metrics)


@kdhub.hookimpl
def kdhub_checkpoint_saved(run, step, path):
    _log(run, "checkpoint", step=step, path=str(path))


@kdhub.hookimpl
def kdhub_run_end(run, summary):
    _log(run, "run_end", summary=summary)
