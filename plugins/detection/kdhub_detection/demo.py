"""``kdhub demo detection``: GID on the embedded shapes set, teacher -> baseline -> distilled student.

One run of ``demo_gid_retinanet_synth.py`` through the same code path as ``kdhub train``: the core pipeline
trains the RetinaNet teacher, the baseline student and the GID student (same schedule and seed as the
baseline), on a shorter schedule than the benchmark so it finishes in minutes on two CPU cores. Finished
sub-runs of an earlier demo are reused.
"""
from __future__ import annotations

from pathlib import Path

from kdhub.pipeline import demo_rows
from kdhub.task import DemoResult

from .task import CONFIG_DIR, DetectionRun

DEMO_CONFIG = CONFIG_DIR / "demo_gid_retinanet_synth.py"


def run_demo(work_dir: Path) -> DemoResult:
    from .plugin import kdhub_load_config
    loaded = kdhub_load_config(DEMO_CONFIG, [])
    run = DetectionRun(loaded, Path(work_dir), resume=True)
    summary = run.run()
    rows = demo_rows(summary, "AP", run, run.results,
                     roles=(("teacher", "teacher"), ("baseline", "baseline"), ("student", "GID student")))
    gain = summary["student"]["AP"] - summary["baseline"]["AP"]
    epochs = loaded.cfg.train_cfg.max_epochs
    notes = [f"synthetic shapes (5 classes, 128 px, 600 train / 200 test images), {epochs} epochs each, seed 0",
             f"GID gain over the baseline: {gain:+.2f} AP (COCO AP on the test split)",
             "DETRDistill (Deformable DETR) and the ablation: python benchmarks/detection_distill.py"]
    return DemoResult(domain="detection", title="Detection: RetinaNet R18/w32 -> R18/w16 with GID",
                      metric_name="AP", rows=rows, notes=notes)
