"""Print the README's GPU runs (section "GPUs and mixed precision") and its `kdhub list` start-up sentence
(section "Core overhead") from the committed JSONs, so that no figure of either is typed by hand.

The GPU runs come from ``results/gpu_check.json`` (run 1, every domain) and the later runs that redid part of it
(``results/gpu_check_speech.json``, ``results/gpu_check_speech_amp.json``): for each run its command as the JSON
records it, its commit and machine, a table of each domain's modes (outcome, wall time, peak CUDA memory), the
step ratios each domain measured on the GPU (from the first run that measured them) and the errors the failed
modes stopped with. The start-up sentence comes from ``results/list_startup.json``.

    python3 scripts/gpu_readme.py            # the GPU runs
    python3 scripts/gpu_readme.py startup    # the "kdhub list" start-up sentence
"""
from __future__ import annotations

import re
import sys
from typing import List, Optional, Tuple

from profile_readme import _load
from readme_text import wrap

#: the GPU check's JSONs in the order they ran (run 1 first)
RUNS = ("gpu_check", "gpu_check_speech", "gpu_check_speech_amp")
MODES = ("single", "torchrun", "amp")


def _runs() -> List[Tuple[str, dict]]:
    """(name, record) of each GPU run whose JSON is committed, in run order."""
    return [(name, record) for name in RUNS if (record := _load(name)) is not None]


def _cell(mode: Optional[dict]) -> str:
    """One table cell: the mode's outcome, wall time and peak CUDA memory ("-": not run)."""
    if mode is None:
        return "-"
    if not mode["ok"]:
        return f"**failed** ({mode['wall_s']:.0f} s)"
    return f"ok, {mode['wall_s']:.0f} s, {mode['cuda']['max_memory_allocated_mib']:.0f} MiB"


def _row(label: str, domain: dict) -> str:
    return f"| {label} | " + " | ".join(_cell(domain.get(m)) for m in MODES) + " |"


def _head(name: str, record: dict, machine: str = "") -> str:
    """A run's command (as the JSON records it: ``--out`` is the GPU machine's path, the file committed is the
    one named after it), commit, machine if given, wall time and JSON."""
    return (f"`{record['run']['command']}` (commit {record['run']['commit'][:7]}, {machine + ', ' if machine else ''}"
            f"{record['wall_s']:.0f} s; `results/{name}.json`)")


def _machine(record: dict) -> str:
    m = record["machine"]
    return f"{m['gpu']}, torch {m['torch']}, NCCL {m['nccl']}"


def _error(log_tail: str) -> Tuple[str, str]:
    """The exception type and first sentence of the last exception line in a failed mode's log tail."""
    found = re.findall(r"(\w+(?:Error|Exception)): (.+)", log_tail)
    kind, message = found[-1]
    return kind, message.split(". ")[0].rstrip(".")


def _ratio_text(domain: str, r: dict) -> str:
    """What one domain's step ratios measured on the GPU."""
    if domain == "graph":
        return (f"a GLNN epoch over {r['nodes']:,} nodes, batch {r['batch']}, takes {r['ratio']}x the plain "
                f"student's epoch ({r['glnn_epoch_s'] * 1000:.1f} ms vs {r['plain_student_epoch_s'] * 1000:.1f} ms)")
    if domain == "segmentation":
        return (f"a TransKD step takes {r['ratio_transkd_vs_student_plus_teacher_backbone']}x a student step plus "
                f"the teacher's backbone forward ({r['transkd_step_ms']} ms vs {r['student_step_ms']} + "
                f"{r['teacher_forward_backbone_ms']} ms, batch {r['batch']} of {'x'.join(map(str, r['image_size']))})")
    if domain == "speech":
        return (f"a distillation step with the two feature pairs takes {r['distill_vs_student_plus_teacher']}x a "
                f"student step plus the teacher's forward ({r['distill_step']} ms vs {r['student_step']} + "
                f"{r['teacher_forward']} ms, {r['batch']}); from cached teacher outputs, the output term alone costs "
                f"{r['cached_output_only_vs_student']}x the student step")
    return "measured (see the JSON)"


def step_ratio_lines(runs: List[Tuple[str, dict]]) -> List[str]:
    """One bullet per domain of run 1: its step ratios from the first run that measured them, or the error of
    the run that tried."""
    out = []
    for domain in runs[0][1]["domains"]:
        tried = [(i, rec["domains"][domain]["step_ratios"]) for i, (_, rec) in enumerate(runs, 1)
                 if "step_ratios" in rec["domains"].get(domain, {})]
        done = [(i, s) for i, s in tried if s["ok"]]
        if done:
            i, s = done[0]
            out.append(f"- {domain} (run {i}): {_ratio_text(domain, s['result'])}")
        elif tried:
            i, s = tried[-1]
            out.append(f"- {domain}: not measured (run {i} stopped there: {s['error'].split(';')[0]}; fixed since)")
    return [line + (";" if k < len(out) - 1 else ".") for k, line in enumerate(out)]


def failures_paragraph(runs: List[Tuple[str, dict]]) -> str:
    """Why the failed modes failed: detection (every mode, one error), speech in run 1 and its fp16 `--amp`."""
    first = runs[0][1]["domains"]
    det = [first["detection"][m] for m in MODES if m in first.get("detection", {})]
    det_errors = {_error(m["log_tail"])[1] for m in det if not m["ok"]}
    speech_first = [first["speech"][m] for m in MODES if m in first.get("speech", {})]
    speech_errors = {_error(m["log_tail"]) for m in speech_first if not m["ok"]}
    amp_failed = [(i, rec["domains"]["speech"]["amp"]) for i, (_, rec) in enumerate(runs, 1)
                  if i > 1 and not rec["domains"].get("speech", {}).get("amp", {"ok": True})["ok"]]
    text = ""
    if det and len(det_errors) == 1 and not any(m["ok"] for m in det):
        text += (f"Detection failed in every mode for one reason, mmcv's missing CUDA ops (`{det_errors.pop()}`); "
                 "it has not yet run on a GPU with an mmcv built with CUDA ops (`MMCV_WITH_OPS=1 FORCE_CUDA=1`), "
                 "which is the next check to run. ")
    if speech_first and len(speech_errors) == 1 and not any(m["ok"] for m in speech_first):
        kind, message = speech_errors.pop()
        text += ("Speech failed in run 1 only because its carried `ruamel.yaml` was too new for HyperPyYAML "
                 f"(installed without dependencies; each mode stopped with `{kind}: {message}`)")
        for i, amp in amp_failed[:1]:
            text += (f", and its fp16 `--amp` in run {i} stopped with SpeechBrain's "
                     f"\"{_error(amp['log_tail'])[1]}\" in the Conv-TasNet baseline")
        text += "."
    return wrap(text.strip())


def gpu_runs() -> str:
    """The README's GPU runs: a table for run 1, one for the runs after it, the step ratios and the failures."""
    runs = _runs()
    (name1, run1), later = runs[0], runs[1:]
    head = "| domain | one process | torchrun, 1 process, NCCL | `--amp` |\n| --- | --- | --- | --- |"
    out = [f"Run 1, {_head(name1, run1, _machine(run1))}:", "", head]
    out += [_row(domain, entry) for domain, entry in run1["domains"].items()]
    if later:
        same = all(_machine(rec) == _machine(run1) for _, rec in later)
        heads = " and ".join(f"run {i}, {_head(name, rec)}" for i, (name, rec) in enumerate(later, 2))
        out += ["", heads[0].upper() + heads[1:] + (", same GPU, torch and NCCL:" if same else ":"), "", head]
        out += [_row(f"{domain} (run {i})", entry) for i, (_, rec) in enumerate(later, 2)
                for domain, entry in rec["domains"].items()]
    out += ["", "Step ratios on the GPU (medians of synchronised calls, one process each):"]
    out += step_ratio_lines(runs)
    out += ["", failures_paragraph(runs)]
    return "\n".join(out)


def startup() -> str:
    """The README's sentence on `kdhub list`'s start-up cost, from ``results/list_startup.json``."""
    j = _load("list_startup")
    tree = " whose tree had uncommitted changes, as the JSON records" if j["uncommitted_changes"] else ""
    return (f"`benchmarks/list_startup.py` (`results/list_startup.json`, from a clone at commit {j['commit'][:7]}"
            f"{tree}; `{j['command']}`): `kdhub list` with all four plugins installed takes **{j['ratio']:.3f}x** "
            f"(target <= {j['target_ratio']}) the time of `python -c \"import torch\"` (medians of {j['runs']} "
            f"interleaved runs: {j['kdhub_list_median_s']:.3f} s vs {j['import_torch_median_s']:.3f} s), since "
            "every plugin registers by import string and no framework is imported.")


def main() -> None:
    parts = {"startup": startup}
    if sys.argv[1:]:
        if sys.argv[1] not in parts:
            raise SystemExit(f"usage: gpu_readme.py [{'|'.join(parts)}] (no argument: the GPU runs)")
        print(parts[sys.argv[1]]())
        return
    print(gpu_runs())


if __name__ == "__main__":
    main()
