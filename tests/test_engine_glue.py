"""Core pieces the engine-based plugins share: generated-data folders, sub-state-dict export."""
import pytest
import torch

from kdhub.checkpoint import CheckpointError, sub_state_dict
from kdhub.datadir import build_once, data_folder, default_root


def test_build_once_renames_a_complete_folder_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KDHUB_DATA_DIR", str(tmp_path))
    assert default_root("detection") == tmp_path / "detection"
    target = data_folder("detection", "set-1")
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "a.txt").write_text("x")
        (tmp / "spec.json").write_text("{}")

    assert build_once(target, build, "spec.json") == target and (target / "a.txt").is_file()
    assert build_once(target, build, "spec.json") == target and len(calls) == 1

    def broken(tmp):
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        build_once(tmp_path / "detection" / "set-2", broken, "spec.json")
    assert sorted(p.name for p in (tmp_path / "detection").iterdir()) == ["set-1"]  # nothing half-built left


def test_sub_state_dict_strips_the_prefix_and_names_missing_ones():
    state = {"student.a.weight": torch.ones(1), "teacher.a.weight": torch.zeros(1), "distiller.x": torch.ones(2)}
    assert list(sub_state_dict(state, "student")) == ["a.weight"]
    with pytest.raises(CheckpointError, match="no entries under 'model.'"):
        sub_state_dict(state, "model")
