"""Print the measured text of the README's speech acceptance section from ``results/speech_distill.json``.

The README pastes this output, never types its figures: the run (config, data, parameters, students' steps, the
teacher's scores, wall time, the machine the JSON records), the two settings, the per-seed SI-SNRi table, the SDRi
means and acceptance verdicts, the spread of the gains, and the step-time ratios. Per-seed gains, steps and minutes
are computed here from the JSON's own values. The comparison with the earlier run on a GPU-trained teacher reads the
JSON committed at ``EARLIER_GPU_TEACHER`` with git; without git history that sentence is left out.

    python3 scripts/speech_readme.py
"""
from __future__ import annotations

import re
import statistics
from typing import List, Optional

from demo_readme import minutes
from profile_readme import ROOT, _load, _met
from readme_text import from_history, wrap

#: the acceptance targets as ``benchmarks/speech_distill.py`` checks them (the JSON records only the verdicts)
GAIN_TARGET_DB, STEP_TARGET, CACHED_TARGET = 0.5, 1.10, 1.05
#: the commit whose ``results/speech_distill.json`` holds the earlier run with a teacher trained on a GPU
EARLIER_GPU_TEACHER = "6669f386c73316984410c96a807b7471e492c9cf"


def _gains(budget: dict) -> List[float]:
    """Distilled minus baseline SI-SNRi of each seed (dB), from the unrounded per-seed scores."""
    return [s["distilled"]["si-snri"] - s["baseline"]["si-snri"] for s in budget["seeds"]]


def _label(i: int) -> str:
    return f"({chr(ord('a') + i)})"


def _batch_size(j: dict) -> int:
    """The students' batch size: the step timing runs one batch of the config's training batch size."""
    return int(j["step_ms"]["batch"].split(" x ")[0])


def _steps(mixtures: int, epochs: int, batch: int) -> int:
    return -(-mixtures // batch) * epochs


def _data(j: dict) -> str:
    """The JSON's data description as a phrase: training and test mixtures, their length, unseen test voices."""
    m = re.match(r"embedded: (\d+) train / \d+ valid / (\d+) test .* of ([\d.]+) s", j["data"])
    if not m:
        return j["data"]
    train, test, seconds = m.groups()
    return (f"the embedded set ({int(train):,} training mixtures of {seconds} s; {int(test):,} test mixtures of "
            "voices never heard in training)")


def run_paragraph(j: dict) -> str:
    """Which run the JSON holds: its command as the settings and seeds show it, data, config, models, budget,
    the teacher the run trained, wall time and machine."""
    budgets, machine = j["budgets"], j["machine"]
    labelled = " ".join(str(0 if b["labelled_mixtures"] == "all" else b["labelled_mixtures"]) for b in budgets)
    seeds = " ".join(str(s["seed"]) for s in budgets[0]["seeds"])
    first, batch = budgets[0], _batch_size(j)
    sd = first["student_data"]
    steps = _steps(sd["labelled"] + sd["unlabelled"], first["student_epochs"], batch)
    t = j["teacher"]
    provenance = j["teacher_checkpoint"]["provenance"]
    own = re.match(r"trained by this run \((.*)\)$", provenance)
    teacher = (f"the benchmark first trained the teacher itself ({own.group(1) if own else provenance}, "
               f"{j['teacher_epochs']} epochs; {t['si-snri']:.2f} dB SI-SNRi, {t['sdri']:.2f} dB SDRi on the test "
               "voices), then the students, then the step times"
               if provenance.startswith("trained by this run") else
               f"the teacher was given ({provenance}; {t['si-snri']:.2f} dB SI-SNRi, "
               f"{t['sdri']:.2f} dB SDRi on the test voices); the run trained the students, then timed the steps")
    recorded = (f"the JSON records commit {j['commit'][:7]} and `{j['command']}`" if j.get("commit") else
                "the JSON records no commit, command or date")
    return wrap(
        f"Acceptance benchmark (`benchmarks/speech_distill.py --labelled {labelled} --seeds {seeds}`, as the settings "
        f"and seeds in `results/speech_distill.json` show; {recorded}), on "
        f"{_data(j)}, config `{j['config']}`: a Conv-TasNet teacher ({j['params']['teacher']:,} parameters) distilled "
        f"into a Conv-TasNet student ({j['params']['student']:,} parameters); students trained "
        f"{first['student_epochs']} epochs ({steps:,} steps of batch {batch}). The run took "
        f"{minutes(j['wall_time_s'])} in all (`wall_time_s`; `--timing-only` re-measures the step times without "
        f"changing it): {teacher}. Machine as the JSON records it: {machine['cpu_threads']} torch threads, torch "
        f"{machine['torch']}, SpeechBrain {machine['speechbrain']}, `{machine['platform']}`.")


def settings_paragraph(j: dict) -> str:
    """The settings compared: every mixture labelled, and the semi-supervised ones (labelled, unlabelled, the
    baseline's epochs over its labelled mixtures), all with the same steps."""
    batch = _batch_size(j)
    parts = []
    for i, b in enumerate(j["budgets"]):
        sd = b["student_data"]
        if b["labelled_mixtures"] == "all":
            parts.append(f"{_label(i)} all {sd['labelled']:,} training mixtures labelled")
        else:
            parts.append(
                f"{_label(i)} semi-supervised (`--labelled {b['labelled_mixtures']}`): the students have the "
                f"references of the first {sd['labelled']:,} mixtures only, the distilled student also distils the "
                f"other {sd['unlabelled']:,} from the teacher alone, and the baseline takes its "
                f"{_steps(sd['labelled'], sd['baseline_epochs'], batch):,} steps as {sd['baseline_epochs']} epochs "
                f"over its {sd['labelled']:,} labelled mixtures")
    first = j["budgets"][0]["student_data"]
    steps = _steps(first["labelled"] + first["unlabelled"], j["budgets"][0]["student_epochs"], batch)
    count = {1: "One setting", 2: "Two settings", 3: "Three settings"}.get(len(parts), f"{len(parts)} settings")
    return wrap(f"{count}, each with the same teacher, architecture, initial weights, {steps:,} steps "
                 f"and seeds for baseline and distilled student: " + "; ".join(parts)
                 + ". SI-SNRi (dB) on the unseen test voices:")


def table(j: dict) -> str:
    """Per-seed SI-SNRi of baseline and distilled student in every setting, their gain, and the means."""
    budgets = j["budgets"]
    head = "| seed | " + " | ".join(f"{_label(i)} {c}" for i, b in enumerate(budgets)
                                    for c in ("baseline", "distilled", "gain")) + " |"
    lines = [head, "|---|" + "---|" * 3 * len(budgets)]
    for k, s in enumerate(budgets[0]["seeds"]):
        cells = []
        for b in budgets:
            r = b["seeds"][k]
            cells += [f"{r['baseline']['si-snri']:.2f}", f"{r['distilled']['si-snri']:.2f}",
                      f"{_gains(b)[k]:+.2f}"]
        lines.append(f"| {s['seed']} | " + " | ".join(cells) + " |")
    cells = []
    for b in budgets:
        cells += [f"{b['mean']['baseline']['si-snri']:.2f}", f"{b['mean']['distilled']['si-snri']:.2f}",
                  f"**{b['si_snri_gain_db']:+.2f}**"]
    lines.append("| **mean** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _earlier_gpu_teacher() -> Optional[str]:
    """The all-labelled result of the run with a teacher trained on a GPU, from the JSON committed at
    ``EARLIER_GPU_TEACHER``; None when git or that commit is not at hand."""
    before = from_history(EARLIER_GPU_TEACHER, "results/speech_distill.json")
    if before is None:
        return None
    b = next((x for x in before["budgets"] if x["labelled_mixtures"] == "all"), None)
    if b is None:
        return None
    where = "trained on a GPU" if "cuda" in before["teacher_checkpoint"]["provenance"] else "trained separately"
    return (f"an earlier run with a teacher of the same recipe {where} ({before['teacher']['si-snri']:.2f} dB SI-SNRi; "
            f"`git show {EARLIER_GPU_TEACHER[:7]}:results/speech_distill.json`) gave "
            + " / ".join(f"{g:+.2f}" for g in _gains(b)) + f", mean {b['si_snri_gain_db']:+.2f}")


def results_paragraph(j: dict) -> str:
    """SDRi means, the acceptance verdict, how the gains spread over the seeds, and how the semi-supervised
    distilled students compare with the fully labelled baseline."""
    budgets = j["budgets"]
    sdri = ", ".join(f"{_label(i)} {b['mean']['baseline']['sdri']:.2f} -> {b['mean']['distilled']['sdri']:.2f} dB"
                     for i, b in enumerate(budgets))
    ok = [b["acceptance_gain_ok"] for b in budgets]
    verdict = ("met in every setting" if all(ok) else "not met in any setting" if not any(ok) else
               "met in " + ", ".join(_label(i) for i, b in enumerate(budgets) if b["acceptance_gain_ok"])
               + " only")
    text = f"SDRi, mean: {sdri}. Target (distilled >= baseline + {GAIN_TARGET_DB} dB SI-SNRi): {verdict}."
    full = next((b for b in budgets if b["labelled_mixtures"] == "all"), None)
    if full is not None:
        gains = _gains(full)
        above = [s["seed"] for s, g in zip(full["seeds"], gains) if g >= GAIN_TARGET_DB]
        rest = [g for s, g in zip(full["seeds"], gains) if s["seed"] not in above]
        text += (f" With every mixture labelled the per-seed gains run from {min(gains):+.2f} to {max(gains):+.2f} "
                 "dB; " + (f"only seed {above[0]} reaches the target on its own (without it the mean gain would be "
                           f"{statistics.mean(rest):+.2f} dB)" if len(above) == 1 and rest else
                           f"{len(above)} of {len(gains)} seeds reach the target on their own") + ".")
        earlier = _earlier_gpu_teacher()
        if earlier:
            text += f" In that setting {earlier}."
    for i, b in enumerate(budgets):
        if b["labelled_mixtures"] == "all":
            continue
        gains = _gains(b)
        text += f" In {_label(i)} every seed gains, the least {min(gains):+.2f} dB" if min(gains) > 0 else \
            f" In {_label(i)} not every seed gains (the least {min(gains):+.2f} dB)"
        if full is not None:
            d, base = b["mean"]["distilled"]["si-snri"], full["mean"]["baseline"]["si-snri"]
            text += (f"; its distilled students' mean ({d:.2f} dB) is {'above' if d > base else 'not above'} the "
                     f"fully labelled baseline's ({base:.2f} dB)")
        text += "."
    return wrap(text)


def step_paragraph(j: dict) -> str:
    """The step-time ratios: online distillation against student step plus teacher forward, and the cached
    steps against the plain student step, with the load the JSON records before the timing (and, when a later
    ``--timing-only`` run re-measured them, that run's commit)."""
    s, rerun = j["step_ms"], j.get("step_ms_run")
    m = rerun["machine"] if rerun else j["machine"]
    return wrap(
        f"Step times (`step_ms`"
        + (f", re-measured by `{rerun['command']}` at commit {rerun['commit'][:7]}" if rerun else "")
        + f"), interleaved in one process on one fixed batch of {s['batch']}, "
        f"{m['cpu_threads']} torch threads, load average {m['load_average_1min_before_timing']} over the minute "
        f"before the timing: an online distillation step (teacher forward, output + two feature pairs) takes "
        f"**{s['distill_vs_student_plus_teacher']:.3f}x** (student step + teacher forward) ({s['distill_step']:.1f} "
        f"ms vs {s['student_step']:.1f} + {s['teacher_forward']:.1f} ms; target <= {STEP_TARGET:.2f}: "
        f"{_met(j['acceptance_step_ok'])}). With the teacher's outputs cached, output distillation takes "
        f"**{s['cached_output_only_vs_student']:.3f}x** the plain student step ({s['cached_output_only_step']:.1f} "
        f"ms vs {s['student_step']:.1f} ms; target <= {CACHED_TARGET:.2f}: {_met(j['acceptance_cached_ok'])}); with "
        f"the cached features and their learned adapters as well, {s['cached_with_features_vs_student']:.3f}x "
        "(`cached_with_features_vs_student`: the adapters' own forward and backward, which no cache can hold).")


def main() -> None:
    j = _load("speech_distill")
    if j is None:
        raise SystemExit(f"no {ROOT / 'results' / 'speech_distill.json'}")
    print("\n\n".join([run_paragraph(j), settings_paragraph(j), table(j), results_paragraph(j), step_paragraph(j)]))


if __name__ == "__main__":
    main()
