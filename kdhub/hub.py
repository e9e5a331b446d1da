"""Checkpoints named by URL: downloaded once into torch.hub's cache, verified, never left half-written.

A teacher checkpoint can be a local path or an ``http://`` / ``https://`` URL (the way OpenMMLab and
torchvision publish their weights). A file name that carries a hash prefix (torch.hub's ``name-<sha256[:8]>.ext``
convention, which OpenMMLab's and torchvision's released checkpoints follow) is fetched into
``<torch.hub.get_dir()>/checkpoints/<file name>``, the cache torch.hub and mmengine already use, so a checkpoint
either of them downloaded is reused and nothing is downloaded twice; the hash identifies the content. Any other
name is kept under a folder named after the whole URL (``checkpoints/url-<sha256(url)[:16]>/<file name>``): two
URLs ending in one file name (``.../a/teacher.pth``, ``.../b/teacher.pth``) are two checkpoints, not one. The
download streams into a temporary file beside the target that is renamed into place only after the whole body
arrived (as many bytes as ``Content-Length`` announced), begins as a torch checkpoint does (a zip archive or a
pickle, not an HTML page) and, for a hashed name, its SHA-256 matched: a failed, cut-off or wrong download leaves
no file in the cache. The file is then read like any other checkpoint, with ``weights_only=True``.

Under a launcher, rank 0 downloads while the other ranks wait, and every rank raises if it failed.
"""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional, Union

from . import dist
from .checkpoint import CheckpointError, atomic_write

URL_SCHEMES = ("http://", "https://")
CHUNK = 1 << 20
#: how a file torch.save wrote begins: a zip archive (torch >= 1.6) or a pickle (the legacy format)
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def is_url(location: Union[str, Path, None]) -> bool:
    """Whether ``location`` names a checkpoint by ``http(s)://`` URL rather than by path."""
    return isinstance(location, str) and location.lower().startswith(URL_SCHEMES)


def cache_dir() -> Path:
    """``<torch.hub.get_dir()>/checkpoints``: ``$TORCH_HOME/hub/checkpoints``, by default under ``~/.cache/torch``."""
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints"


def hash_prefix(name: str) -> Optional[str]:
    """The SHA-256 prefix a file name carries by torch.hub's convention (``resnet50-0676ba61.pth``), if any: at
    least 8 hex digits, as published checkpoints carry, so ``teacher-epoch-20.pth`` carries none."""
    import torch.hub
    found = torch.hub.HASH_REGEX.search(name)
    return found.group(1) if found and len(found.group(1)) >= 8 else None


def fetch(location: Union[str, Path], key: str = "", folder: Optional[Path] = None) -> Path:
    """The local file of a checkpoint ``location``: a path as given, a URL downloaded once into ``folder``
    (default :func:`cache_dir`). Errors name the config ``key``, the URL and what to do."""
    if not is_url(location):
        return Path(location)
    url = str(location)
    name = Path(urllib.parse.urlparse(url).path).name
    where = f"{key}: " if key else ""
    if not name:
        raise CheckpointError(f"{where}{url} names no file; give the URL of the checkpoint file itself")
    root = Path(folder) if folder is not None else cache_dir()
    prefix = hash_prefix(name)
    target = root / name if prefix else root / f"url-{hashlib.sha256(url.encode()).hexdigest()[:16]}" / name
    error: Optional[Exception] = None
    if dist.is_main() and not target.is_file():
        try:
            _download(url, target, prefix)
        except CheckpointError as exc:
            error = CheckpointError(f"{where}{exc}")
            if target.parent != root and target.parent.is_dir() and not any(target.parent.iterdir()):
                target.parent.rmdir()
    if not dist.all_ranks_true(error is None):
        raise error or CheckpointError(f"{where}{url}: the download failed on rank 0 (its error says why)")
    return target


def _download(url: str, target: Path, prefix: Optional[str]) -> None:
    """Stream ``url`` into ``target`` atomically, checking its length and hash prefix before the rename."""
    request = urllib.request.Request(url, headers={"User-Agent": "kdhub"})

    def write(f) -> None:
        digest, size = hashlib.sha256(), 0
        head = b""
        with urllib.request.urlopen(request, timeout=60) as response:
            expected = response.headers.get("Content-Length")
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                head = head or chunk[:16]
        if size == 0:
            raise CheckpointError(f"{url}: the server sent an empty body; nothing was kept")
        if expected is not None and size != int(expected):
            raise CheckpointError(f"{url}: the download stopped after {size} of {expected} bytes; nothing was "
                                  f"kept in {target.parent}, run again to retry")
        if not head.startswith(CHECKPOINT_MAGIC):
            raise CheckpointError(f"{url}: the server sent {size} bytes that are not a PyTorch checkpoint (they begin "
                                  f"{head[:16]!r}: a web page, e.g. a login or an error?); nothing was kept; give the "
                                  f"URL of the file itself")
        if prefix and not digest.hexdigest().startswith(prefix):
            raise CheckpointError(f"{url}: its SHA-256 {digest.hexdigest()[:16]}... does not start with "
                                  f"{prefix}, the hash its file name carries; the file is corrupt or not the "
                                  f"published one, so it was not kept")

    try:
        atomic_write(target, write)
    except CheckpointError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError) else \
            getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"{url}: download failed ({reason}); check the URL and the network, or download "
                              f"the file yourself and give its local path") from None
