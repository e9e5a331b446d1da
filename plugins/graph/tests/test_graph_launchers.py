"""``--launcher slurm`` and ``--launcher mpi``: a scheduler's task variables become torchrun's, so a run started
by ``srun`` or ``mpirun`` joins one process group like a torchrun run."""
import json
import os
import subprocess
import sys

import pytest

from graph_helpers import tiny_config
from kdhub.dist import LaunchError, scheduler_env
from kdhub.testing import free_port


def test_scheduler_variables_become_torchruns():
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[01-02]",
             "MASTER_ADDR": "gpu01"}
    assert scheduler_env("slurm", slurm) == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                                             "MASTER_ADDR": "gpu01", "MASTER_PORT": "29500"}
    mpi = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "3",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}
    assert scheduler_env("mpi", mpi) == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3",
                                         "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}
    with pytest.raises(LaunchError, match=r"--launcher mpi: set MASTER_ADDR .* mpirun -np N -x MASTER_ADDR"):
        scheduler_env("mpi", {k: v for k, v in mpi.items() if k != "MASTER_ADDR"})
    with pytest.raises(LaunchError, match=r"--launcher slurm needs .*SLURM_PROCID.* srun --ntasks N kdhub train"):
        scheduler_env("slurm", {"SLURM_NTASKS": "2"})


@pytest.mark.parametrize("launcher", ["slurm", "mpi"])
def test_two_scheduler_tasks_form_one_run(tmp_path, launcher):
    """Two tasks as ``srun --ntasks 2`` / ``mpirun -np 2`` start them on one node (their variables set by hand):
    one distributed run, rank 0 writing the summary."""
    cfg = tiny_config(tmp_path, device="cpu", baseline=False, **{"student__epochs": 6, "teacher__epochs": 4})
    port = str(free_port())
    names = {"slurm": ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
             "mpi": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK")}[launcher]
    procs = []
    for rank in range(2):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update({names[0]: str(rank), names[1]: "2", names[2]: str(rank), "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": port, "KDHUB_PROGRESS": "0", "OMP_NUM_THREADS": "1"})
        procs.append(subprocess.Popen([sys.executable, "-m", "kdhub", "train", str(cfg), "--work-dir",
                                       str(tmp_path / "w"), "--launcher", launcher], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o + e for o, e in outs)
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert summary["world_size"] == 2 and 0 <= summary["student"]["test_acc"] <= 100
