"""Print the READMEs' text on the segmentation acceptance benchmark from the committed JSONs.

Every measured figure printed here comes from ``results/segmentation_distill.json`` (the run after the TransKD
modules were aligned with the authors' released code), ``results/before_fidelity/segmentation_distill.json`` (the
run before) or ``results/demo.json`` (the ``make demo`` run); gains, differences and minutes are computed here from
those files' values. Neither benchmark JSON records a commit, so none is printed for them. Paragraphs are wrapped
as the READMEs wrap them, so the output is pasted into the README unchanged:

    python3 scripts/segmentation_readme.py          # README.md: the acceptance benchmark in "Segmentation"
    python3 scripts/segmentation_readme.py configs  # plugins/segmentation/README.md: the model sizes in "Configs"
    python3 scripts/segmentation_readme.py plugin   # plugins/segmentation/README.md: "Benchmark" and the targets
"""
from __future__ import annotations

import sys
from typing import Dict, List, Tuple

from demo_readme import minutes
from profile_readme import _load, _met, _threads
from readme_text import KEEP, wrap

AFTER, BEFORE = "results/segmentation_distill.json", "results/before_fidelity/segmentation_distill.json"
#: JSON key -> (the root README's short label, the plugin README's label)
LABELS = {"baseline": ("baseline", "baseline (labels only)"), "transkd-base": ("TransKD-Base", "TransKD-Base"),
          "transkd-gl": ("GL", "TransKD-GL"), "transkd-ea": ("EA", "TransKD-EA"),
          "kd": ("logit KD", "logit KD (T=1)"), "cwd": ("CWD", "CWD (tau=4)")}
ALIGNED = (f"EA mixing weights start at {'0.1 x (k + 1)'.replace(' ', KEEP)}, GL-Mixer uses SegFormer's attention "
           "with 8 heads and no qkv bias")


def _load_both() -> Tuple[dict, dict]:
    return _load("segmentation_distill"), _load("before_fidelity/segmentation_distill")


def _context() -> Tuple[dict, ...]:
    """What the root and plugin texts both read: the run (``a``), the run before the alignment (``b``) and its
    methods, the run's methods, targets, teacher, step ratio and step times."""
    a, b = _load_both()
    acc = a["accuracy"]
    return (a, b, b["accuracy"]["methods"], acc["methods"], a["targets"], acc["teacher"], _step(a),
            a["step_time"])


def _m(x: float) -> str:
    """An mIoU as the tables give it: one decimal."""
    return f"{x:.1f}"


def _gain(x: float) -> str:
    return f"{x:+.1f}"


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def _student_iters(a: dict) -> int:
    """The students' iterations: every run of every method records them; they must agree."""
    iters = {r["iters"] for m in a["accuracy"]["methods"].values() for r in m["runs"]}
    if len(iters) != 1:
        raise SystemExit(f"the students' runs differ in iterations: {sorted(iters)}")
    return iters.pop()


def _student_params(a: dict) -> int:
    params = {m["params"] for m in a["accuracy"]["methods"].values()}
    if len(params) != 1:
        raise SystemExit(f"{AFTER}: the students differ in parameters: {sorted(params)}")
    return params.pop()


def _seeds(a: dict) -> str:
    return " and ".join(map(str, a["seeds"])) if len(a["seeds"]) == 2 else ", ".join(map(str, a["seeds"]))


def _machine(a: dict) -> str:
    """What the JSON records of the run's machine: its cores and its 1-minute load average."""
    mach = a["machine"]
    return (f"a {mach['cpu_count']}-core CPU machine (1-minute load average {mach['load_average_start'][0]} at the "
            f"start, {mach['load_average_end'][0]} at the end; {_commit(a)})")


def _commit(j: dict) -> str:
    """The commit a benchmark JSON records (older ones record none)."""
    if not j.get("commit"):
        return "the JSON records no commit"
    return f"commit {j['commit'][:7]}" + (", with uncommitted changes" if j.get("uncommitted_changes") else "")


def _moves(b: dict, a: dict) -> str:
    """Each method's move from the run before the alignment to the run after, split by whether it is larger than
    the seed spread (the larger of the two runs' standard deviations over seeds)."""
    mb, ma = b["accuracy"]["methods"], a["accuracy"]["methods"]
    outside: List[str] = []
    within: List[str] = []
    for key, (label, _) in LABELS.items():
        if key not in mb or key not in ma:
            continue
        diff = ma[key]["test_mIoU"] - mb[key]["test_mIoU"]
        spread = max(ma[key]["test_mIoU_std"], mb[key]["test_mIoU_std"])
        (outside if abs(diff) > spread else within).append(f"{label} by {diff:+.2f}")
    text = "the aligned run moves "
    if outside:
        text += ", ".join(outside) + " (more than either run's seed spread)"
    if within:
        text += ("; " if outside else "") + ", ".join(within) + " (within the seed spread)"
    return text + " in test mIoU"


def _same_schedule(b: dict, a: dict) -> str:
    same = b["seeds"] == a["seeds"] and b["accuracy"]["teacher"]["iters"] == a["accuracy"]["teacher"]["iters"] \
        and _student_iters(b) == _student_iters(a)
    return "same seeds and iterations" if same else "other seeds or iterations"


def _step(a: dict) -> Dict[str, str]:
    st = a["step_time"]
    return {"setup": f"one process, {_threads(st['threads'])}, batch {st['batch']} of "
                     f"{st['image_size'][0]} x {st['image_size'][1]}, median over interleaved rounds, load average "
                     f"{st['load_average'][0]} after it",
            "ratio": str(st["ratio_transkd_vs_student_plus_teacher_backbone"]),
            "full": str(st["ratio_transkd_vs_student_plus_teacher_full"])}


def _demo(a: dict) -> str:
    """The status line on the demo's 10-minute target: from the benchmark JSON's own demo timing if it has one,
    else from the segmentation demo's wall time in the ``make demo`` run of ``results/demo.json``."""
    d = _load("demo")
    head = f"`kdhub demo segmentation` under 10 minutes on {d['machine']['cores']} cores: "
    if "demo" in a:
        demo = a["demo"]
        return (head + f"{_met(demo['under_10_min'])}: {minutes(demo['wall_s'])} in this benchmark's run from a fresh "
                f"work dir and data cache ({demo['cpu_count']} cores, load average {demo['load_average_before'][0]} "
                f"before it, {demo['load_average_after'][0]} after it).")
    wall = d["domains"]["segmentation"]["wall_time_s"]
    return (head + f"{_met(wall < 600)} in the one recorded run, the `make demo` run of `results/demo.json` (commit "
            f"{d['commit'][:7]}, {d['machine']['cores']} cores), where segmentation took {minutes(wall)}. That run "
            f"shared its {d['machine']['cores']} cores with the test suite and a benchmark (main README, `make demo` "
            "paragraph), so its "
            "wall times are inflated against a quiet machine; no quiet-machine time is recorded, and this benchmark "
            "ran with `--skip-demo`.")


#: the first paragraphs of the root README's and the plugin README's texts; ``_run_facts`` fills them in
ROOT_INTRO = """Acceptance benchmark (`benchmarks/segmentation_distill.py --skip-demo`, `{after}`), rerun after the
TransKD modules were aligned with the authors' released code ({aligned}), on {machine}: teacher MiT-T ({t_params}
parameters, {t_iters} iterations on all 2000 training images, {t_miou} test mIoU) trained by the pipeline; students
MiT-N ({s_params}) with the same initial weights and schedule ({s_iters} iterations of 8 images) on the first 100
training images, TransKD's data-limited setting in miniature; seeds {seeds}, test mIoU:"""
PLUGIN_INTRO = """Embedded data, rerun after the TransKD modules were aligned with the authors' code ({aligned}) on
{machine}. Teacher MiT-T trained by the pipeline ({t_iters} iterations on all 2000 training images): {t_miou} test
mIoU. Every student is MiT-N ({s_params} parameters) with the same initial weights, {s_iters} iterations of 8 images
on the same 100 labelled images, seeds {seeds}; mean test mIoU (std over seeds), gain over the baseline."""


def _run_facts(a: dict, teacher: dict) -> dict:
    """The run's facts both intros state, formatted: machine, teacher's and students' sizes and schedules, seeds."""
    return {"after": AFTER, "aligned": ALIGNED, "machine": _machine(a), "t_params": _millions(teacher["params"]),
            "t_iters": teacher["iters"], "t_miou": _m(teacher["test_mIoU"]), "s_params": _millions(_student_params(a)),
            "s_iters": _student_iters(a), "seeds": _seeds(a)}


def root() -> str:
    """README.md's acceptance text in "Segmentation": the run, its table, the run before, the step ratio."""
    a, b, mb, ma, t, teacher, step, st = _context()
    intro = wrap(ROOT_INTRO.format(**_run_facts(a, teacher)))
    base, best = ma["baseline"], ma["transkd-base"]
    verdict = (f">= +3.0: {_met(t['transkd_at_least_baseline_plus_3'])}; ahead of logit KD: "
               f"{_met(t['transkd_ahead_of_logit_kd'])}")

    def pair(k1: str, k2: str, key: str, fmt) -> str:
        return f"{fmt(ma[k1][key])} / {fmt(ma[k2][key])}"
    table = "\n".join([
        "| method | test mIoU (std) | gain | target |", "|---|---|---|---|",
        f"| baseline | {_m(base['test_mIoU'])} ({_m(base['test_mIoU_std'])}) | - | |",
        f"| TransKD-Base | **{_m(best['test_mIoU'])}** ({_m(best['test_mIoU_std'])}) | "
        f"**{_gain(best['test_gain_over_baseline'])}** | {verdict} |",
        f"| TransKD-GL / EA | {pair('transkd-gl', 'transkd-ea', 'test_mIoU', _m)} | "
        f"{pair('transkd-gl', 'transkd-ea', 'test_gain_over_baseline', _gain)} | |",
        f"| logit KD / CWD (core) | {pair('kd', 'cwd', 'test_mIoU', _m)} | "
        f"{pair('kd', 'cwd', 'test_gain_over_baseline', _gain)} | |"])
    before = wrap(
        f"Before the alignment (`{BEFORE}`, {_same_schedule(b, a)}; {_commit(b)}): TransKD-Base "
        f"{_m(mb['transkd-base']['test_mIoU'])} ({_gain(mb['transkd-base']['test_gain_over_baseline'])}), GL "
        f"{_m(mb['transkd-gl']['test_mIoU'])}, EA {_m(mb['transkd-ea']['test_mIoU'])}. GL and EA are the two variants "
        f"whose modules changed; {_moves(b, a)}. The table of both runs: "
        "`python3 scripts/fidelity_readme.py segmentation`.")
    ratio = wrap(
        f"Step ratio: TransKD step / (student step + teacher backbone forward) = {st['transkd_step_ms']} / "
        f"({st['student_step_ms']} + {st['teacher_forward_backbone_ms']}) ms = **{step['ratio']}** ({step['setup']}; "
        f"{step['full']} against the full teacher forward, {st['teacher_forward_full_ms']} ms); the breakdown of that "
        "step is in \"Cost breakdown\" below. The benchmark records only this data-limited setting: no committed JSON "
        "holds a run in which the student has all 2000 labelled images. `kdhub demo segmentation`: its numbers and "
        "time are in the `make demo` paragraph at the top.")
    return "\n\n".join([intro, table, before, ratio])


def configs() -> str:
    """plugins/segmentation/README.md, "Configs": the teacher's and the student's sizes and schedules."""
    a = _load("segmentation_distill")
    teacher = a["accuracy"]["teacher"]
    return wrap(
        f"Teacher MiT-T (`segformer_mit-t_synth.py`): MiT-B0's widths and depths, {_millions(teacher['params'])} "
        f"parameters, {teacher['iters']} iterations of 8 images on all 2000 training images. Student MiT-N "
        f"(`segformer_mit-n_synth.py`): half the widths, one block per stage, {_millions(_student_params(a))} "
        f"parameters, {_student_iters(a)} iterations of 8 images on a labelled subset, the first 100 training images "
        f"(`train_dataloader.dataset.indices=100`); parameters and iterations as `{AFTER}` records them "
        "(this sentence: `python3 scripts/segmentation_readme.py configs`).")


def plugin() -> str:
    """plugins/segmentation/README.md, "Benchmark" and "Status of the acceptance targets"."""
    a, b, mb, ma, t, teacher, step, st = _context()
    intro = wrap(PLUGIN_INTRO.format(**_run_facts(a, teacher)))
    rows = ["| method | val mIoU | test mIoU | gain (test) | per-seed gains |", "|---|---|---|---|---|"]
    for key, (_, label) in LABELS.items():
        r = ma[key]
        bold = "**" if key == "transkd-base" else ""  # the variant the targets measure
        gain = "-" if key == "baseline" else f"{bold}{_gain(r['test_gain_over_baseline'])}{bold}"
        seeds = "-" if key == "baseline" else ", ".join(_gain(g) for g in r["per_seed_test_gains"])
        rows.append(f"| {label} | {_m(r['val_mIoU'])} | {bold}{_m(r['test_mIoU'])}{bold} ({_m(r['test_mIoU_std'])}) "
                    f"| {gain} | {seeds} |")
    before = wrap(
        f"The run before the alignment (`{BEFORE}`, {_same_schedule(b, a)}, no commit recorded; GL with torch "
        "`MultiheadAttention`, one head, and EA starting at 0.5, i.e. `model.distiller.gl_attention=mha "
        "model.distiller.gl_heads=1` and `model.distiller.ea_init=0.5` today) gave TransKD-Base "
        f"{_m(mb['transkd-base']['test_mIoU'])}, GL {_m(mb['transkd-gl']['test_mIoU'])} and EA "
        f"{_m(mb['transkd-ea']['test_mIoU'])}; {_moves(b, a)}. Both runs side by side: "
        "`python3 scripts/fidelity_readme.py segmentation`.")
    timing = wrap(
        f"Step time ({step['setup']}): a TransKD step takes {st['transkd_step_ms']} ms against "
        f"{st['student_step_ms']} ms for the student step and {st['teacher_forward_backbone_ms']} ms for the teacher's "
        f"backbone forward (all TransKD reads), a ratio of **{step['ratio']}**; against the full teacher forward "
        f"({st['teacher_forward_full_ms']} ms) {step['full']}. Where the extra time goes (CSF, PEA, the losses, the "
        "rest): main README, \"Cost breakdown\".")
    best = ma["transkd-base"]
    bullets = [
        f"TransKD student >= baseline + 3 mIoU: {_met(t['transkd_at_least_baseline_plus_3'])} "
        f"({_gain(best['test_gain_over_baseline'])}; per seed "
        + ", ".join(_gain(g) for g in best["per_seed_test_gains"]) + ").",
        f"TransKD ahead of logit KD: {_met(t['transkd_ahead_of_logit_kd'])} ({_m(best['test_mIoU'])} vs "
        f"{_m(ma['kd']['test_mIoU'])}; CWD {_m(ma['cwd']['test_mIoU'])}).",
        f"Step-time ratio reported: {step['ratio']} (vs student step + teacher backbone forward).",
        _demo(a),
        "Only the data-limited setting (the students' 100 labelled images) is recorded; no committed JSON holds a "
        "run with more labelled images for the student."]
    status = "### Status of the acceptance targets\n\n" + "\n".join(wrap(x, first="- ", rest="  ") for x in bullets)
    return "\n\n".join([intro, "\n".join(rows), before, timing, status])


def main(argv: List[str]) -> int:
    parts = {"root": root, "configs": configs, "plugin": plugin}
    name = argv[0] if argv else "root"
    if name not in parts or len(argv) > 1:
        raise SystemExit(f"usage: segmentation_readme.py [{'|'.join(parts)}] (no argument: root)")
    print(parts[name]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
