"""Atomically written files and folders get the permissions a plain open/mkdir would give under the umask
in force when they are written (importing kdhub changes no process state)."""
import os
import stat

import pytest

from kdhub.checkpoint import atomic_write_folder, atomic_write_text


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_modes_follow_the_current_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_folder(tmp_path / "set", {"f.bin": b"1"})
        (tmp_path / "plain.txt").write_text("x")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "plain.txt") == 0o666 & ~umask
    assert mode(tmp_path / "set") == mode(tmp_path / "plain") == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "plain", "plain.txt", "set"]  # no temporaries


def test_unreadable_checkpoints_are_named_without_unsafe_advice(tmp_path):
    import torch
    from kdhub.checkpoint import CheckpointError, load_checkpoint

    torch.save({"w": torch.zeros(64)}, tmp_path / "real.pth")
    data = (tmp_path / "real.pth").read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pth").write_bytes(os.urandom(2048))
    torch.save({"layer": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pth")
    expected = {"half.pth": "truncated or corrupt", "noise.pth": "not a PyTorch checkpoint",
                "pickled.pth": "holds a pickled Python object (torch.nn.modules.linear.Linear)",
                "gone.pth": "checkpoint not found"}
    for name, says in expected.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name, key="model.teacher.checkpoint")
        text = str(err.value)
        assert text.startswith("model.teacher.checkpoint: ") and name in text and says in text, text
        assert "weights_only" not in text and "\n" not in text


def test_state_mismatch_lists_missing_unexpected_and_shapes():
    import torch
    from kdhub.checkpoint import state_mismatch

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).state_dict()
    assert state_mismatch(model, dict(model)) is None
    given = {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(5), "1.weight": torch.zeros(2, 4),
             "2.weight": torch.zeros(1)}
    assert state_mismatch(model, given) == ("1 missing key(s) (1.bias), 1 unexpected key(s) (2.weight), "
                                            "1 shape difference(s) (0.bias 5 in the file, 4 in the model)")
    many = {f"x{i}": torch.zeros(1) for i in range(5)}
    assert state_mismatch({}, many) == "5 unexpected key(s) (x0; x1; x2, ...)"
