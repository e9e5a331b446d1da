"""``kdhub demo detection``: GID on the embedded shapes set, teacher -> baseline -> distilled student.

Three runs of the shipped configs through the same code path as ``kdhub train`` (each resumable and reused
when finished): the RetinaNet teacher, the baseline student and the GID student (same schedule and seed as the
baseline), with a shorter schedule than the benchmark so it finishes in minutes on two CPU cores.
"""
from __future__ import annotations

from pathlib import Path

import torch

from kdhub.task import DemoResult, ModelResult
from kdhub.timing import median_seconds

from .task import CONFIG_DIR, DetectionRun

EPOCHS = 6
SCHEDULE = [f"train_cfg.max_epochs={EPOCHS}", f"train_cfg.val_interval={EPOCHS}", "param_scheduler.1.milestones=[5]",
            f"param_scheduler.1.end={EPOCHS}"]
RUNS = (("teacher", "teacher", "retinanet_r18w32_synth.py"), ("baseline", "baseline", "retinanet_r18w16_synth.py"),
        ("GID student", "distilled", "gid_retinanet_r18w32_r18w16_synth.py"))


def _latency_ms(work: Path) -> float:
    """Median inference time of the exported detector on one 128 px image (CPU)."""
    from mmdet.apis import init_detector
    det = init_detector(str(work / "student_config.py"), str(work / "student.pth"), device="cpu").eval()
    image = torch.zeros(1, 3, 128, 128)
    with torch.no_grad():
        return median_seconds(lambda: det._forward(image), repeats=10, warmup=2) * 1000


def run_demo(work_dir: Path) -> DemoResult:
    from .plugin import kdhub_load_config
    work_dir = Path(work_dir)
    rows, summaries = [], {}
    for role, folder, name in RUNS:
        options = list(SCHEDULE)
        if folder == "distilled":
            options.append(f"model.teacher.checkpoint={work_dir / 'teacher' / 'student.pth'}")
        loaded = kdhub_load_config(CONFIG_DIR / name, options)
        sub = work_dir / folder
        summary = DetectionRun(loaded, sub, resume=True).run()
        summaries[role] = summary
        rows.append(ModelResult(role, summary["student"]["AP"], summary["params"]["student"], _latency_ms(sub)))
    gain = summaries["GID student"]["student"]["AP"] - summaries["baseline"]["student"]["AP"]
    notes = [f"synthetic shapes (5 classes, 128 px, 600 train / 200 test images), {EPOCHS} epochs each, seed 0",
             f"GID gain over the baseline: {gain:+.2f} AP (COCO AP on the test split)",
             "DETRDistill (Deformable DETR) and the ablation: python benchmarks/detection_distill.py"]
    return DemoResult(domain="detection", title="Detection: RetinaNet R18/w32 -> R18/w16 with GID",
                      metric_name="AP", rows=rows, notes=notes)
