"""Launcher behaviour on bad input: clear messages, no tracebacks; doctor; demo report."""
import json

from core_helpers import ROOT, run_kdhub


def test_a_task_whose_plugin_is_disabled_names_its_package_and_the_variable(tmp_path):
    cfg = tmp_path / "seg.py"
    cfg.write_text("task = 'segmentation'\nmodel = dict()\n")
    proc = run_kdhub(["train", cfg], check=False, env={"KDHUB_DISABLE_PLUGINS": "*"})
    assert proc.returncode == 2
    assert "task 'segmentation' belongs to kdhub-segmentation, which is installed but disabled" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_and_bad_keys(third_party_site, tmp_path):
    proc = run_kdhub(["train", tmp_path / "nope.json"], check=False)
    assert proc.returncode == 2 and "config file not found" in proc.stderr
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"task": "toy", "studnet": {"hidden": 4}}))
    proc = run_kdhub(["train", cfg, "--work-dir", tmp_path / "w"], site=third_party_site, check=False)
    assert proc.returncode == 2
    assert str(cfg) in proc.stderr and "'studnet'" in proc.stderr and "did you mean 'student'" in proc.stderr
    proc = run_kdhub(["train", ROOT / "examples" / "kdhub-toy" / "toy.json", "--work-dir", tmp_path / "w",
                      "--cfg-options", "lr=fast"], site=third_party_site, check=False)
    assert "key 'lr' must be float" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_kdhub(["train", ROOT / "examples" / "kdhub-toy" / "toy.json", "--cfg-options", "method=dkd"],
                     site=third_party_site, check=False)
    assert "valid choices: none, toy_kd" in proc.stderr


def test_unknown_task_not_first_party(tmp_path):
    cfg = tmp_path / "x.json"
    cfg.write_text(json.dumps({"task": "audio-llm"}))
    proc = run_kdhub(["train", cfg], check=False)
    assert proc.returncode == 2 and "unknown task 'audio-llm'" in proc.stderr


def test_doctor_reports_versions():
    proc = run_kdhub(["doctor"], check=False)
    torch_row = next(line for line in proc.stdout.splitlines() if line.startswith("torch "))
    assert "installed 2.11.0" in torch_row  # the versions now come from the distributions' own requirements


def test_report_png_is_valid(tmp_path):
    import struct
    import zlib
    from kdhub.report import write_report
    from kdhub.task import DemoResult, ModelResult
    res = DemoResult("toy", "toy demo", "acc", [ModelResult("teacher", 90.0, 10000, 0.5),
                                                  ModelResult("baseline", 60.0, 100, 0.01),
                                                  ModelResult("distilled", 80.0, 100, 0.01, std=1.2)])
    md = write_report([res], tmp_path).read_text()
    assert "| distilled | 80.00 ± 1.20 | 100 | 0.010 |" in md
    data = (tmp_path / "report.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == h * (1 + 3 * w)
