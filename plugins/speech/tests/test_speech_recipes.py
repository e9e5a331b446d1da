"""Every shipped speech config runs: two training iterations of the baseline and of the distilled student, one
validation pass each and the test split, through ``kdhub train``, on a tiny data set in the recipe's own format.

The LibriMix recipes read SpeechBrain-recipe CSV manifests (the columns SpeechBrain's LibriMix preparation
writes) over short 8 kHz wav files this test writes; the configs on the embedded data read the embedded
generator's output at a tiny size. Teachers are randomly initialised separators of the config's own
``teacher_model`` architecture, saved as a user's teacher is: a SpeechBrain model-hub folder for the LibriMix
recipes (``teacher.source``), a separator state dict (``teacher_checkpoint``) for the others.
Only data locations, sizes and the schedule are overridden: models, losses, pipeline and evaluator are the
recipe's, at the recipe's sizes.
"""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from kdhub.checkpoint import load_checkpoint, state_mismatch
from speech_helpers import load, recipe_hparams, write_hub_folder

RECIPES = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
#: SpeechBrain's LibriMix preparation (recipes/LibriMix/prepare_data.py) writes these columns
LIBRIMIX_COLUMNS = ["ID", "duration", "mix_wav", "mix_wav_format", "mix_wav_opts", "s1_wav", "s1_wav_format",
                    "s1_wav_opts", "s2_wav", "s2_wav_format", "s2_wav_opts", "noise_wav", "noise_wav_format",
                    "noise_wav_opts"]
SECONDS = 0.5
SAMPLE_RATE = 8000


def _source(rng: np.random.Generator, n: int) -> np.ndarray:
    """A voiced-speech-like source: a few harmonics of a random fundamental under a syllable-rate envelope."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(90, 250)
    tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
    return tone * envelope + 0.05 * rng.standard_normal(n)


def write_librimix_split(root: Path, split: str, n: int, seed: int) -> Path:
    """``root/{split}/{mix_clean,s1,s2,noise}/*.wav`` (16-bit PCM, 8 kHz, the mixture the exact sum of the two
    sources) and ``root/libri2mix_{split}.csv`` as SpeechBrain's LibriMix preparation lays them out."""
    rng = np.random.default_rng(seed)
    length = int(SECONDS * SAMPLE_RATE)
    rows = []
    for i in range(n):
        uid = f"{split}_{i}"
        s1, s2 = (np.round(_source(rng, length) / 4 * 8000).astype(np.int16) for _ in range(2))
        noise = np.round(rng.standard_normal(length) * 100).astype(np.int16)
        paths = {}
        for kind, signal in (("mix_clean", s1 + s2), ("s1", s1), ("s2", s2), ("noise", noise)):
            path = root / split / kind / f"{uid}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), signal, SAMPLE_RATE, subtype="PCM_16")
            paths[kind] = str(path)
        rows.append({"ID": i, "duration": SECONDS, "mix_wav": paths["mix_clean"], "mix_wav_format": "wav",
                     "mix_wav_opts": None, "s1_wav": paths["s1"], "s1_wav_format": "wav", "s1_wav_opts": None,
                     "s2_wav": paths["s2"], "s2_wav_format": "wav", "s2_wav_opts": None,
                     "noise_wav": paths["noise"], "noise_wav_format": "wav", "noise_wav_opts": None})
    manifest = root / f"libri2mix_{split}.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LIBRIMIX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture(scope="module")
def librimix(tmp_path_factory):
    """Two training, two validation and two test mixtures of half a second in the LibriMix recipe's format."""
    root = tmp_path_factory.mktemp("Libri2Mix")
    return {split: write_librimix_split(root, split, 2, seed) for seed, split in enumerate(("train", "dev", "test"))}


def tiny_overrides(cfg, librimix):
    """Data locations, sizes and the schedule: each student sub-run takes two training iterations."""
    if cfg["data"]["source"] == "csv":
        assert cfg["training"]["batch_size"] == 1
        return [f"data.train_csv={librimix['train']}", f"data.valid_csv={librimix['dev']}",
                f"data.test_csv={librimix['test']}", "training.epochs=1"]
    batch = cfg["training"]["batch_size"]
    options = [f"data.embedded.train={2 * batch}", f"data.embedded.valid={batch}", "data.embedded.test=2",
               "data.embedded.utterances_per_voice=1", "training.epochs=1"]
    if cfg["training"]["limit"]:  # semi-supervised: half the mixtures keep their references
        options.append(f"training.limit={batch}")
    return options


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_trains_validates_and_tests(recipe, tmp_path, librimix, capsys, monkeypatch):
    from kdhub.cli import main

    options = tiny_overrides(load(recipe).cfg, librimix)
    cfg = load(recipe, options).cfg
    teacher = cfg["teacher_model"]                           # a user's trained teacher, here random
    if cfg["teacher"]["source"]:   # a SpeechBrain model-hub folder, as for speechbrain/sepformer-libri2mix
        hub = write_hub_folder(tmp_path / "sepformer-hub", recipe_hparams(256, 8, 8, 1024, 250),
                               {"encoder": teacher.encoder, "masknet": teacher.masknet, "decoder": teacher.decoder})
        given = f"teacher.source={hub}"
    else:                          # a separator state dict
        torch.save(teacher.state_dict(), tmp_path / "teacher.pth")
        given = f"teacher_checkpoint={tmp_path / 'teacher.pth'}"

    work = tmp_path / "work"
    monkeypatch.setenv("KDHUB_PROGRESS", "0")
    assert main(["train", str(recipe), "--work-dir", str(work), "--cfg-options", *options, given]) == 0
    assert "it/s]" not in capsys.readouterr().err                   # no progress bar with KDHUB_PROGRESS=0

    summary = json.loads((work / "summary.json").read_text())
    for role in ("teacher", "baseline", "student"):
        assert all(math.isfinite(summary[role][k]) for k in ("si-snr", "si-snri", "sdr", "sdri")), role
    assert summary["params"]["teacher"] > summary["params"]["student"]
    # two training iterations each: the baseline takes as many steps as the distilled student
    assert summary["batches_per_epoch"]["student"] == 2
    baseline_epochs = summary["student_data"]["baseline_epochs"]
    assert summary["batches_per_epoch"]["baseline"] * baseline_epochs == 2
    for role, epochs in (("baseline", baseline_epochs), ("student", 1)):
        saved = sorted((work / role / "save").glob("CKPT+*/CKPT.yaml"))
        assert len(saved) == 1 and f"epoch: {epochs}" in saved[0].read_text()  # one validation pass per epoch
        exported = load_checkpoint(work / role / "model.pth")               # weights_only=True
        assert state_mismatch(cfg["student_model"].state_dict(), exported) is None
        rows = (work / role / "test_results.csv").read_text().splitlines()
        assert rows[0] == "ID,si-snr,si-snri,sdr,sdri" and len(rows) == 3
        assert len((work / role / "train_log.txt").read_text().splitlines()) == epochs
        assert (work / role / "hyperparams.yaml").is_file()
