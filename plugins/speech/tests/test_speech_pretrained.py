"""A SpeechBrain pretrained separator as the teacher (``teacher: {source: DIR}``), from folders SpeechBrain's own
code writes: a recipe's ``Checkpointer.save_checkpoint`` folder and a model-hub folder (``hyperparams.yaml`` and
module checkpoints written by SpeechBrain's ``torch_save`` hook). The loaded teacher must compute what the
recipe's own forward pass (recipes/LibriMix/separation/train.py: Encoder, MaskNet, Decoder) computes with the
saved modules."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml

from kdhub.config import ConfigError
from kdhub_speech.brain import AtomicCheckpointer
from kdhub_speech.pretrained import load_pretrained
from speech_helpers import load, recipe_hparams, tiny_config, write_hub_folder


def recipe_modules(seed: int = 3, **sizes):
    torch.manual_seed(seed)
    return load_hyperpyyaml(recipe_hparams(**sizes))


def recipe_forward(hp, mix: torch.Tensor) -> torch.Tensor:
    """The separation recipe's compute_forward: encoder, masks, one decoder pass per speaker, length fixed."""
    mix_w = hp["Encoder"](mix)
    est_mask = hp["MaskNet"](mix_w)
    sep_h = torch.stack([mix_w] * hp["num_spks"]) * est_mask
    est = torch.cat([hp["Decoder"](sep_h[i]).unsqueeze(-1) for i in range(hp["num_spks"])], dim=-1)
    return F.pad(est, (0, 0, 0, mix.shape[1] - est.shape[1])) if mix.shape[1] > est.shape[1] else est[:, :mix.shape[1]]


def teacher_of(tmp_path, *options):
    return load(tiny_config(tmp_path), options).cfg["teacher_model"]


def same_separation(hp, teacher) -> bool:
    mix = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    for module in (hp["Encoder"], hp["MaskNet"], hp["Decoder"], teacher):
        module.eval()
    with torch.no_grad():
        return torch.allclose(recipe_forward(hp, mix), teacher(mix), atol=1e-5)


def test_hub_folder_loads_into_the_teacher_and_separates_as_the_recipe_does(tmp_path):
    hp = recipe_modules()
    folder = write_hub_folder(tmp_path / "sepformer-hub", recipe_hparams(), hp["modules"])
    teacher = teacher_of(tmp_path)
    assert not same_separation(hp, teacher)         # a fresh teacher separates differently
    assert load_pretrained(teacher, str(folder), "cfg.yaml") == folder
    assert same_separation(hp, teacher)


def test_recipe_checkpoint_folder_loads_into_the_teacher(tmp_path):
    hp = recipe_modules(seed=4)
    hp["checkpointer"].checkpoints_dir = tmp_path / "save"
    hp["checkpointer"].checkpoints_dir.mkdir()
    hp["epoch_counter"].current = 7
    saved = hp["checkpointer"].save_checkpoint(meta={"si-snr": -12.5})
    assert (saved.path / "CKPT.yaml").is_file() and (saved.path / "counter.ckpt").is_file()
    teacher = teacher_of(tmp_path)
    load_pretrained(teacher, str(saved.path), "cfg.yaml")
    assert same_separation(hp, teacher)


def test_a_kdhub_sub_runs_checkpoint_folder_loads_whole(tmp_path):
    trained = teacher_of(tmp_path, "seed=11")
    ckpt = AtomicCheckpointer(tmp_path / "save", recoverables={"model": trained}).save_checkpoint()
    teacher = teacher_of(tmp_path)
    load_pretrained(teacher, str(ckpt.path), "cfg.yaml")
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in teacher.state_dict().items())


def test_kdhub_train_distils_from_a_recipe_checkpoint_folder(tmp_path):
    from kdhub.cli import main

    hp = recipe_modules(seed=5)
    hp["checkpointer"].checkpoints_dir = tmp_path / "save"
    hp["checkpointer"].checkpoints_dir.mkdir()
    saved = hp["checkpointer"].save_checkpoint(meta={"si-snr": -3.0})
    work = tmp_path / "w"
    assert main(["train", str(tiny_config(tmp_path)), "--work-dir", str(work), "--cfg-options",
                 f"teacher.source={saved.path}", "baseline=false", "training.epochs=1"]) == 0
    summary = json.loads((work / "summary.json").read_text())
    assert summary["teacher_checkpoint"] == str(saved.path)
    assert not (work / "teacher" / "save").exists()                 # tested, not trained
    assert math.isfinite(summary["teacher"]["si-snr"]) and math.isfinite(summary["student"]["si-snr"])
    assert json.loads((work / "teacher_test.json").read_text()) == summary["teacher"]


def _without(folder, name):
    (folder / name).unlink()
    return folder


def _pickled(folder, name):
    torch.save(torch.nn.Linear(2, 2), folder / name)   # a whole pickled module, not a state dict
    return folder


@pytest.mark.parametrize("case, message", [
    ("missing", "has no masknet.ckpt (its .ckpt files: decoder.ckpt, encoder.ckpt); a separator folder needs "
                "encoder.ckpt, masknet.ckpt and decoder.ckpt"),
    ("shapes", "masknet.ckpt does not fit teacher_model.masknet: "),
    ("pickled", "encoder.ckpt: holds a pickled Python object (torch.nn.modules.linear.Linear)"),
    ("hub name", "'speechbrain/sepformer-wsj02mix' is not a local folder (neither in the working directory nor "
                 "beside the config), and kdhub downloads nothing; if it is a model-hub name, download it first, e.g. "
                 "python -c \"from huggingface_hub import snapshot_download; snapshot_download("
                 "'speechbrain/sepformer-wsj02mix', local_dir='pretrained_models/sepformer-wsj02mix')\", then set "
                 "teacher.source=pretrained_models/sepformer-wsj02mix"),
    ("no folder", "teacher.source: folder not found: /nowhere/sepformer; point it at a SpeechBrain model-hub folder"),
    ("save folder", "is a Checkpointer's save folder holding 1 checkpoint(s) (CKPT+"),
    ("empty folder", "holds neither hyperparams.yaml (a SpeechBrain model-hub folder) nor CKPT.yaml"),
    ("both", "both teacher_checkpoint and teacher.source name a teacher; keep one"),
    ("supervised", "teacher.source is set but method is 'supervised', which has no teacher"),
])
def test_bad_teacher_folders_stop_before_anything_is_written(tmp_path, capsys, case, message):
    from kdhub.cli import main

    sizes = {"d_ffn": 32} if case == "shapes" else {}
    hp = recipe_modules(**sizes)
    folder = write_hub_folder(tmp_path / "hub", recipe_hparams(**sizes), hp["modules"])
    options = [f"teacher.source={folder}"]
    if case == "missing":
        _without(folder, "masknet.ckpt")
    elif case == "pickled":
        _pickled(folder, "encoder.ckpt")
    elif case == "hub name":
        options = ["teacher.source=speechbrain/sepformer-wsj02mix"]
    elif case == "no folder":
        options = ["teacher.source=/nowhere/sepformer"]
    elif case == "save folder":
        hp["checkpointer"].checkpoints_dir = tmp_path / "save"
        (tmp_path / "save").mkdir()
        hp["checkpointer"].save_checkpoint()
        options = [f"teacher.source={tmp_path / 'save'}"]
    elif case == "empty folder":
        (tmp_path / "empty").mkdir()
        options = [f"teacher.source={tmp_path / 'empty'}"]
    elif case == "both":
        options.append(f"teacher_checkpoint={folder / 'encoder.ckpt'}")
    elif case == "supervised":
        options.append("method=supervised")
    work = tmp_path / "w"
    assert main(["train", str(tiny_config(tmp_path)), "--work-dir", str(work), "--cfg-options", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "teacher.source" in err and "Traceback" not in err, err
    if case == "shapes":
        assert "shape difference(s)" in err and "hyperparams.yaml gives the sizes" in err
    assert not work.exists() or not any(work.iterdir())


def test_a_bad_folder_leaves_the_teacher_untouched(tmp_path):
    hp = recipe_modules(d_ffn=32)
    folder = write_hub_folder(tmp_path / "hub", recipe_hparams(d_ffn=32), hp["modules"])
    teacher = teacher_of(tmp_path)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    with pytest.raises(ConfigError, match="masknet.ckpt does not fit"):
        load_pretrained(teacher, str(folder), "cfg.yaml")
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())   # encoder.ckpt fitted
