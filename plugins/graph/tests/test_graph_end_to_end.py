"""The graph task through the real launcher on tiny generated graphs."""
import json
import os
import sys

import pytest
import torch

from graph_helpers import SHARED, run_cli, write_npz


def test_glnn_beats_baseline_and_student_needs_no_graph(tiny, tmp_path):
    cfg = tiny(seeds=[0, 1])
    work = tmp_path / "run"
    run_cli(["train", cfg, "--work-dir", work], env={"KDHUB_TENSORBOARD": "1"})
    s = json.loads((work / "summary.json").read_text())
    _check_watchable(work, s)
    assert s["task"] == "graph" and s["method"] == "glnn" and len(s["per_seed"]) == 2
    assert s["params"]["teacher"] > 0 and s["params"]["student"] > 0
    # on a homophilous CSBM with fixed seeds, the distilled MLP beats the same MLP trained on labels
    assert s["student"]["test_acc"] > s["baseline"]["test_acc"] + 3, s
    assert all(not r["soft_labels_cached"] for r in s["per_seed"])
    # the exported student evaluates from features alone
    ckpt = s["student_checkpoint"]
    assert s["teacher_checkpoint"] == s["per_seed"][0]["teacher_checkpoint"] and ckpt == s["per_seed"][0]["student"]["checkpoint"]
    state = torch.load(ckpt, weights_only=True)
    assert set(state) >= {"student", "seed", "in_channels", "num_classes"}
    out = run_cli(["eval", cfg, ckpt]).stdout
    assert f"test_acc: {s['per_seed'][0]['student']['test_acc']:.4f}" in out
    from kdhub.testing import FileServer
    with FileServer({"/models/student.pth": open(ckpt, "rb").read()}) as server:  # the same file, by URL
        by_url = run_cli(["eval", cfg, server.url("/models/student.pth")], env={"TORCH_HOME": str(tmp_path / "th")})
    assert f"test_acc: {s['per_seed'][0]['student']['test_acc']:.4f}" in by_url.stdout
    folder = run_cli(["eval", cfg, work], check=False)
    assert folder.returncode == 2 and f"checkpoint {work} is a folder; give the checkpoint file" in folder.stderr


def _check_watchable(work, summary):
    """The run's train.log, resolved config and TensorBoard events (KDHUB_TENSORBOARD=1), checked against what
    the run itself recorded elsewhere: the config file it was given and its checkpoints' selected metrics."""
    import yaml
    from kdhub.testing import read_scalars
    resolved = yaml.safe_load((work / "config.yaml").read_text())
    assert resolved["seeds"] == [0, 1] and resolved["student"]["epochs"] == 80
    log = (work / "train.log").read_text()
    assert "[teacher] step 1:" in log and "[student] student evaluation at step" in log
    for role in ("teacher", "baseline", "student"):
        scalars = read_scalars(work / "seed_0" / role / "tensorboard")
        lr = resolved[role if role != "baseline" else "student"]["lr"]  # event files hold float32
        assert [v for _, v in scalars["train/lr"]] == pytest.approx([lr] * len(scalars["train/lr"]), rel=1e-6)
        steps = [s for s, _ in scalars["train/loss"]]
        assert steps == sorted(steps) and len(steps) == len(scalars[f"eval/{role}/val_acc"])
        # the checkpoint's selected metrics are the best validation accuracy among the logged evaluations
        best = torch.load(sorted((work / "seed_0" / role / "checkpoints").glob("epoch_*.pth"))[-1],
                          weights_only=True)["best_metrics"]
        assert max(v for _, v in scalars[f"eval/{role}/val_acc"]) == pytest.approx(best["val_acc"], abs=1e-4)


def test_ffg2m_reuses_cached_soft_labels_and_resume_skips_finished_work(tiny, tmp_path):
    cfg = tiny()
    run_cli(["train", cfg, "--work-dir", tmp_path / "glnn"])
    teacher = tmp_path / "glnn" / "seed_{seed}" / "teacher" / "teacher.pth"
    run_cli(["train", cfg, "--work-dir", tmp_path / "ff", "--cfg-options", "method=ffg2m",
             f"teacher.checkpoint={teacher}", "baseline=false", "student.epochs=30"])
    s = json.loads((tmp_path / "ff" / "summary.json").read_text())
    assert s["method"] == "ffg2m" and s["per_seed"][0]["soft_labels_cached"] is True
    assert "baseline" not in s
    before = (tmp_path / "glnn" / "seed_0" / "student.pth").stat().st_mtime_ns
    run_cli(["train", cfg, "--work-dir", tmp_path / "glnn", "--resume"])
    assert (tmp_path / "glnn" / "seed_0" / "student.pth").stat().st_mtime_ns == before


def test_inductive_and_production_metrics(tiny, tmp_path):
    cfg = tiny(setting="production", baseline=False, **{"teacher__model": "gcn", "student__epochs": 30})
    run_cli(["train", cfg, "--work-dir", tmp_path / "w"])
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    st = s["student"]
    assert {"test_acc_tran", "test_acc_ind", "test_acc_prod"} <= set(st)
    assert abs(st["test_acc_prod"] - (0.8 * st["test_acc_tran"] + 0.2 * st["test_acc_ind"])) < 1e-6
    assert st["test_acc"] == st["test_acc_prod"]


def test_gat_teacher_trains(tiny, tmp_path):
    cfg = tiny(method="none", **{"teacher__model": "gat", "teacher__hidden": 8, "teacher__heads": 2,
                                 "teacher__epochs": 10, "student__epochs": 10})
    run_cli(["train", cfg, "--work-dir", tmp_path / "w"])
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert s["teacher"]["test_acc"] > 40 and s["student"] == s["baseline"]


def test_bad_inputs_give_clear_errors(tiny, tmp_path):
    proc = run_cli(["train", tiny(data={"source": "planetoid", "name": "Cora", "root": str(tmp_path / "none")})],
                   check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"looked for {tmp_path / 'none' / 'Cora' / 'raw' / 'ind.cora.x'}" in proc.stderr

    npz = write_npz(tmp_path / "g.npz", drop=("labels",))
    proc = run_cli(["train", tiny(data={"source": "npz", "path": str(npz)})], check=False)
    assert "lacks key(s) labels" in proc.stderr

    cfg = tiny()
    run_cli(["train", cfg, "--work-dir", tmp_path / "t", "--cfg-options", "method=none", "baseline=false",
             "student.epochs=1"])
    other = tiny(**{"data__csbm__features": 24})
    proc = run_cli(["train", other, "--cfg-options", f"teacher.checkpoint={tmp_path / 't/seed_0/teacher/teacher.pth'}"],
                   check=False)
    assert "trained for 16 features and 3 classes, but the data has 24 features and 3 classes" in proc.stderr

    proc = run_cli(["train", cfg, "--cfg-options", "teacher.fanout=[5]"], check=False)
    assert "teacher.fanout has 1 entries but teacher.layers is 2" in proc.stderr
    proc = run_cli(["train", cfg, "--cfg-options", "teacher.model=gin"], check=False)
    assert "valid choices: gat, gcn, sage" in proc.stderr


def test_nan_loss_stops_the_run(tmp_path, tiny):
    """Finite data, and a learning rate that blows the teacher's weights up (a NaN in the data is refused when the
    graph is loaded, test_graph_user_data.py)."""
    npz = write_npz(tmp_path / "g.npz", per_class=3)
    cfg = tiny(data={"source": "npz", "path": str(npz), "split": {"train_per_class": 1, "val_per_class": 1}})
    proc = run_cli(["train", cfg, "--work-dir", tmp_path / "w", "--cfg-options", "teacher.lr=1e30"], check=False)
    assert proc.returncode == 2 and "loss became nan" in proc.stderr and "Traceback" not in proc.stderr


def test_planetoid_from_read_only_root(tiny, tmp_path):
    root = SHARED / "planetoid"
    assert root.is_dir(), f"shared test data missing at {root}: set KDHUB_SHARED_DATA to the folder with planetoid/"
    cfg = tiny(method="none", baseline=True, data={"source": "pyg", "name": "Cora", "root": str(root)},
               **{"teacher__epochs": 2, "student__epochs": 2})
    run_cli(["train", cfg, "--work-dir", tmp_path / "w"])
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert s["params"]["student"] == 1433 * 32 + 32 + 32 * 7 + 7


def test_two_nodes_match_one_process_and_share_no_file(tiny, tmp_path):
    """Two single-process torchrun "nodes" (c10d rendezvous on localhost, gloo) sharing one work dir, as on a
    shared filesystem: the student ends within a few points of the one-process run, and no file is written by
    both ranks. Both "nodes" pin the CPU: on a one-GPU machine they would otherwise share its GPU, which NCCL
    refuses."""
    from kdhub.testing import run_nodes, shared_writes

    cfg = tiny(device="cpu", **{"student__batch_size": 64, "student__epochs": 20, "teacher__epochs": 10})
    run_cli(["train", cfg, "--work-dir", tmp_path / "one"])
    procs, writes = run_nodes(["train", cfg, "--work-dir", tmp_path / "nodes", "--launcher", "pytorch"],
                              tmp_path / "audit")
    assert all(p.returncode == 0 for p in procs), "".join(p.stdout + p.stderr for p in procs)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "nodes" / "summary.json").read_text())
    assert abs(two["student"]["test_acc"] - one["student"]["test_acc"]) <= 8
    assert abs(two["teacher"]["test_acc"] - one["teacher"]["test_acc"]) <= 8
    assert (tmp_path / "nodes" / "seed_0" / "student.pth").is_file()
    assert sorted(writes) == [0, 1] and not shared_writes(writes, tmp_path)
    assert any(w.endswith("summary.json") for w in writes[0])


def test_more_bad_inputs(tiny, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    proc = run_cli(["train", tiny(data={"source": "npz", "path": str(bad)})], check=False)
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(["train", tiny(**{"data__csbm__homophily": 1.5})], check=False)
    assert "data.csbm needs 0 <= homophily <= 1" in proc.stderr
    proc = run_cli(["train", tiny(), "--launcher", "pytorch"], check=False)
    assert proc.returncode == 2 and "torchrun" in proc.stderr and "Traceback" not in proc.stderr
    work = tmp_path / "w"
    cfg = tiny(**{"student__epochs": 5, "teacher__epochs": 3, "baseline": False})
    run_cli(["train", cfg, "--work-dir", work])
    (work / "seed_0" / "student" / "result.json").unlink()  # pretend the student was interrupted
    proc = run_cli(["train", cfg, "--work-dir", work, "--resume", "--cfg-options", "student.hidden=64"], check=False)
    assert proc.returncode == 2 and "does not fit this model" in proc.stderr and "new --work-dir" in proc.stderr


def test_resume_after_sigkill_ends_bit_identical(tiny, tmp_path):
    """The core Trainer: a run killed (SIGKILL) after its student's first checkpoint, then resumed, ends with
    exactly the student of an uninterrupted run."""
    from kdhub.testing import kill_when

    cfg = tiny(**{"student__epochs": 300, "student__patience": 1000, "checkpoint_interval": 5})
    env = {**os.environ, "KDHUB_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    run_cli(["train", cfg, "--work-dir", tmp_path / "straight"], env=env)
    cut = tmp_path / "cut"
    ckpts = cut / "seed_0" / "student" / "checkpoints"
    killed = kill_when([sys.executable, "-m", "kdhub", "train", str(cfg), "--work-dir", str(cut)],
                       lambda: any(ckpts.glob("epoch_*.pth")), env=env)
    assert killed and not (cut / "seed_0" / "student" / "result.json").exists()
    run_cli(["train", cfg, "--work-dir", cut, "--resume"], env=env)
    a = torch.load(tmp_path / "straight" / "seed_0" / "student.pth", weights_only=True)["student"]
    b = torch.load(cut / "seed_0" / "student.pth", weights_only=True)["student"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((cut / "summary.json").read_text())["student"] == \
        json.loads((tmp_path / "straight" / "summary.json").read_text())["student"]


def test_released_glnn_schedule_steps_a_ce_pass_then_a_kd_pass(tiny, tmp_path):
    """student.schedule=released on the tiny graph (600 nodes, 3 classes x 10 labelled, transductive): one epoch is
    max(1, 30 // 64) = 1 CE step plus 600 // 64 = 9 KD steps, so the epoch-1 checkpoint records 10 steps."""
    cfg = tiny(student__epochs=1, student__batch_size=64, student__schedule="released", baseline=False)
    work = tmp_path / "released"
    run_cli(["train", cfg, "--work-dir", work])
    state = torch.load(work / "seed_0" / "student" / "checkpoints" / "epoch_1.pth", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 10)
    bad = run_cli(["train", tiny(method="ffg2m", student__schedule="released"), "--work-dir", tmp_path / "x"],
                  check=False)
    assert bad.returncode == 2 and "student.schedule 'released'" in bad.stderr and not (tmp_path / "x").exists()
