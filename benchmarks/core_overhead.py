"""Overhead of the core's distillation machinery (taps, adapters, losses) on a small CNN.

Measures, interleaved in one run: (a) a distillation step: teacher no-grad forward + student step with taps on
the logits and the penultimate embedding, KD + feature MSE (linear adapter) + RKD distance terms; (b) the same
work without the machinery: teacher no-grad forward + plain student train step. Also (c) the step with a
64->256 1x1 conv adapter on the last feature map, whose extra compute belongs to the method. Writes JSON with
the median times and the ratios a/b (target <= 1.05) and c/b, and the peak memory of (a) against (b)'s, each in a
fresh process.

The breakdown of step (a), measured interleaved in the same loop: the teacher's forward and the student's own train
step (hook-free copies of the same weights), the method's own modules (the adapter's forward and backward) and
its losses (forward and backward on the captured features' shapes), each timed alone; machinery (taps, hooks,
the term mapping, data movement, the optimiser's extra parameters) is what the full step costs beyond their sum.

    python benchmarks/core_overhead.py [--out results/core_overhead.json] [--steps 60]
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kdhub import TapAlgorithm, build_terms

from breakdown import interleaved, paired, peak_ratio, peak_rss_mb, shares
from provenance import run_info


def cnn(width: int, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, classes))


def breakdown_steps(x, y, teacher: nn.Module, student: nn.Module, terms) -> dict:
    """The parts of a distillation step, each runnable alone: the teacher's no-grad forward and the student's
    CE train step (copies without the taps' hooks), then the adapters' and the losses' forward and backward on
    inputs of the captured features' shapes (logits [B, 10] and embeddings [B, 64] / [B, 256])."""
    t_model, s_model = cnn(64), cnn(16)
    t_model.load_state_dict(teacher.state_dict())
    t_model.eval()  # as the algorithm freezes it: norms in eval mode
    s_model.load_state_dict(student.state_dict())
    opt = torch.optim.SGD(s_model.parameters(), lr=0.01, momentum=0.9)
    with torch.no_grad():
        t_embed = t_model[:-1](x)
        t_logits = t_model[-1](t_embed)
    s_shapes = {"logits": (x.shape[0], 10), "embed": (x.shape[0], 64), "rkd": (x.shape[0], 64)}
    terms = copy.deepcopy(terms)
    teacher_side = {"logits": t_logits, "embed": t_embed, "rkd": t_embed}

    def teacher_forward():
        with torch.no_grad():
            t_model(x)

    def student_step():
        loss = F.cross_entropy(s_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def adapters():
        for t in terms:
            if t.adapter is not None:
                t.adapter(torch.randn(s_shapes[t.name], requires_grad=True)).sum().backward()

    def losses():
        total = 0.0
        for t in terms:
            s = torch.randn(s_shapes[t.name], requires_grad=True)
            if t.adapter is not None:  # the loss sees the adapter's output shape; the adapter is timed above
                s = torch.randn(x.shape[0], 256, requires_grad=True)
            total = total + t.weight * t.loss(s, teacher_side[t.name])
        total.backward()

    return {"part_teacher_forward": teacher_forward, "part_student_step": student_step,
            "part_method_modules": adapters, "part_losses": losses}


CONFIGS = {
    # logits KD + FitNet-style MSE and RKD on the penultimate embedding (64 -> 256, linear adapter)
    "embedding_terms": [
        {"name": "logits", "loss": {"type": "kd", "temperature": 4.0}},
        {"name": "embed", "loss": {"type": "mse"}, "student": "10", "teacher": "10",
         "adapter": {"type": "linear", "in_channels": 64, "out_channels": 256}},
        {"name": "rkd", "loss": {"type": "rkd_distance"}, "student": "10", "teacher": "10"},
    ],
    # logits KD + MSE on the last 8x8 feature map through a 1x1 conv adapter (its compute included)
    "spatial_adapter": [
        {"name": "logits", "loss": {"type": "kd", "temperature": 4.0}},
        {"name": "feat", "loss": {"type": "mse"}, "student": "8", "teacher": "8",
         "adapter": {"type": "conv", "in_channels": 64, "out_channels": 256}},
    ],
}


def setup(batch: int):
    """The batch (seed 0), the teacher (CNN width 64) and the plain student (width 16)."""
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    return x, y, cnn(64), cnn(16)


def make_reference_step(x, y, teacher, plain_student):
    """The floor: the teacher's no-grad forward, then the plain student's CE train step (SGD)."""
    opt_s = torch.optim.SGD(plain_student.parameters(), lr=0.01, momentum=0.9)

    def reference_step():
        with torch.no_grad():
            teacher(x)
        loss = F.cross_entropy(plain_student(x), y)
        opt_s.zero_grad(set_to_none=True)
        loss.backward()
        opt_s.step()
    return reference_step


def make_distill_step(x, y, teacher, plain_student, terms):
    """A :class:`kdhub.TapAlgorithm` step with ``terms`` on a student starting from the plain student's weights."""
    student = cnn(16)
    student.load_state_dict(plain_student.state_dict())
    distiller = TapAlgorithm(student, teacher, build_terms(terms)).train()
    opt = torch.optim.SGD(distiller.trainable_parameters(), lr=0.01, momentum=0.9)

    def step():
        losses = distiller(x, y)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()
    return step


def peak_step(variant: str, batch: int):
    """One step for the peak-memory measurement (``breakdown.peak_rss_mb``): ``floor`` (teacher forward, then the
    plain student's step) or ``distill`` (the embedding-terms distillation step)."""
    x, y, teacher, plain_student = setup(batch)
    if variant == "floor":
        return make_reference_step(x, y, teacher, plain_student)
    return make_distill_step(x, y, teacher, plain_student, CONFIGS["embedding_terms"])


def peak_memory(batch: int) -> dict:
    """The distillation step's peak memory against the floor's, each in a fresh process (breakdown.py); the
    method's adapter and losses are part of the step, so the floor here is the teacher and the student alone."""
    peaks = {v: peak_rss_mb("core_overhead:peak_step", {"variant": v, "batch": batch}) for v in ("floor", "distill")}
    return {"floor": peaks["floor"], "distill_step": peaks["distill"],
            "ratio": peak_ratio(peaks["distill"], peaks["floor"]), "target_ratio": 1.15}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/core_overhead.json")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    configs = CONFIGS
    x, y, teacher, plain_student = setup(args.batch)
    reference_step = make_reference_step(x, y, teacher, plain_student)
    steps = {name: make_distill_step(x, y, teacher, plain_student, terms) for name, terms in configs.items()}
    parts = breakdown_steps(x, y, teacher, plain_student, build_terms(configs["embedding_terms"]))
    # one timed call per function and round, the order rotated each round, after 5 warm-up rounds
    samples: dict = {}
    med = interleaved({"reference": reference_step, **steps, **parts}, args.steps, inner=1, warmup=5,
                      samples_out=samples)
    step = med["embedding_terms"]
    # formed within each round, median over the rounds, as the domains' profiles form them
    per_round = paired(samples, "embedding_terms", ["reference"], parts)
    spatial = paired(samples, "spatial_adapter", ["reference"], parts)
    # floor: teacher forward + student step + the method's modules and losses
    split = shares(step, {p.removeprefix("part_"): med[p] for p in parts})
    result = {
        "benchmark": "core_overhead",
        "student_step_plus_teacher_forward_ms": round(med["reference"] * 1e3, 3),
        "distill_step_ms": round(med["embedding_terms"] * 1e3, 3),
        "ratio": per_round["step_ratio"],
        "ratio_of_medians": round(med["embedding_terms"] / med["reference"], 4),
        "target_ratio": 1.05,
        "ratio_is": "the distillation step over the teacher's forward plus the plain student's step (one function), "
                    "formed within each interleaved round, median over the rounds",
        "breakdown": {"of": "distill_step (embedding terms), shares of its median time",
                      "ms": {p.removeprefix("part_"): round(med[p] * 1e3, 3) for p in parts},
                      "shares": {k: round(v, 4) for k, v in split["shares"].items()},
                      "floor_with_method_ms": round(split["floor_s"] * 1e3, 3),
                      "overhead_above_floor": per_round["overhead_above_floor"],
                      "overhead_of_medians": round(split["overhead_above_floor"], 4), "target_overhead": 0.10},
        "peak_memory": peak_memory(args.batch),
        "spatial_adapter_distill_step_ms": round(med["spatial_adapter"] * 1e3, 3),
        "spatial_adapter_ratio": spatial["step_ratio"],
        "notes": "ratio: taps on logits and penultimate embedding, KD + MSE (linear adapter) + RKD distance; "
                 "spatial_adapter_ratio includes the forward/backward of a 64->256 1x1 conv on 8x8 maps, "
                 "compute that the method itself adds",
        "steps": args.steps, "batch": args.batch, "input": [3, 32, 32],
        "params": {"teacher": sum(p.numel() for p in teacher.parameters()),
                   "student": sum(p.numel() for p in plain_student.parameters())},
        **run_info(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
