"""The embedded data generator and the manifest checks (bad input stops or is skipped, by row)."""
import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from kdhub_speech.data import DataError, dataset, read_manifest
from kdhub_speech.synth import VOICES, SynthSpec, ensure_embedded


def test_embedded_set_is_deterministic_exact_mixtures_with_unseen_test_voices(tiny_data, tmp_path, capsys,
                                                                               monkeypatch):
    spec = json.loads((tiny_data / "spec.json").read_text())
    assert set(spec["voices"]["test"]).isdisjoint(spec["voices"]["train"])
    assert set(spec["voices"]["valid"]).isdisjoint(spec["voices"]["train"])
    man = read_manifest(tiny_data / "train.csv", 2, 8000)
    assert len(man.rows) == 16 and man.sources == ["s1_wav", "s2_wav"]
    row = next(iter(man.rows.values()))
    mix, sr = sf.read(row["mix_wav"], dtype="float32")
    s1, _ = sf.read(row["s1_wav"], dtype="float32")
    s2, _ = sf.read(row["s2_wav"], dtype="float32")
    assert sr == 8000 and mix.shape == (4000,)
    np.testing.assert_array_equal(mix, s1 + s2)
    assert np.abs(s1).max() > 0.01 and np.abs(s2).max() > 0.01
    test_voices = {name for _, name, _, _ in VOICES["test"]}
    for r in (tiny_data / "test.csv").read_text().splitlines()[1:]:
        assert set(r.split(",")[-2:]) <= test_voices
    monkeypatch.setenv("KDHUB_PROGRESS", "1")
    capsys.readouterr()
    again = ensure_embedded(SynthSpec(seconds=0.5, train=16, val=4, test=4, utterances_per_voice=1), tmp_path)
    spoken = sum(len(voices) for voices in VOICES.values())             # one utterance per voice
    total = spoken + 16 + 4 + 4
    assert f"generating speech data [{'#' * 24}] {total}/{total}" in capsys.readouterr().err
    assert (again / "train" / "mix" / "train_00003.wav").read_bytes() == \
        (tiny_data / "train" / "mix" / "train_00003.wav").read_bytes()


def test_dataset_yields_signals(tiny_data):
    ds = dataset(read_manifest(tiny_data / "valid.csv", 2, 8000), segment=1000)
    item = ds[0]
    assert item["mix_sig"].shape == (1000,) and item["s2_sig"].shape == (1000,)


def _bad_files(tmp_path):
    """A wav that is not audio, one at 16 kHz, one too short, and a FLAC whose header is intact but whose
    samples are cut off (only decoding the whole file finds that)."""
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav")
    wrong_sr = tmp_path / "sr16k.wav"
    sf.write(wrong_sr, np.zeros(8000, np.float32), 16000)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(100, np.float32), 8000)
    cut = tmp_path / "cut.flac"
    sf.write(cut, np.random.default_rng(0).normal(0, 0.1, 4000), 8000)
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    return corrupt, wrong_sr, short, cut


BAD_KINDS = {  # row ID -> what the message must say about it
    "corrupt": "corrupt.wav: unreadable or corrupt audio",
    "cut": "cut.flac: unreadable or corrupt audio",
    "rate": "sr16k.wav: sample rate 16000 Hz, but sample_rate is 8000",
    "length": "sources and mixture differ in length",
    "empty": "column 's1_wav' is empty",
    "cells": "no cell for column(s) s2_wav",
}


def _bad_manifest(tiny_data, tmp_path, kinds):
    """One good row, then one bad row of each of ``kinds`` (IDs as in BAD_KINDS)."""
    good = read_manifest(tiny_data / "valid.csv", 2, 8000).rows
    (a, b) = list(good.values())[:2]
    corrupt, wrong_sr, short, cut = _bad_files(tmp_path)
    rows = {"corrupt": (corrupt, b["s1_wav"], b["s2_wav"]), "cut": (b["mix_wav"], b["s1_wav"], cut),
            "rate": (b["mix_wav"], wrong_sr, b["s2_wav"]), "length": (b["mix_wav"], b["s1_wav"], short),
            "empty": (b["mix_wav"], "", b["s2_wav"]), "cells": (b["mix_wav"], b["s1_wav"])}
    lines = [",".join(map(str, ("ok", a["mix_wav"], a["s1_wav"], a["s2_wav"])))]
    lines += [",".join(map(str, (k,) + rows[k])) for k in kinds]
    path = tmp_path / "bad.csv"
    path.write_text("ID,mix_wav,s1_wav,s2_wav\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", list(BAD_KINDS))
def test_each_bad_row_stops_naming_file_row_and_fix(tiny_data, tmp_path, kind):
    path = _bad_manifest(tiny_data, tmp_path, [kind])
    with pytest.raises(DataError) as err:
        read_manifest(path, 2, 8000, on_bad="stop")
    msg = str(err.value)
    assert msg.startswith(f"{path}, row 3 (ID {kind}): ") and BAD_KINDS[kind] in msg and "on_bad=skip" in msg


def test_bad_rows_are_skipped_and_counted(tiny_data, tmp_path):
    man = read_manifest(_bad_manifest(tiny_data, tmp_path, list(BAD_KINDS)), 2, 8000, on_bad="skip")
    assert list(man.rows) == ["ok"]
    assert len(man.skipped) == len(BAD_KINDS)
    for (kind, expected), reason in zip(BAD_KINDS.items(), man.skipped):
        assert f"(ID {kind}): " in reason and expected in reason


def test_missing_column_names_the_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("ID,mix_wav,s1_wav\nx,a.wav,b.wav\n")
    with pytest.raises(DataError, match=r"m\.csv: missing column\(s\) s2_wav"):
        read_manifest(path, 2, 8000)
    mixtures_only = tmp_path / "mixonly.csv"
    mixtures_only.write_text("ID,mix_wav\n")
    with pytest.raises(DataError, match="no usable rows"):
        read_manifest(mixtures_only, 2, 8000, need_references=False)


def test_labelled_subset_and_mixtures_without_references(tiny_data):
    man = read_manifest(tiny_data / "train.csv", 2, 8000)
    labelled, rest = man.split(5)
    assert list(labelled.rows) == list(man.rows)[:5] and list(rest.rows) == list(man.rows)[5:]
    mixed = labelled.with_unlabelled(rest)
    assert len(mixed.rows) == 16 and mixed.unlabelled == 11 and labelled.unlabelled == 0
    ds = dataset(mixed)
    first, last = ds[0], ds[15]
    assert first["labelled"] and first["s1_sig"].abs().max() > 0
    assert not last["labelled"] and last["s1_sig"].abs().max() == 0 and last["mix_sig"].abs().max() > 0
    assert "labelled" not in dataset(labelled)[0]
    with pytest.raises(DataError, match="also in"):
        labelled.with_unlabelled(man)


def test_random_crops_differ_between_epochs_and_workers_and_follow_torchs_generator(tmp_path):
    """``data.random_crop``: every epoch and every DataLoader worker draws its own offsets, and the draws follow
    torch's generator (seeded, or restored by a resumed Brain), so the same state gives the same crops."""
    import speechbrain as sb

    from kdhub_speech.data import Manifest

    ramp = (torch.arange(4000, dtype=torch.float32) + 1) / 8192  # a sample's value tells its position
    rows = {}
    for i in range(8):
        for key in ("mix", "s1", "s2"):
            sf.write(tmp_path / f"{key}{i}.wav", ramp.numpy(), 8000, subtype="FLOAT")
        rows[f"u{i}"] = {f"{key}_wav": str(tmp_path / f"{key}{i}.wav") for key in ("mix", "s1", "s2")}
    ds = dataset(Manifest(tmp_path / "m.csv", rows, ["s1_wav", "s2_wav"]), segment=1000, random_offset=True)

    def epoch(loader):
        return [int(round(float(sig[0]) * 8192)) - 1 for batch in loader for sig in batch.mix_sig.data]

    loader = sb.dataio.dataloader.make_dataloader(ds, batch_size=2, num_workers=2)
    torch.manual_seed(0)
    first, second = epoch(loader), epoch(loader)
    assert first != second                       # a new draw every epoch
    assert len(set(first)) > 2                   # not one offset per worker
    assert all(0 <= o <= 3000 for o in first + second)
    torch.manual_seed(0)
    assert epoch(loader) == first                # the generator's state decides the crops
    state = torch.get_rng_state()
    later = epoch(loader)
    torch.set_rng_state(state)
    assert epoch(loader) == later                # ... as a resumed run restores it


def test_the_teacher_cache_key_changes_when_audio_is_rewritten_under_the_same_paths(tmp_path):
    """The cache's fingerprint covers each audio file's size and modification time, not only its path: a data set
    regenerated in place gets a new cache instead of the old teacher outputs."""
    import os

    from kdhub_speech.cache import fingerprint
    from kdhub_speech.data import Manifest

    wav = tmp_path / "mix0.wav"
    sf.write(wav, np.zeros(800, np.float32), 8000, subtype="FLOAT")
    manifest = Manifest(tmp_path / "m.csv", {"u0": {"mix_wav": str(wav), "s1_wav": str(wav)}}, ["s1_wav"])
    teacher = torch.nn.Linear(2, 2)
    before = fingerprint(teacher, manifest, ["masknet"], 0)
    assert fingerprint(teacher, manifest, ["masknet"], 0) == before
    sf.write(wav, np.ones(800, np.float32) * 0.5, 8000, subtype="FLOAT")
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    assert fingerprint(teacher, manifest, ["masknet"], 0) != before


def _cropped_set(tiny_data, folder, lengths):
    """The tiny validation mixtures cut to ``lengths`` samples (mixture = s1 + s2 still), as a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = list(read_manifest(tiny_data / "valid.csv", 2, 8000).rows.values())
    lines = []
    for i, n in enumerate(lengths):
        row = rows[i % len(rows)]
        paths = []
        for key in ("mix_wav", "s1_wav", "s2_wav"):
            samples, _ = sf.read(row[key], dtype="float32")
            path = folder / f"u{i}_{key}"
            sf.write(path.with_suffix(".wav"), samples[:n], 8000, subtype="FLOAT")
            paths.append(path.with_suffix(".wav"))
        lines.append(",".join(map(str, (f"u{i}", n / 8000, *paths))))
    manifest = folder / "set.csv"
    manifest.write_text("ID,duration,mix_wav,s1_wav,s2_wav\n" + "\n".join(lines) + "\n")
    return manifest


def test_short_empty_and_non_finite_audio_are_bad_rows_named_by_file(tiny_data, tmp_path):
    """A wav shorter than the encoders' kernel (empty ones included) would fail inside the encoder's convolution
    after training began, or be trained on as padding; a NaN sample would make the losses NaN."""
    manifest = _cropped_set(tiny_data, tmp_path / "short", [4000, 10, 0])
    man = read_manifest(manifest, 2, 8000, on_bad="skip", min_samples=16)
    assert list(man.rows) == ["u0"] and man.frames == {"u0": 4000}
    assert "u1_mix_wav.wav: 10 samples, shorter than the models' encoder kernel (16 samples)" in man.skipped[0]
    assert "u2_mix_wav.wav: 0 samples" in man.skipped[1]
    nan = _cropped_set(tiny_data, tmp_path / "nan", [4000, 4000])
    samples, _ = sf.read(tmp_path / "nan" / "u1_s2_wav.wav", dtype="float32")
    samples[123] = np.nan
    sf.write(tmp_path / "nan" / "u1_s2_wav.wav", samples, 8000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"row 3 \(ID u1\): s2_wav .*u1_s2_wav\.wav: 1 sample\(s\) are NaN or infinite"):
        read_manifest(nan, 2, 8000)


def test_a_manifest_saved_with_a_bom_and_spaces_after_commas_reads_as_the_plain_one(tiny_data, tmp_path):
    plain = (tiny_data / "valid.csv").read_text().replace("$data_root", str(tiny_data))
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("\ufeff" + plain.replace(",", ", "), encoding="utf-8")
    assert read_manifest(spaced, 2, 8000).rows == read_manifest(tiny_data / "valid.csv", 2, 8000).rows


def test_a_relative_path_not_found_says_where_it_was_looked_for(tiny_data, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    manifest = _cropped_set(tiny_data, folder, [4000])
    manifest.write_text(manifest.read_text().replace(str(folder) + "/", ""))  # paths relative to the manifest
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(DataError) as err:
        read_manifest(manifest, 2, 8000)
    assert f"read from the current directory, {elsewhere}" in str(err.value)
    assert "exists beside the manifest: write $data_root/u0_mix_wav.wav" in str(err.value)
    manifest.write_text(manifest.read_text().replace(",u0_", ",$data_root/u0_"))
    assert list(read_manifest(manifest, 2, 8000).rows) == ["u0"]


def test_more_source_columns_than_num_spks_is_refused(tiny_data, tmp_path):
    """A three-speaker manifest read with num_spks 2 would score three-speaker mixtures against two references."""
    text = (tiny_data / "valid.csv").read_text().splitlines()
    three = tmp_path / "three.csv"
    three.write_text("\n".join([text[0] + ",s3_wav"] + [line + "," + line.split(",")[-1] for line in text[1:]]) + "\n")
    with pytest.raises(DataError, match=r"three\.csv: has column\(s\) s3_wav but num_spks is 2"):
        read_manifest(three, 2, 8000)


@pytest.mark.parametrize("options, message", [
    (["num_spks=3"], "student_model separates 2 sources but num_spks is 3"),
    (["training.epochs=2", "training.epochs.x=1"], "training.epochs is given a value (2) by another option"),
    (["training.epochs.x=1", "training.epochs=2"], "another option sets a key inside training.epochs"),
])
def test_sources_the_models_cannot_separate_and_conflicting_options_are_config_errors(tmp_path, options, message):
    """Each failed inside training (an IndexError after a sub-run began) or inside the loader (a TypeError that
    switched the speech plugin off)."""
    from kdhub.config import ConfigError
    from speech_helpers import load, tiny_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tiny_config(tmp_path), options)
