"""The GPU path checked on CPU: the process group's backend, where collectives put their tensors, CUDA-aware
timing, the core Trainer's mixed precision (``kdhub train --amp``) and the device script's profiles."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as tdist
from torch import nn
from torch.distributed.distributed_c10d import Backend, BackendConfig

from kdhub import dist, timing
from kdhub.engine import Trainer
from kdhub.runs import RunContext, RunInfo

from core_helpers import ROOT, run_kdhub


def _launch_env(monkeypatch, cuda: bool):
    """torchrun's environment and a machine with (``cuda``) or without CUDA, recording the group's backend."""
    for key, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(key, value)
    calls = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.setdefault("device", i))
    monkeypatch.setattr(tdist, "is_initialized", lambda: False)
    monkeypatch.setattr(tdist, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    return calls


def test_with_cuda_one_group_serves_cpu_tensors_by_gloo_and_cuda_tensors_by_nccl(monkeypatch):
    calls = _launch_env(monkeypatch, cuda=True)
    assert dist.init_distributed("pytorch")
    assert calls["device"] == 0  # LOCAL_RANK's GPU
    # torch's own parser of the backend string: CPU tensors by gloo, CUDA tensors by NCCL
    assert BackendConfig(Backend(calls["backend"])).get_device_backend_map() == {"cpu": "gloo", "cuda": "nccl"}


def test_without_cuda_the_group_is_gloo(monkeypatch):
    calls = _launch_env(monkeypatch, cuda=False)
    assert dist.init_distributed("pytorch")
    assert calls == {"backend": "gloo"}


def test_control_collectives_are_cpu_tensors(tmp_path, monkeypatch):
    """``all_ranks_true`` runs on every graph step: its tensor must be a CPU one, which the group's gloo side
    carries (NCCL alone refuses CPU tensors). Checked in a real one-process gloo group."""
    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        seen = []
        real = tdist.all_reduce
        monkeypatch.setattr(tdist, "all_reduce", lambda t, *a, **k: (seen.append(t.device.type), real(t, *a, **k))[1])
        assert dist.all_ranks_true(True) and not dist.all_ranks_true(False)
        assert seen == ["cpu", "cpu"]
        assert dist.gather_objects({"a": 1}) == [{"a": 1}]
    finally:
        tdist.destroy_process_group()


def test_timing_waits_for_queued_cuda_work(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: events.append("sync"))
    timing.median_seconds(lambda: events.append("call"), repeats=2, warmup=1)
    # the warm-up untimed; each timed call bracketed by synchronisations
    assert events == ["call", "sync", "call", "sync", "sync", "call", "sync"]


class _Probe(nn.Module):
    """A linear model that records the dtype its matrix product ran in."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.dtypes = []

    def forward(self, x, y):
        out = self.lin(x)
        self.dtypes.append(out.dtype)
        return {"mse": ((out.float().squeeze(1) - y) ** 2).mean()}


@pytest.mark.parametrize("amp", [False, True])
def test_trainer_amp_is_bf16_autocast_and_still_learns(tmp_path, amp):
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    model = _Probe()
    before = ((model.lin(x).squeeze(1) - y) ** 2).mean().item()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=0.05), RunContext(RunInfo("t", "m", tmp_path)),
                      epochs=30, batches=lambda e: [(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)],
                      progress=False, amp=amp)
    trainer.fit()
    assert set(model.dtypes) == {torch.bfloat16 if amp else torch.float32}
    assert model.lin.weight.dtype == torch.float32  # autocast leaves the weights (and the optimiser) in fp32
    after = ((model.lin(x).squeeze(1) - y) ** 2).mean().item()
    assert after < 0.05 * before


def test_amp_is_refused_by_name_for_a_task_without_it(third_party_site, tmp_path):
    proc = run_kdhub(["train", ROOT / "examples" / "kdhub-toy" / "toy.json", "--work-dir", tmp_path / "w", "--amp"],
                     site=third_party_site, check=False)
    assert proc.returncode == 2
    assert "does not support --amp" in proc.stderr
    assert not (tmp_path / "w").exists()


def test_the_device_scripts_profiles_run_each_benchmarks_profile_and_keep_its_json(tmp_path):
    """``scripts/gpu_check.py --profiles``, dry-run on the CPU for the graph domain: it runs the graph benchmark's
    ``--profile-only`` as its own process on the script's device, at the dry run's 2,000 nodes, and keeps the JSON
    that process wrote, whole; graph has one size, so there is no recipe piece, and no train run or step-ratio
    piece was asked for."""
    out = tmp_path / "gpu_profile.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--domains", "graph", "--modes",
           "--no-ratios", "--profiles", "--profile-repeats", "1", "--out", str(out), "--work-dir", str(tmp_path / "w")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "KDHUB_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert list(record["domains"]["graph"]) == ["profile_tiny"] and record["all_ok"] is True
    piece = record["domains"]["graph"]["profile_tiny"]
    assert piece["command"].startswith("python benchmarks/graph_reproduce.py --profile-only ")
    assert "--device cpu" in piece["command"]
    result = piece["result"]
    assert result["benchmark"] == "graph_profile" and result["device"] == "cpu"
    assert result["graph"].startswith("CSBM, 2000 nodes")
    assert set(result["methods"]) == {"glnn", "ffg2m"}
    for method in result["methods"].values():
        assert method["full_ms"] > 0 and method["peak_memory"]["ratio"] > 0
