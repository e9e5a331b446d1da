"""Atomic checkpoint files and RNG state capture, so a run can stop anywhere and resume exactly.

Writes go to a temporary file in the same folder, are flushed to disk and then renamed over the target:
a crash leaves either the old file or the new one, never half of one. Loads use ``weights_only=True``.
Temporary files and folders are created with the usual modes (0666 / 0777 less the process umask, applied
by the system), so the renamed result has the permissions a plain ``open`` would give.
"""
from __future__ import annotations

import ctypes
import errno
import os
import pickle
import random
import re
import shutil
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

PathLike = Union[str, Path]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or of the wrong kind; the message names the file."""


def _temporary_name(target: Path) -> Path:
    """A hidden name beside ``target`` that no other writer (thread or process) picks."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def atomic_write(path: PathLike, write) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, then rename it over ``path``; if ``write``
    raises, the temporary file is removed and ``path`` stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # make the rename itself durable
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a CPU tensor's data (for hashing or file formats), without going through numpy."""
    t = t.detach().contiguous().cpu()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()) if t.numel() else b""


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` that never leaves a partial file at ``path``."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_folder(folder: PathLike, files: Mapping[str, bytes]) -> Path:
    """Replace ``folder`` by one holding exactly ``files`` (name -> bytes): they are written (and flushed to
    disk) into a temporary folder beside it, which then takes its place in one step, so readers see the old set
    or the whole new one, never a mix, a part or no folder. An existing folder is swapped with the new one
    atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); where the system cannot swap, it is moved aside
    and the new one renamed in, which a crash between the two renames could interrupt."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(folder)
    tmp.mkdir(0o777)
    old = None
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        if not folder.exists():
            tmp.rename(folder)
        elif _exchange(tmp, folder):
            old = tmp  # now holding the previous set
        else:
            old = tmp.with_name(tmp.name + ".old")
            folder.rename(old)
            tmp.rename(folder)
        _fsync_dir(folder.parent)
    except BaseException:
        if old is not None and old != tmp and not folder.exists():
            old.rename(folder)  # the two-rename fallback stopped between its renames: the old set goes back
        shutil.rmtree(tmp, ignore_errors=True)  # the new set, unfinished or not placed (or, swapped, the old one)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` in one step (Linux ``renameat2(..., RENAME_EXCHANGE)``); False where the C
    library, kernel or file system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def load_checkpoint(path: PathLike, map_location: Any = "cpu", key: str = "") -> Dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``. A missing, truncated or corrupt file, or one holding pickled
    objects, raises CheckpointError naming the file (and the config ``key`` that named it) and what to do;
    the advice is never to load it unsafely."""
    path = Path(path)
    where = f"{key}: " if key else ""
    if not path.is_file():
        raise CheckpointError(f"{where}checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's note on odd pickle protocols of a corrupt file: the error says it
            warnings.filterwarnings("ignore", message=r".*weights_only Unpickler", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{where}{path}: {_unreadable(exc)}") from None


def _unreadable(exc: Exception) -> str:
    """Why torch could not read a checkpoint, in one line (torch's own text suggests unsafe loading)."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if isinstance(exc, pickle.UnpicklingError) and found:
        return (f"holds a pickled Python object ({found.group(1)}), not only tensors; kdhub reads weights only: "
                f"save the model's state_dict() instead")
    if "zip archive" in text or "central directory" in text or isinstance(exc, EOFError):
        return "truncated or corrupt (its archive is incomplete); copy or write the file again"
    return "not a PyTorch checkpoint (its bytes do not read as one); point at a file written by torch.save"


def state_mismatch(expected: Mapping[str, Any], given: Mapping[str, Any], limit: int = 3) -> Optional[str]:
    """What keeps the state dict ``given`` from loading strictly into a model whose state dict is ``expected``:
    the first missing keys, unexpected keys and shape differences, or None when it fits."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {_shape(given[k])} in the file, {_shape(expected[k])} in the model" for k in expected
              if k in given and _shape(given[k]) != _shape(expected[k])]
    parts = [f"{len(items)} {what} ({'; '.join(items[:limit])}{', ...' if len(items) > limit else ''})"
             for what, items in (("missing key(s)", missing), ("unexpected key(s)", unexpected),
                                 ("shape difference(s)", shapes)) if items]
    return ", ".join(parts) or None


def _shape(value: Any) -> str:
    return "x".join(map(str, value.shape)) if hasattr(value, "shape") else type(value).__name__


def sub_state_dict(state: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    """The entries of ``state`` under ``prefix`` (e.g. ``'student.'``) with the prefix removed: how a
    distillation wrapper's checkpoint becomes the plain checkpoint of the model it wraps."""
    if not prefix.endswith("."):
        prefix += "."
    out = type(state)() if isinstance(state, dict) else {}
    for key, value in state.items():
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
    if not out:
        raise CheckpointError(f"no entries under {prefix!r} in the state dict "
                              f"(first keys: {', '.join(list(state)[:5]) or 'none'})")
    return out


def rng_state() -> Dict[str, Any]:
    """Every RNG a training loop may draw from, in a form ``weights_only`` loading accepts."""
    version, internal, gauss = random.getstate()
    state: Dict[str, Any] = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(cached)]
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np = sys.modules.get("numpy")
    if np is not None and "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, cached))
