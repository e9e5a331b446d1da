"""Helpers for plugin test suites: third-party plugins installed as users install them, and a real
``kdhub train`` interrupted the hard way.

:func:`pip_install_site` installs distributions (a plugin under test, an observer) with pip into a folder of
their own and returns the environment that puts it on the path, so a subprocess ``kdhub`` discovers them
through their entry points exactly as it would in a user's environment.

A resumable run must survive SIGKILL at any moment: no handler runs, so only what was already written
atomically is left. :func:`kill_when` starts the launcher in a process group of its own and kills the
whole group as soon as a condition on the work dir holds (for example: the first checkpoint exists), so a
test can then run ``--resume`` and compare the result with an uninterrupted run.

A run over several machines is rehearsed on one: :func:`run_nodes` starts one ``torchrun`` agent per "node"
on localhost, meeting through c10d rendezvous as separate machines would, and records which files each rank
opened for writing (Python's audit hooks, installed through a ``sitecustomize`` on the path), so a test can
check that no two ranks write the same file of a shared work dir.

Checkpoints named by URL are fetched from :class:`FileServer`, an HTTP server on localhost that serves
given bytes, can cut a body off half-way (a dropped connection) and counts requests.

What the TensorBoard observer wrote is read back by :func:`read_scalars`.
"""
from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple


def pip_install_site(target: Path, *projects: Path) -> Dict[str, str]:
    """``pip install`` the project folders into ``target`` (offline, no dependencies: the running environment
    has them); returns the ``PYTHONPATH`` entry of an environment in which they are installed."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), *map(str, projects)], check=True,
                   env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def kill_when(cmd: Sequence[str], ready: Callable[[], bool], env: Optional[Mapping[str, str]] = None,
              timeout: float = 600.0, poll: float = 0.01) -> bool:
    """Run ``cmd`` and SIGKILL it (with its children) once ``ready()`` is true; returns whether it was killed
    (False: it exited first). Raises TimeoutError after ``timeout`` seconds."""
    proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{' '.join(cmd)} still running after {timeout:.0f} s")
            time.sleep(poll)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


#: a ``sitecustomize`` that logs, in a torchrun worker (``RANK`` set), every path opened for writing and every
#: rename target into ``$KDHUB_WRITE_AUDIT/rank<R>.<pid>.txt``
_AUDIT = """import os, sys
_dir = os.environ.get("KDHUB_WRITE_AUDIT")
if _dir and "RANK" in os.environ:
    _out = open(os.path.join(_dir, "rank%s.%d.txt" % (os.environ["RANK"], os.getpid())), "a", buffering=1)
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def _hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            if (mode and any(c in mode for c in "wax+")) or (not mode and isinstance(flags, int) and flags & _WRITE):
                _out.write(os.path.realpath(os.fsdecode(args[0])) + "\\n")
        elif event == "os.rename":
            _out.write(os.path.realpath(os.fsdecode(args[1])) + "\\n")

    sys.addaudithook(_hook)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_nodes(args: Sequence[str], audit: Path, nodes: int = 2, env: Optional[Mapping[str, str]] = None,
              timeout: float = 600) -> Tuple[List[subprocess.CompletedProcess], Dict[int, Set[str]]]:
    """``kdhub ARGS`` on ``nodes`` single-process torchrun "nodes" on localhost (c10d rendezvous, gloo): what
    each agent returned, and per rank the files its worker opened for writing (recorded under ``audit``)."""
    audit.mkdir(parents=True, exist_ok=True)
    (audit / "sitecustomize.py").write_text(_AUDIT)
    e = {**os.environ, "KDHUB_PROGRESS": "0", "OMP_NUM_THREADS": "1", **(env or {}), "KDHUB_WRITE_AUDIT": str(audit)}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(audit), e.get("PYTHONPATH", "")) if p)
    endpoint = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes),
                               "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                               "--rdzv-id", "kdhub-nodes", "-m", "kdhub", *map(str, args)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
             for _ in range(nodes)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    writes: Dict[int, Set[str]] = {}
    for log in audit.glob("rank*.txt"):
        rank = int(log.name[4:].split(".")[0])
        writes.setdefault(rank, set()).update(log.read_text().split("\n"))
    return done, {r: {w for w in paths if w} for r, paths in writes.items()}


def shared_writes(writes: Mapping[int, Set[str]], root: Path) -> Set[str]:
    """Files under ``root`` that more than one rank opened for writing (or renamed into place); folders (opened
    to fsync a rename into them) do not count."""
    root_s = str(Path(root).resolve())
    seen: Dict[str, int] = {}
    for paths in writes.values():
        for path in {p for p in paths if p.startswith(root_s) and not os.path.isdir(p)}:
            seen[path] = seen.get(path, 0) + 1
    return {p for p, n in seen.items() if n > 1}


class FileServer:
    """An HTTP server on localhost (a context manager): ``files`` maps a URL path to its body; a path in ``cut``
    announces its whole length but sends only half of it before closing, one in ``chunked`` is sent as one chunk
    of HTTP/1.1's chunked encoding, cut off the same way; ``requests`` lists the paths asked for (query strings
    dropped)."""

    def __init__(self, files: Optional[Mapping[str, bytes]] = None):
        self.files: Dict[str, bytes] = dict(files or {})
        self.cut: Set[str] = set()
        self.chunked: Set[str] = set()
        self.requests: List[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                server.requests.append(path)
                body = server.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if path in server.chunked:
                    self.protocol_version = "HTTP/1.1"
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(f"{len(body):x}\r\n".encode() + body[: len(body) // 2])
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2] if path in server.cut else body)
                self.close_connection = True

            def log_message(self, *args):
                """Quiet: a test's output stays its own."""

        return Handler

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FileServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_scalars(folder: Path) -> Dict[str, List[Tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under ``folder``, read back with tensorboard's own
    ``EventAccumulator``: ``{tag: [(step, value), ...]}`` in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every value, not a sample
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def data_dir_fixtures(name: str):
    """Two pytest fixtures for a domain's test folder: ``name``, session-scoped and autouse, a temporary folder set
    as ``KDHUB_DATA_DIR`` (embedded sets are generated once per session), and a module-scoped autouse one that
    sets it again for each test module of the folder. One test process (a pytest-xdist worker) may run another
    domain's modules in between, whose own fixture points the variable elsewhere. A conftest assigns both:
    ``seg_data_dir, seg_data_env = data_dir_fixtures("seg_data_dir")``."""
    import pytest

    @pytest.fixture(scope="session", autouse=True, name=name)
    def folder(tmp_path_factory):
        path = tmp_path_factory.mktemp("kdhub-data")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KDHUB_DATA_DIR", str(path))
            yield path

    @pytest.fixture(scope="module", autouse=True, name=f"{name}_in_env")
    def in_env(request):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KDHUB_DATA_DIR", str(request.getfixturevalue(name)))
            yield

    return folder, in_env
