"""The shipped speech configs load, build SpeechBrain lobes, and pair blocks that exist in both models."""
from pathlib import Path

import pytest

from kdhub.algorithm import count_parameters
from kdhub_speech.intermediate import IntermediateDistillation
from speech_helpers import load

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_builds_a_smaller_student_and_resolvable_feature_pairs(path):
    cfg = load(path).cfg
    teacher, student = cfg["teacher_model"], cfg["student_model"]
    assert count_parameters(student) < count_parameters(teacher) / 4
    pairs = [tuple(p) for p in cfg["distill"]["features"]["pairs"]]
    chans = IntermediateDistillation.probe_channels(student, teacher, pairs, cfg["sample_rate"] // 4)
    assert len(chans) == len(pairs) and all(cs > 0 and ct > 0 for cs, ct in chans)


def test_configs_cover_both_families_as_students_and_a_cross_family_pair():
    families = [(cfg["teacher_model"].family, cfg["student_model"].family) for cfg in (load(p).cfg for p in CONFIGS)]
    assert {s for _, s in families} == {"sepformer", "convtasnet"}
    assert any(t != s for t, s in families) and ("sepformer", "sepformer") in families
