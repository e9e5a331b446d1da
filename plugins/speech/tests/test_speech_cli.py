"""The speech task through the real launcher: end to end, resume, eval, bad input, teacher-only, DDP."""
import json
import math
import os
import sys

import pytest
import torch

from kdhub_speech.data import read_manifest
from speech_helpers import run_cli, tiny_config


def test_train_writes_summary_metrics_csv_examples_and_resumes(tmp_path, tiny_data):
    cfg = tiny_config(tmp_path)
    work = tmp_path / "run"
    first = run_cli(["train", cfg, "--work-dir", work])
    assert "kdhub: [student] epoch 2/2: loss " in first.stderr         # the epoch summaries on the console
    summary = json.loads((work / "summary.json").read_text())
    for role in ("teacher", "baseline", "student"):
        assert {"si-snr", "si-snri", "sdr", "sdri"} <= set(summary[role]), role
    assert summary["world_size"] == 1 and summary["batches_per_epoch"] == {"teacher": 4, "student": 4,
                                                                           "baseline": 4}
    assert summary["params"]["teacher"] > summary["params"]["student"]
    rows = (work / "student" / "test_results.csv").read_text().splitlines()
    assert rows[0] == "ID,si-snr,si-snri,sdr,sdri" and len(rows) == 5
    assert sorted(p.name for p in (work / "student" / "examples").iterdir()) == \
        ["test_00000_mix.wav", "test_00000_s1_est.wav", "test_00000_s2_est.wav"]
    state = torch.load(work / "student" / "model.pth", weights_only=True)
    assert any(k.startswith("masknet.") for k in state)
    again = run_cli(["train", cfg, "--work-dir", work, "--resume"])
    assert json.loads((work / "summary.json").read_text())["student"] == summary["student"]
    assert "] epoch " not in again.stderr                                # finished sub-runs are reused
    out = run_cli(["eval", cfg, work / "student" / "model.pth"]).stdout
    assert f"si-snri: {summary['student']['si-snri']:.4f}" in out
    # eval reads the test manifest only: the training and validation ones need not exist where it runs
    test_only = run_cli(["eval", cfg, work / "student" / "model.pth", "--cfg-options", "data.source=csv",
                         f"data.test_csv={tiny_data / 'test.csv'}", "data.train_csv=/nowhere/train.csv",
                         "data.valid_csv=/nowhere/valid.csv"]).stdout
    assert f"si-snri: {summary['student']['si-snri']:.4f}" in test_only
    refused = run_cli(["train", cfg, "--work-dir", work], check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr


@pytest.mark.parametrize("options, message", [
    (["teacher_checkpoint=missing_teacher.pth"], "teacher_checkpoint"),
    (["distill.features.pairs=[['masknet.nope', 'masknet.dual_mdl.0']]"], "distill.features.pairs"),
    (["trainng.epochs=1"], "did you mean training"),
    (["data.on_bad=ignore"], "data.on_bad"),
    (["distill.cache=true", "data.random_crop=true"], "distill.cache"),
    (["distill.unlabelled_rest=true"], "training.limit"),
    (["data.unlabelled_csv=nowhere.csv"], "data.unlabelled_csv"),
    (["training.batch_size=0"], "key 'training.batch_size' must be at least 1, got 0"),
    (["training.epochs=0"], "key 'training.epochs' must be at least 1, got 0"),
])
def test_config_errors_name_the_key(tmp_path, options, message):
    proc = run_cli(["train", tiny_config(tmp_path), "--work-dir", tmp_path / "w", "--cfg-options", *options],
                   check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "w" / "summary.json").exists()


def _csv_config(tmp_path, tiny_data, train_csv):
    """The tiny config on CSV manifests: ``train_csv``, and the embedded valid / test splits."""
    for split in ("valid", "test"):
        (tmp_path / f"{split}.csv").write_text((tiny_data / f"{split}.csv").read_text()
                                               .replace("$data_root", str(tiny_data)))
    extra = (f"    source: csv\n    train_csv: {train_csv}\n    valid_csv: {tmp_path / 'valid.csv'}\n"
             f"    test_csv: {tmp_path / 'test.csv'}\n")
    cfg = tiny_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("    source: embedded\n", extra))
    return cfg


def test_bad_manifest_stops_before_anything_is_written(tmp_path, tiny_data):
    rows = (tiny_data / "train.csv").read_text().replace("$data_root", str(tiny_data)).splitlines()
    bad = rows[:4] + [rows[4].replace("/s2/", "/nowhere/")]
    (tmp_path / "train.csv").write_text("\n".join(bad) + "\n")
    cfg = _csv_config(tmp_path, tiny_data, tmp_path / "train.csv")
    proc = run_cli(["train", cfg, "--work-dir", tmp_path / "w"], check=False)
    assert proc.returncode == 2
    assert "train.csv, row 5 (ID train_00003): s2_wav" in proc.stderr and "file not found" in proc.stderr
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.pth"))
    skip = run_cli(["train", cfg, "--work-dir", tmp_path / "w2", "--cfg-options", "data.on_bad=skip",
                    "teacher_training.epochs=1", "training.epochs=1", "baseline=false"])
    notice = "skipped 1 bad manifest row(s) (data.on_bad=skip); first: "
    assert f"kdhub: {notice}" in skip.stderr                                 # on the console
    assert f"INFO kdhub.speech: {notice}" in (tmp_path / "w2" / "train.log").read_text()
    assert json.loads((tmp_path / "w2" / "summary.json").read_text())["skipped"] == 1


def test_teacher_only_distillation_on_mixtures_without_references(tmp_path, tiny_data):
    man = read_manifest(tiny_data / "train.csv", 2, 8000)
    (tmp_path / "mixtures.csv").write_text("ID,mix_wav\n" + "".join(f"{k},{r['mix_wav']}\n" for k, r in man.rows.items()))
    cfg = _csv_config(tmp_path, tiny_data, tmp_path / "mixtures.csv")
    # the teacher needs references to train, so it comes from a first run on the embedded set
    first = tmp_path / "first"
    run_cli(["train", tiny_config(tmp_path, name="t.yaml"), "--work-dir", first,
             "--cfg-options", "training.epochs=1", "baseline=false"])
    work = tmp_path / "w"
    run_cli(["train", cfg, "--work-dir", work, "--cfg-options", "distill.teacher_only=true", "baseline=false",
             f"teacher_checkpoint={first / 'teacher' / 'model.pth'}"])
    summary = json.loads((work / "summary.json").read_text())
    assert "baseline" not in summary and math.isfinite(summary["student"]["si-snri"])
    missing_refs = run_cli(["train", cfg, "--work-dir", tmp_path / "w3"], check=False)
    assert missing_refs.returncode == 2 and "s1_wav" in missing_refs.stderr


def test_labelled_subset_with_unlabelled_mixtures_and_a_baseline_of_the_same_budget(tmp_path, tiny_data):
    valid = read_manifest(tiny_data / "valid.csv", 2, 8000)
    (tmp_path / "mixtures.csv").write_text("ID,mix_wav\n" + "".join(f"u{k},{r['mix_wav']}\n" for k, r in valid.rows.items()))
    work = tmp_path / "w"
    run_cli(["train", tiny_config(tmp_path), "--work-dir", work, "--cfg-options", "training.limit=4",
             "distill.unlabelled_rest=true", f"data.unlabelled_csv={tmp_path / 'mixtures.csv'}", "distill.cache=true",
             "training.epochs=1"])
    summary = json.loads((work / "summary.json").read_text())
    assert summary["student_data"] == {"labelled": 4, "unlabelled": 16, "baseline_epochs": 5}
    assert math.isfinite(summary["student"]["si-snri"]) and math.isfinite(summary["baseline"]["si-snri"])
    cache = next((work / "teacher_cache").glob("*.pt"))
    assert len(torch.load(cache, weights_only=True)["ids"]) == 20


def test_two_nodes_match_one_process_and_share_no_file(tmp_path):
    """Two single-process torchrun "nodes" (c10d rendezvous on localhost, gloo) sharing one work dir: each rank
    sees half of every epoch, the student ends within tolerance of the one-process run, no file is written by
    both ranks."""
    from kdhub.testing import run_nodes, shared_writes

    cfg = tiny_config(tmp_path, extra="baseline: false\n")
    opts = ["--cfg-options", "distill.cache=true"]
    run_cli(["train", cfg, "--work-dir", tmp_path / "one", *opts], env={"OMP_NUM_THREADS": "1"})
    work = tmp_path / "ddp"
    procs, writes = run_nodes(["train", cfg, "--work-dir", work, "--launcher", "pytorch", *opts], tmp_path / "audit")
    assert all(p.returncode == 0 for p in procs), "".join(p.stdout + p.stderr for p in procs)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    summary = json.loads((work / "summary.json").read_text())
    # a few steps on 16 mixtures: far from converged, so the two runs' orders of data differ by dBs
    assert abs(summary["student"]["si-snri"] - one["student"]["si-snri"]) <= 6.0
    # 16 training mixtures, batches of 4: each of the two ranks saw half of every epoch
    assert summary["world_size"] == 2 and summary["batches_per_epoch"] == {"teacher": 2, "student": 2}
    assert len(list((work / "teacher_cache").glob("*.pt"))) == 1
    assert (work / "student" / "model.pth").is_file()
    assert sorted(writes) == [0, 1] and not shared_writes(writes, tmp_path)


def test_resume_after_sigkill_ends_bit_identical(tmp_path):
    """SpeechBrain's Brain: a run killed (SIGKILL) after the student's first epoch checkpoint, then resumed,
    ends with exactly the student of an uninterrupted run."""
    from kdhub.testing import kill_when

    cfg = tiny_config(tmp_path, extra="baseline: false\n")
    opts = ["--cfg-options", "training.epochs=4"]
    env = {**os.environ, "KDHUB_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    run_cli(["train", cfg, "--work-dir", tmp_path / "straight", *opts], env=env)
    cut = tmp_path / "cut"
    saves = cut / "student" / "save"
    killed = kill_when([sys.executable, "-m", "kdhub", "train", str(cfg), "--work-dir", str(cut), *opts],
                       lambda: any(saves.glob("CKPT*/CKPT.yaml")), env=env)
    assert killed and not (cut / "student" / "result.json").exists()
    run_cli(["train", cfg, "--work-dir", cut, "--resume", *opts], env=env)
    a = torch.load(tmp_path / "straight" / "student" / "model.pth", weights_only=True)
    b = torch.load(cut / "student" / "model.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_validation_does_not_depend_on_the_batch_size_when_mixtures_differ_in_length(tmp_path, tiny_data):
    """A padded batch changes the separator's output and the SI-SNR over it; the validation SI-SNR keeps the best
    checkpoint and steps the scheduler, so it must be the same at any batch size. With the learning rate 0 the
    model stays as initialised, and the kept checkpoint's validation SI-SNR is compared across batch sizes."""
    import yaml
    from test_speech_data import _cropped_set

    varied = _cropped_set(tiny_data, tmp_path / "varied", [4000, 2500, 3300, 1700])
    cfg = tiny_config(tmp_path)
    scores = {}
    for batch in (1, 4):
        work = tmp_path / f"b{batch}"
        run_cli(["train", cfg, "--work-dir", work, "--cfg-options", "method=supervised", "data.source=csv",
                 f"data.train_csv={tiny_data / 'train.csv'}", f"data.valid_csv={varied}", f"data.test_csv={varied}",
                 "training.lr=0.0", "training.epochs=1", f"training.batch_size={batch}"])
        (kept,) = (work / "student" / "save").glob("CKPT+*")
        scores[batch] = yaml.safe_load((kept / "CKPT.yaml").read_text())["si-snr"]
    assert scores[4] == scores[1]
