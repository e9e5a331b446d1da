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
