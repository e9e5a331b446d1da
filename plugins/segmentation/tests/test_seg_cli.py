"""The segmentation task through the real launcher: train, export, eval, resume, bad input, DDP."""
import json
import math
import os
import sys

import pytest
import torch

from seg_helpers import run_cli, write_configs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One TransKD run: teacher trained first, baseline, distilled student (tiny)."""
    folder = tmp_path_factory.mktemp("transkd")
    cfg = write_configs(folder)
    work = folder / "work"
    proc = run_cli(["train", cfg, "--work-dir", work], env={"KDHUB_TENSORBOARD": "1"})
    return cfg, work, proc


def test_train_writes_summary_checkpoints_and_plain_mmseg_export(trained):
    cfg, work, proc = trained
    summary = json.loads((work / "summary.json").read_text())
    assert summary["method"] == "transkd-base"
    for role in ("teacher", "baseline", "student"):
        assert 0 <= summary[role]["mIoU"] <= 100 and math.isfinite(summary[role]["mIoU"]), role
    assert summary["params"]["teacher"] > summary["params"]["student"]
    assert summary["teacher_val"]["mIoU"] >= 0  # the teacher was validated once in the distillation run
    # training checkpoints hold the student and the distiller's modules, never the teacher, and load weights_only
    ckpt = torch.load(work / "student" / "iter_6.pth", weights_only=True)
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"student", "distiller"}
    assert ckpt["optimizer"]["param_groups"]
    # the export is a plain mmseg checkpoint of the student for its own config
    from mmseg.apis import inference_model, init_model
    model = init_model(str(work / "student" / "student_config.py"), str(work / "student" / "student_mmseg.pth"),
                       device="cpu")
    exported = torch.load(work / "student" / "student_mmseg.pth", weights_only=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in exported["state_dict"].items())
    assert model.dataset_meta["classes"][0] == "h-stripes"
    import numpy as np
    result = inference_model(model, np.zeros((32, 32, 3), np.uint8))
    assert result.pred_sem_seg.data.shape == (1, 32, 32)
    from kdhub_segmentation.export import export_student
    again = export_student(work / "student" / "iter_6.pth", work / "again.pth")
    assert all(torch.equal(v, exported["state_dict"][k])
               for k, v in torch.load(again, weights_only=True)["state_dict"].items())
    # the teacher ran as its own mmengine run and left a plain export too
    assert (work / "teacher" / "model_mmseg.pth").is_file() and (work / "baseline" / "model_mmseg.pth").is_file()


def test_the_run_is_watchable_in_train_log_and_tensorboard(trained):
    """KDHUB_TENSORBOARD=1: each sub-run's event files hold, by role, the evaluations and learning rates that
    mmengine's own visualiser recorded, and every term of the distillation loss."""
    from kdhub.testing import read_scalars
    from kdhub_openmmlab.testing import tensorboard_matches_mmengine
    _, work, _ = trained
    assert "[student] step 6:" in (work / "train.log").read_text()
    for role in ("teacher", "baseline", "student"):
        counts = tensorboard_matches_mmengine(work / role, role)
        assert counts["eval"] >= 3 and counts["lr"] >= 1, (role, counts)
    student = read_scalars(work / "student" / "tensorboard")
    assert {"train/loss", "train/loss_hcl", "train/loss_embed", "train/decode.loss_ce"} <= set(student)
    assert [step for step, _ in student["eval/teacher/mIoU"]] == [0]  # the frozen teacher, validated once


def test_eval_and_resume_reuse_the_run(trained):
    cfg, work, _ = trained
    summary = json.loads((work / "summary.json").read_text())
    out = run_cli(["eval", cfg, work / "student" / "student_mmseg.pth"]).stdout
    assert f"mIoU: {summary['student']['mIoU']:.4f}" in out
    again = run_cli(["train", cfg, "--work-dir", work, "--resume"])
    assert json.loads((work / "summary.json").read_text())["student"] == summary["student"]
    assert "Iter(train)" not in again.stdout + again.stderr  # finished sub-runs are reused
    refused = run_cli(["train", cfg, "--work-dir", work], check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr


def kdhub_main(args, capsys):
    """The launcher in this process (``kdhub.cli.main``): what it returns, prints and reports."""
    from kdhub.cli import main
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_teacher_checkpoint_url_is_fetched_once_verified_and_used(trained, tmp_path):
    """The trained teacher's export served over HTTP as a released checkpoint would be (hash in its name): the
    run downloads it into torch.hub's cache once and tests the same teacher (same mIoU) as the local file."""
    import hashlib

    from kdhub.testing import FileServer
    cfg, work, _ = trained
    body = (work / "teacher" / "model_mmseg.pth").read_bytes()
    name = f"segformer_teacher-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    env = {"TORCH_HOME": str(tmp_path / "torch")}
    with FileServer({f"/released/{name}": body}) as server:
        url = server.url(f"/released/{name}")
        args = ["train", cfg, "--work-dir", tmp_path / "w", "--cfg-options", f"model.teacher.checkpoint={url}",
                "baseline=False"]
        run_cli(args, env=env)
        run_cli(args + ["--resume"], env=env)
        assert server.requests == [f"/released/{name}"]
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    cached = tmp_path / "torch" / "hub" / "checkpoints" / name
    assert summary["teacher_checkpoint"] == str(cached) and cached.read_bytes() == body
    assert summary["teacher"] == json.loads((work / "summary.json").read_text())["teacher"]


def test_resume_continues_exactly(tmp_path, capsys):
    write_configs(tmp_path)
    cfg = tmp_path / "student.py"
    assert kdhub_main(["train", cfg, "--work-dir", tmp_path / "straight"], capsys)[0] == 0
    assert kdhub_main(["train", cfg, "--work-dir", tmp_path / "cut", "--cfg-options", "train_cfg.max_iters=3"],
                      capsys)[0] == 0
    (tmp_path / "cut" / "result.json").unlink()  # as if the run had been interrupted after iteration 3
    assert kdhub_main(["train", cfg, "--work-dir", tmp_path / "cut", "--resume"], capsys)[0] == 0
    a = torch.load(tmp_path / "straight" / "model_mmseg.pth", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "model_mmseg.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _broken_folder(tmp_path, missing_mask=False, bad_label=False):
    import numpy as np
    from PIL import Image
    for split in ("train", "val", "test"):
        for sub in ("img_dir", "ann_dir"):
            (tmp_path / "data" / sub / split).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "data" / "img_dir" / split / f"{i}.png")
            mask = np.zeros((32, 32), np.uint8)
            if bad_label and i == 2:
                mask[0, 0] = 12
            if not (missing_mask and i == 1):
                Image.fromarray(mask).save(tmp_path / "data" / "ann_dir" / split / f"{i}.png")
    return [f"{k}_dataloader.dataset.data_root={tmp_path / 'data'}" for k in ("train", "val", "test")]


@pytest.mark.parametrize("case, message", [
    ("teacher", "model.teacher.checkpoint': file not found"),
    ("stages", "model.student.backbone.num_stages (4) != model.teacher.backbone.num_stages (3)"),
    ("typo", "did you mean 'train_cfg'"),
    ("variant", "model.distiller.variant"),
    ("mask", "1.png: its mask"),
    ("label", "mask labels [12] are outside the class list"),
])
def test_bad_input_is_named_without_traceback(tmp_path, capsys, case, message):
    write_configs(tmp_path)
    cfg, options = tmp_path / "transkd.py", []
    if case == "teacher":
        options = ["model.teacher.checkpoint=missing_teacher.pth"]
    elif case == "stages":
        options = ["model.teacher.backbone.num_stages=3",
                   "model.teacher.backbone.num_layers=[1,1,1]", "model.teacher.backbone.num_heads=[1,2,5]",
                   "model.teacher.backbone.patch_sizes=[7,3,3]", "model.teacher.backbone.strides=[4,2,2]",
                   "model.teacher.backbone.sr_ratios=[8,4,2]", "model.teacher.backbone.out_indices=[0,1,2]",
                   "model.teacher.decode_head.in_channels=[16,32,80]", "model.teacher.decode_head.in_index=[0,1,2]"]
    elif case == "typo":
        options = ["trian_cfg.max_iters=1"]
    elif case == "variant":
        options = ["model.distiller.variant=big"]
    else:
        cfg = tmp_path / "student.py"
        options = _broken_folder(tmp_path, missing_mask=case == "mask", bad_label=case == "label")
    code, _, err = kdhub_main(["train", cfg, "--work-dir", tmp_path / "w", "--cfg-options", *options], capsys)
    assert code == 2 and message in err and "Traceback" not in err, err[-2000:]
    assert not (tmp_path / "w" / "summary.json").exists() and not list((tmp_path / "w").rglob("*.pth"))


def test_two_nodes_match_one_process_and_share_no_file(tmp_path):
    """Two single-process torchrun "nodes" (c10d rendezvous on localhost, gloo) sharing one work dir: mmengine
    trains with DDP over both, the student ends within tolerance of the one-process run, and no file is
    written by both ranks."""
    from kdhub.testing import run_nodes, shared_writes

    cfg = write_configs(tmp_path, extra="baseline = False\n")
    run_cli(["train", cfg, "--work-dir", tmp_path / "one"], env={"OMP_NUM_THREADS": "1"})
    work = tmp_path / "ddp"
    procs, writes = run_nodes(["train", cfg, "--work-dir", work, "--launcher", "pytorch"], tmp_path / "audit")
    assert all(p.returncode == 0 for p in procs), "".join(p.stdout + p.stderr for p in procs)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    summary = json.loads((work / "summary.json").read_text())
    assert math.isfinite(summary["student"]["mIoU"]) and "baseline" not in summary
    assert abs(summary["student"]["mIoU"] - one["student"]["mIoU"]) <= 10
    assert (work / "student" / "student_mmseg.pth").is_file() and (work / "teacher" / "iter_8.pth").is_file()
    log = next((work / "student").glob("*/*.log")).read_text()
    assert "Distributed training: True" in log and "GPU number: 2" in log  # mmengine's DDP over 2 processes
    assert not any("terminate called" in p.stderr for p in procs)
    assert sorted(writes) == [0, 1] and not shared_writes(writes, tmp_path)


def test_resume_after_sigkill_ends_bit_identical(tmp_path):
    """mmengine's Runner: a run killed (SIGKILL) after its first checkpoint, then resumed, ends with exactly
    the model of an uninterrupted run."""
    from kdhub.testing import kill_when

    write_configs(tmp_path, iters=12)
    cfg = tmp_path / "student.py"
    env = {**os.environ, "KDHUB_PROGRESS": "0", "PYTHONWARNINGS": "ignore"}
    run_cli(["train", cfg, "--work-dir", tmp_path / "straight"])
    cut = tmp_path / "cut"
    killed = kill_when([sys.executable, "-m", "kdhub", "train", str(cfg), "--work-dir", str(cut)],
                       lambda: (cut / "last_checkpoint").is_file(), env=env)
    assert killed and not (cut / "result.json").exists()
    run_cli(["train", cfg, "--work-dir", cut, "--resume"])
    a = torch.load(tmp_path / "straight" / "model_mmseg.pth", weights_only=True)["state_dict"]
    b = torch.load(cut / "model_mmseg.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
