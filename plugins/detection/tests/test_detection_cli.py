"""The detection task through the real launcher: teacher, GID student, export, eval, resume, errors, DDP."""
import json
import math
import sys

import pytest
import torch

from detection_helpers import distill, retinanet, run_cli

GID = "dict(type='GID', feature_weight=1e-3, top_k=4)"


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    cfg = retinanet(tmp, "teacher.py", base=16, fpn=32)
    run_cli(["train", cfg, "--work-dir", tmp / "w"], env={"KDHUB_TENSORBOARD": "1"})
    return cfg, tmp / "w"


def test_a_plain_run_is_watchable_in_train_log_and_tensorboard(trained_teacher):
    """KDHUB_TENSORBOARD=1: the events hold the learning rates (and evaluations: none here, as COCO evaluation
    of a 4-iteration detector finds no detections) mmengine's own visualiser recorded, and each loss term."""
    from kdhub.testing import read_scalars
    from kdhub_openmmlab.testing import tensorboard_matches_mmengine
    _, work = trained_teacher
    assert "[w] step 4: loss=" in (work / "train.log").read_text()
    assert tensorboard_matches_mmengine(work, "model")["lr"] == 4
    assert {"train/loss", "train/loss_cls", "train/loss_bbox"} <= set(read_scalars(work / "tensorboard"))


def test_teacher_then_gid_student_export_eval_and_resume(trained_teacher, tmp_path):
    t_cfg, t_work = trained_teacher
    t_summary = json.loads((t_work / "summary.json").read_text())
    assert t_summary["method"] == "supervised" and math.isfinite(t_summary["model"]["AP"])
    student = retinanet(tmp_path, "student.py")
    cfg = distill(tmp_path, "gid.py", student, t_cfg, t_work / "student.pth", GID)
    work = tmp_path / "w"
    out = run_cli(["train", cfg, "--work-dir", work]).stdout
    assert "teacher: AP=" in out and "student: AP=" in out
    summary = json.loads((work / "summary.json").read_text())
    assert summary["method"] == "gid" and summary["teacher"] == t_summary["model"]  # same teacher, same test set
    assert summary["params"]["teacher"] > summary["params"]["student"]
    assert (work / "teacher_test.json").is_file()           # the given teacher, tested once
    student_dir = work / "student"                          # the pipeline's student sub-run
    ckpt = torch.load(student_dir / "epoch_1.pth", weights_only=False)
    assert not any(k.startswith("teacher.") for k in ckpt["state_dict"])           # checkpoints: student + adapters
    assert any(k.startswith("distiller.adapter") for k in ckpt["state_dict"])
    # the export is a plain mmdet checkpoint that init_detector loads with the student's own config
    from mmdet.apis import inference_detector, init_detector
    det = init_detector(str(student_dir / "student_config.py"), str(student_dir / "student.pth"), device="cpu")
    assert det.dataset_meta["classes"][0] == "circle"
    result = inference_detector(det, torch.zeros(64, 64, 3, dtype=torch.uint8).numpy())
    assert result.pred_instances.bboxes.shape[-1] == 4
    evaluated = run_cli(["eval", cfg, student_dir / "student.pth"]).stdout
    assert f"AP: {summary['student']['AP']:.4f}" in evaluated
    assert len(evaluated.splitlines()) < 30, evaluated  # the metrics, not mmengine's environment and config dump
    assert f"AP: {summary['student']['AP']:.4f}" in run_cli(["eval", cfg, student_dir / "epoch_1.pth"]).stdout
    plain = run_cli(["eval", student_dir / "student_config.py", student_dir / "student.pth"]).stdout  # no teacher
    assert f"AP: {summary['student']['AP']:.4f}" in plain
    # eval tests the student alone: the teacher file need not exist where it runs
    moved = run_cli(["eval", cfg, student_dir / "student.pth", "--cfg-options", "model.teacher.checkpoint=/nowhere/t.pth"])
    assert f"AP: {summary['student']['AP']:.4f}" in moved.stdout
    # another model's weights (the teacher's, twice as wide) are refused, not tested as far as they fit
    foreign = run_cli(["eval", cfg, t_work / "student.pth"], check=False)
    assert foreign.returncode == 2 and "Traceback" not in foreign.stderr
    assert f"{cfg}: checkpoint: {t_work / 'student.pth'} does not fit the configured model: " in foreign.stderr
    refused = run_cli(["train", cfg, "--work-dir", work], check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    run_cli(["train", cfg, "--work-dir", work, "--resume"])
    assert json.loads((work / "summary.json").read_text()) == summary                # a finished run is reused


def test_resume_continues_exactly(trained_teacher, tmp_path):
    t_cfg, t_work = trained_teacher
    cfg = distill(tmp_path, "gid.py", retinanet(tmp_path, "s.py"), t_cfg, t_work / "student.pth", GID)
    two = ["--cfg-options", "train_cfg.max_epochs=2", "train_cfg.val_interval=2"]
    run_cli(["train", cfg, "--work-dir", tmp_path / "straight", *two])
    run_cli(["train", cfg, "--work-dir", tmp_path / "cut", "--cfg-options", "train_cfg.val_interval=2"])
    for name in ("summary.json", "student/student.pth", "student/result.json"):  # as if stopped after epoch 1
        (tmp_path / "cut" / name).unlink()
    run_cli(["train", cfg, "--work-dir", tmp_path / "cut", "--resume", *two])
    a = torch.load(tmp_path / "straight" / "student" / "student.pth", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "student" / "student.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("options, message", [
    (["model.teacher.checkpoint=missing_teacher.pth"], "teacher checkpoint not found: missing_teacher.pth"),
    (["model.distiller.type=FitNet"], "unknown detection distiller 'FitNet'; valid choices: DETRDistill, GID"),
    (["train_cfg.max_epoch=2"], "did you mean 'max_epochs'"),
    (["model.student.bbox_head.num_classes=4"], "different class sets"),
])
def test_config_errors_name_the_key(trained_teacher, tmp_path, options, message):
    t_cfg, t_work = trained_teacher
    cfg = distill(tmp_path, "gid.py", retinanet(tmp_path, "s.py"), t_cfg, t_work / "student.pth", GID)
    proc = run_cli(["train", cfg, "--work-dir", tmp_path / "w", "--cfg-options", *options], check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "w").exists()


def test_distributed_training_with_two_cpu_processes(trained_teacher, tmp_path):
    t_cfg, t_work = trained_teacher
    cfg = distill(tmp_path, "gid.py", retinanet(tmp_path, "s.py"), t_cfg, t_work / "student.pth", GID)
    work = tmp_path / "ddp"
    run_cli(["train", cfg, "--work-dir", work, "--launcher", "pytorch"],
            prefix=[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "kdhub"])
    summary = json.loads((work / "summary.json").read_text())
    assert math.isfinite(summary["student"]["AP"]) and (work / "student" / "student.pth").is_file()
    log = next((work / "student").glob("*/*.log")).read_text()
    assert "world_size: 2" in log.replace("'", "").replace('"', "") or "Distributed training: True" in log


def test_a_method_mmdet_knows_through_custom_imports_is_accepted(tmp_path, monkeypatch):
    """As in segmentation: a distiller type that mmdet's MODELS registry knows from the config's custom_imports
    is built by name, without a kdhub registration."""
    from detection_helpers import load

    (tmp_path / "kdhub_probe_gid.py").write_text(
        "from mmdet.registry import MODELS\nfrom kdhub_detection.gid import GID\n\n\n"
        "@MODELS.register_module()\nclass ProbeGID(GID):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    teacher = retinanet(tmp_path, "t.py", base=16, fpn=32)
    (tmp_path / "t.pth").write_bytes(b"")  # loading checks only that it exists
    cfg = distill(tmp_path, "custom.py", retinanet(tmp_path, "s.py"), teacher, tmp_path / "t.pth", "dict(type='ProbeGID')")
    cfg.write_text(cfg.read_text() + "custom_imports = dict(imports=['kdhub_probe_gid'], allow_failed_imports=False)\n")
    loaded = load(cfg)
    assert loaded.method == "probegid" and loaded.cfg.model.distiller.type == "ProbeGID"
