"""Speech runs as SpeechBrain users expect them: optimiser and scheduler from the hyperpyyaml, stepped on the
validation loss as recipes/LibriMix/separation/train.py does; train_log.txt and hyperparams.yaml in each
sub-run; Brain's per-batch progress bar unless KDHUB_PROGRESS=0; the training and validation values in train.log
and TensorBoard at the global optimisation step; the LibriMix recipes' defaults equal to SpeechBrain's published
SepFormer recipe (recipes/LibriMix/separation/hparams/sepformer-libri2mix.yaml)."""
import functools
from pathlib import Path

import pytest
import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.nnet.schedulers import ReduceLROnPlateau
from speechbrain.utils.train_logger import FileTrainLogger

from kdhub.testing import read_scalars
from kdhub_speech.brain import SeparationBrain
from speechbrain_values import SEPFORMER_LIBRI2MIX
from speech_helpers import load, tiny_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

RECIPE_TRAINING = """lr: 0.001
optimizer: !name:torch.optim.Adam
    lr: !ref <lr>
    weight_decay: 0.001
lr_scheduler: !new:speechbrain.nnet.schedulers.ReduceLROnPlateau
    factor: 0.5
    patience: 2
    dont_halve_until_epoch: 2
"""


def recipe_config(tmp_path, extra=RECIPE_TRAINING):
    """The tiny config with the optimiser and scheduler in the hyperpyyaml (no lr in the training sections)."""
    path = tiny_config(tmp_path, extra=extra)
    path.write_text(path.read_text().replace(", lr: 0.002}", "}"))
    return path


def test_reduce_lr_on_plateau_halves_the_lr_when_the_valid_loss_stops_improving(tmp_path):
    """Worked by hand from ReduceLROnPlateau's rule (factor 0.5, patience 2, not before epoch 2): epochs 1-2 only
    set the anchor (-6); epoch 3 improves it (-7); epochs 4-5 are worse (patience 1, 2); epoch 6 is worse again:
    halve to 5e-4; epoch 7 improves (-7.5); 8-9 are worse; epoch 10 halves again to 2.5e-4."""
    hp = load_hyperpyyaml(RECIPE_TRAINING)
    student = load(recipe_config(tmp_path)).cfg["student_model"]
    log = tmp_path / "train_log.txt"
    brain = SeparationBrain(student, epochs=10, steps_per_epoch=1, num_spks=2, opt_class=hp["optimizer"],
                            lr_scheduler=hp["lr_scheduler"], train_logger=FileTrainLogger(str(log)),
                            run_opts={"device": "cpu", "noprogressbar": True})
    brain.on_fit_start()
    valid_losses = [-5.0, -6.0, -7.0, -6.5, -6.8, -6.9, -7.5, -7.0, -7.1, -7.2]
    trained_with = []
    for epoch, loss in enumerate(valid_losses, start=1):
        brain.on_stage_start(sb.Stage.TRAIN, epoch)
        brain.step = 1
        brain.on_stage_end(sb.Stage.TRAIN, 1.5, epoch)
        trained_with.append(brain.optimizer.param_groups[0]["lr"])
        brain.on_stage_end(sb.Stage.VALID, loss, epoch)
    assert trained_with == [1e-3] * 6 + [5e-4] * 4
    assert brain.optimizer.param_groups[0]["lr"] == 2.5e-4
    assert brain.optimizer.param_groups[0]["weight_decay"] == 0.001
    lines = log.read_text().splitlines()
    assert len(lines) == 10
    assert lines[5] == "epoch: 6, lr: 1.00e-03 - train loss: 1.50 - valid loss: -6.90e+00, valid si-snr: 6.90"
    assert lines[6].startswith("epoch: 7, lr: 5.00e-04 - ")


def _as_logged(text: str):
    """A value FileTrainLogger wrote (``1.50`` or ``-6.90e+00``: two decimals) as an approx of that precision."""
    exponent = int(text.split("e")[1]) if "e" in text else 0
    return pytest.approx(float(text), abs=0.0051 * 10 ** exponent)


def test_kdhub_train_takes_optimiser_scheduler_and_keeps_train_log_hyperparams_and_tensorboard(tmp_path, capsys,
                                                                                               monkeypatch):
    from kdhub.cli import main
    from kdhub_speech.plugin import kdhub_load_config

    monkeypatch.setenv("KDHUB_PROGRESS", "1")
    monkeypatch.setenv("KDHUB_TENSORBOARD", "1")
    cfg = recipe_config(tmp_path)
    work = tmp_path / "w"
    assert main(["train", str(cfg), "--work-dir", str(work), "--cfg-options", "baseline=false", "lr=0.0005",
                 "training.epochs=3"]) == 0
    err = capsys.readouterr().err
    assert "100%|" in err and ("it/s]" in err or "s/it]" in err)      # Brain's tqdm bar, per batch
    for bar in ("checking train.csv [", "[teacher] test [", "[student] test ["):   # kdhub's own bars
        assert bar in err
    assert "kdhub: [student] epoch 3/3: loss " in err                   # the epoch summary on the console

    # 16 training mixtures in batches of 4 (speech_helpers.TINY_DATA, tiny_config): 4 optimisation steps an epoch;
    # log_interval (50) is longer, so each epoch is reported once, at its last step
    steps = 4
    log = (work / "train.log").read_text()
    assert "INFO kdhub.speech: [student] epoch 3/3: loss " in log        # and in train.log
    for role, epochs in (("teacher", 1), ("student", 3)):
        lines = (work / role / "train_log.txt").read_text().splitlines()
        assert [line.split(",")[0] for line in lines] == [f"epoch: {e}" for e in range(1, epochs + 1)]
        assert lines[0].startswith("epoch: 1, lr: 5.00e-04 - train loss: ") and "valid si-snr: " in lines[0]
        resolved = (work / role / "hyperparams.yaml").read_text()
        assert resolved.startswith("# Generated ") and "# yamllint disable" in resolved
        again = kdhub_load_config(work / role / "hyperparams.yaml", []).cfg
        assert again["optimizer"].keywords == {"lr": 0.0005, "weight_decay": 0.001}
        assert again["training"]["epochs"] == 3 and again["baseline"] is False
        assert isinstance(again["lr_scheduler"], ReduceLROnPlateau) and again["lr_scheduler"].patience == 2

        # TensorBoard against SpeechBrain's own records: train_log.txt's epoch lines and the best CKPT.yaml
        logged = [dict(item.split(": ") for item in line.replace(" - ", ", ").split(", ")) for line in lines]
        scalars = read_scalars(work / role / "tensorboard")
        ends = [steps * e for e in range(1, epochs + 1)]
        assert [s for s, _ in scalars[f"eval/{role}/si-snr"]] == ends        # the same global step as training
        assert [s for s, _ in scalars["train/loss"]] == [s for s, _ in scalars["train/lr"]] == ends
        for (_, si_snr), (_, loss), (_, lr), line in zip(scalars[f"eval/{role}/si-snr"], scalars["train/loss"],
                                                         scalars["train/lr"], logged):
            assert si_snr == _as_logged(line["valid si-snr"]) and loss == _as_logged(line["train loss"])
            assert lr == pytest.approx(0.0005) and lr == _as_logged(line["lr"])
        best = yaml.safe_load(next((work / role / "save").glob("CKPT+*/CKPT.yaml")).read_text())
        assert dict(scalars[f"eval/{role}/si-snr"])[steps * best["epoch"]] == pytest.approx(best["si-snr"], rel=1e-6)
        assert f"[{role}] step {ends[-1]}: loss=" in log
        assert f"[{role}] {role} evaluation at step {ends[-1]}: si-snr=" in log
    assert {"train/separation", "train/output", "train/features", "train/alpha"} <= set(scalars)
    # alpha at the reported step: tiny_config's linear shift 0.9 -> 0.1 over the 3 epochs, at each epoch's last
    # batch (progress (epoch - 1 + 3/4) / 3)
    assert [a for _, a in scalars["train/alpha"]] == pytest.approx([0.9 - 0.8 * (e - 0.25) / 3 for e in (1, 2, 3)])
    saved = max((work / "student" / "save").glob("CKPT+*"))
    optimizer = torch.load(saved / "optimizer.ckpt", weights_only=True)
    assert optimizer["param_groups"][0]["weight_decay"] == 0.001
    scheduler = torch.load(saved / "lr_scheduler.ckpt", weights_only=True)
    assert len(scheduler["losses"]) == 3                             # stepped once per validation


@pytest.mark.parametrize("extra, options, message", [
    (RECIPE_TRAINING, ["training.lr=0.01"], "training.lr is set, but the learning rate comes from 'optimizer'"),
    (RECIPE_TRAINING + "teacher_optimizer: !name:torch.optim.SGD {lr: 0.1}\n", ["teacher_training.lr=0.01"],
     "teacher_training.lr is set, but the learning rate comes from 'teacher_optimizer'"),
    ("optimizer: 3\n", [], "'optimizer' must be a !name: factory of a torch.optim optimiser"),
    ("optimizer: !name:torch.optim.Adam {betas: 3}\n", [], "'optimizer' could not build an optimiser"),
    ("lr_scheduler: !new:speechbrain.nnet.schedulers.NoamScheduler {lr_initial: 1, n_warmup_steps: 4}\n", [],
     "'lr_scheduler' is a NoamScheduler; kdhub steps a scheduler once per epoch on the validation loss"),
    ("lr_scheduler: !new:speechbrain.nnet.schedulers.NewBobScheduler {initial_value: 0.001}\n", [],
     "'lr_scheduler' is a NewBobScheduler; kdhub steps a scheduler once per epoch on the validation loss, as "
     "SpeechBrain's separation recipes do: use !new:speechbrain.nnet.schedulers.ReduceLROnPlateau, or null"),
])
def test_bad_optimiser_or_scheduler_is_named(tmp_path, capsys, extra, options, message):
    from kdhub.cli import main

    args = ["train", str(recipe_config(tmp_path, extra)), "--work-dir", str(tmp_path / "w")]
    assert main(args + (["--cfg-options", *options] if options else [])) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("extra, options, students, teacher", [
    (RECIPE_TRAINING, [], ("Adam", 0.001), ("Adam", 0.001)),                  # the teacher falls back to optimizer
    (RECIPE_TRAINING, ["teacher_training.lr=0.01"], ("Adam", 0.001), None),    # Adam at teacher_training.lr
    (RECIPE_TRAINING + "teacher_optimizer: !name:torch.optim.SGD {lr: 0.1}\n", [], ("Adam", 0.001), ("SGD", 0.1)),
    ("", [], None, None),                                                       # Adam at each section's lr
])
def test_which_optimiser_each_sub_run_gets(tmp_path, extra, options, students, teacher):
    from kdhub_speech.config import optimizer_for

    cfg = load(recipe_config(tmp_path, extra), options).cfg

    def described(factory):
        return None if factory is None else (factory.func.__name__, factory.keywords["lr"])
    assert described(optimizer_for(cfg, "optimizer")) == students
    assert described(optimizer_for(cfg, "teacher_optimizer")) == teacher


def test_configs_without_optimiser_train_with_adam_at_the_sections_lr(tmp_path):
    cfg = load(tiny_config(tmp_path)).cfg
    assert cfg["optimizer"] is None and cfg["lr_scheduler"] is None
    brain = SeparationBrain(cfg["student_model"], lr=cfg["training"]["lr"], epochs=1, steps_per_epoch=1,
                            num_spks=2, run_opts={"device": "cpu", "noprogressbar": True})
    brain.on_fit_start()
    assert type(brain.optimizer) is torch.optim.Adam and brain.optimizer.param_groups[0]["lr"] == 0.002


@pytest.mark.parametrize("name", ["librimix_sepformer_to_convtasnet", "librimix_sepformer_to_small_sepformer"])
def test_librimix_recipes_train_as_speechbrains_sepformer_recipe(name):
    """Every value the SepFormer recipe fixes, against the published file's (speechbrain_values.py)."""
    cfg = load(CONFIGS / f"{name}.yaml").cfg
    ref = SEPFORMER_LIBRI2MIX
    opt = cfg["optimizer"]
    assert isinstance(opt, functools.partial) and opt.func is torch.optim.Adam
    assert opt.keywords == {"lr": ref["lr"], "weight_decay": ref["weight_decay"]}
    sched = cfg["lr_scheduler"]
    assert type(sched) is ReduceLROnPlateau
    assert (sched.factor, sched.patience, sched.dont_halve_until_epoch) == (ref["factor"], ref["patience"],
                                                                           ref["dont_halve_until_epoch"])
    training = cfg["training"]
    assert (training["epochs"], training["batch_size"], training["max_grad_norm"]) == (
        ref["N_epochs"], ref["batch_size"], ref["clip_grad_norm"])
    assert cfg["sample_rate"] == ref["sample_rate"] and cfg["num_spks"] == ref["num_spks"]
    assert cfg["data"]["segment_seconds"] == 0.0 and not ref["limit_training_signal_len"]
    teacher = cfg["teacher_model"]
    assert teacher.encoder.conv1d.kernel_size == (ref["kernel_size"],)
    assert teacher.encoder.conv1d.out_channels == ref["N_encoder_out"]
    assert teacher.masknet.K == ref["K"] and teacher.masknet.num_layers == ref["masknet_num_layers"]
