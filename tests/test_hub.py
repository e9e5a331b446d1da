"""Checkpoints named by URL, fetched from an HTTP server the test runs on localhost."""
import hashlib
import io

import pytest
import torch

from kdhub.checkpoint import CheckpointError, load_checkpoint
from kdhub.hub import cache_dir, fetch, hash_prefix, is_url
from kdhub.testing import FileServer


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


def checkpoint_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def state():
    torch.manual_seed(0)
    return {"state_dict": {"w": torch.randn(3, 4), "b": torch.randn(3)}}


def test_a_url_is_downloaded_once_into_torch_hubs_cache_and_loaded_weights_only(server, state, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    body = checkpoint_bytes(state)
    name = f"teacher-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    server.files[f"/models/{name}"] = body
    url = server.url(f"/models/{name}") + "?download=1"
    assert is_url(url) and not is_url(str(tmp_path)) and hash_prefix(name) == hashlib.sha256(body).hexdigest()[:8]
    path = fetch(url, "model.teacher.checkpoint")
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / name == cache_dir() / name
    assert path.read_bytes() == body
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert fetch(url) == path and len(server.requests) == 1  # the second fetch reads the cache
    assert [p.name for p in path.parent.iterdir()] == [name]


def test_a_local_path_is_returned_as_given(tmp_path):
    assert fetch(tmp_path / "x.pth") == tmp_path / "x.pth"


def test_a_hash_mismatch_keeps_nothing_and_says_why(server, state, tmp_path):
    body = checkpoint_bytes(state)
    server.files["/teacher-deadbeef.pth"] = body
    with pytest.raises(CheckpointError, match=r"model.teacher.checkpoint: .*teacher-deadbeef.pth: its SHA-256 "
                                              r"[0-9a-f]{16}\.\.\. does not start with deadbeef"):
        fetch(server.url("/teacher-deadbeef.pth"), "model.teacher.checkpoint", tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_cut_off_download_keeps_nothing_and_a_retry_succeeds(server, state, tmp_path):
    body = checkpoint_bytes(state)
    server.files["/teacher.pth"] = body
    server.cut.add("/teacher.pth")
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match=rf"stopped after {len(body) // 2} of {len(body)} bytes; nothing was "
                                              rf"kept"):
        fetch(server.url("/teacher.pth"), folder=cache)
    assert not any(cache.iterdir())
    server.cut.clear()
    assert fetch(server.url("/teacher.pth"), folder=cache).read_bytes() == body


def test_a_missing_url_or_a_pickled_object_is_an_error_naming_it(server, tmp_path):
    with pytest.raises(CheckpointError, match=r"k: http://127.0.0.1:\d+/nothing.pth: download failed \(HTTP 404"):
        fetch(server.url("/nothing.pth"), "k", tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())
    with pytest.raises(CheckpointError, match="names no file"):
        fetch(server.url("/"), "k", tmp_path / "cache")
    server.files["/pickled.pth"] = checkpoint_bytes({"obj": FileServer})
    path = fetch(server.url("/pickled.pth"), folder=tmp_path / "cache")
    with pytest.raises(CheckpointError, match="holds a pickled Python object"):
        load_checkpoint(path)


def test_two_urls_ending_in_one_file_name_are_two_checkpoints(server, state, tmp_path):
    """Without a hash in its name a file is kept under its whole URL: /a/teacher.pth is not /b/teacher.pth."""
    other = {"state_dict": {k: v + 1 for k, v in state["state_dict"].items()}}
    server.files.update({"/a/teacher.pth": checkpoint_bytes(state), "/b/teacher.pth": checkpoint_bytes(other)})
    a = fetch(server.url("/a/teacher.pth"), folder=tmp_path / "cache")
    b = fetch(server.url("/b/teacher.pth"), folder=tmp_path / "cache")
    assert a != b and a.name == b.name == "teacher.pth" and server.requests == ["/a/teacher.pth", "/b/teacher.pth"]
    assert torch.equal(load_checkpoint(b)["state_dict"]["w"], other["state_dict"]["w"])
    assert fetch(server.url("/a/teacher.pth"), folder=tmp_path / "cache") == a and len(server.requests) == 2


def test_a_web_page_or_a_cut_off_chunked_body_keeps_nothing(server, state, tmp_path):
    cache = tmp_path / "cache"
    server.files["/page/teacher.pth"] = b"<!DOCTYPE html><html>sign in</html>"
    with pytest.raises(CheckpointError, match=r"35 bytes that are not a PyTorch checkpoint \(they begin "
                                              r"b'<!DOCTYPE html><'"):
        fetch(server.url("/page/teacher.pth"), "k", cache)
    server.files["/chunked/teacher.pth"] = checkpoint_bytes(state)
    server.chunked.add("/chunked/teacher.pth")
    with pytest.raises(CheckpointError, match=r"k: .*/chunked/teacher.pth: download failed \(IncompleteRead"):
        fetch(server.url("/chunked/teacher.pth"), "k", cache)
    assert not cache.exists() or not any(cache.rglob("*"))


def test_only_eight_or_more_hex_digits_are_a_hash():
    assert hash_prefix("retinanet_r50_fpn_1x_coco_20200130-c2398f9e.pth") == "c2398f9e"
    assert hash_prefix("teacher-epoch-20.pth") is None and hash_prefix("teacher-1.pth") is None
