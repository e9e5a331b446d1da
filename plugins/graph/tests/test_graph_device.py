"""The graph config's ``device``: ``auto`` by default (CUDA when available, else the CPU), as speech and the mm
domains; ``cpu``, ``cuda`` and ``cuda:N`` accepted; a CUDA device that is not there refused before anything is
written. What needs a GPU (``cuda:N``, LOCAL_RANK under torchrun) is checked where one is present."""
import json

import pytest
import torch

from kdhub.cli import main as kdhub_main
from kdhub.config import ConfigError
from kdhub_graph.config import CONFIG_DIR, load
from kdhub.device import resolve_device

NO_CUDA = not torch.cuda.is_available()


def test_default_is_auto_and_auto_runs_on_cuda_only_where_it_is_present(tiny, tmp_path):
    assert load(tiny(), [])["device"] == "auto"
    for recipe in CONFIG_DIR.glob("*.yaml"):  # no shipped recipe pins a device
        assert load(recipe, ["data.path=x.npz"])["device"] == "auto", recipe
    assert resolve_device("auto", "c.yaml") == torch.device("cuda" if torch.cuda.is_available() else "cpu",
                                                            0 if torch.cuda.is_available() else None)
    assert resolve_device("cpu", "c.yaml") == torch.device("cpu")
    work = tmp_path / "w"
    cfg = tiny(**{"teacher__epochs": 2, "student__epochs": 2, "baseline": False})
    assert kdhub_main(["train", str(cfg), "--work-dir", str(work)]) == 0
    assert json.loads((work / "summary.json").read_text())["device"] == ("cuda:0" if torch.cuda.is_available()
                                                                        else "cpu")


def test_unknown_device_names_the_key_and_the_forms(tiny):
    for bad in ("gpu", "cuda:x", "CUDA", "cuda:-1"):
        with pytest.raises(ConfigError, match=r"tiny.yaml: key 'device': .* valid choices: auto, cpu, cuda or cuda:N"):
            load(tiny(), [f"device={bad}"])


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_cuda_is_refused_before_anything_is_written(device, tiny, tmp_path, capsys):
    work = tmp_path / "w"
    assert kdhub_main(["train", str(tiny()), "--work-dir", str(work), "--cfg-options", f"device={device}"]) == 2
    err = capsys.readouterr().err
    assert f"key 'device' is '{device}' but no CUDA device is available" in err and "set device=cpu" in err
    assert not work.exists()


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA device")
def test_cuda_devices_by_index():
    count = torch.cuda.device_count()
    assert resolve_device("cuda", "c.yaml") == torch.device("cuda", torch.cuda.current_device())
    assert resolve_device(f"cuda:{count - 1}", "c.yaml") == torch.device("cuda", count - 1)
    with pytest.raises(ConfigError, match=f"sees {count} CUDA device"):
        resolve_device(f"cuda:{count}", "c.yaml")
