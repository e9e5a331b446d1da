"""The cost-breakdown helpers of the benchmarks: the shares' arithmetic by hand, and the peak-memory measurement
of a step that allocates a known amount."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

import breakdown  # noqa: E402


def allocating_step(mb: float):
    """A step that holds ``mb`` MB of touched memory while it runs, and frees it when it returns."""
    def step():
        a = np.ones(int(mb * 1e6 / 8))
        return float(a[::4096].sum())
    return step


def test_shares_by_hand():
    s = breakdown.shares(10.0, {"teacher_forward": 4.0, "student_step": 3.0, "losses": 2.0})
    assert s["floor_s"] == pytest.approx(9.0)
    assert s["machinery_s"] == pytest.approx(1.0)
    assert s["shares"] == pytest.approx({"teacher_forward": 0.4, "student_step": 0.3, "losses": 0.2, "machinery": 0.1})
    assert s["overhead_above_floor"] == pytest.approx(1 / 9)


def test_negative_machinery_is_reported_as_measured():
    s = breakdown.shares(9.0, {"a": 5.0, "b": 4.5})
    assert s["machinery_s"] == pytest.approx(-0.5)
    assert s["overhead_above_floor"] == pytest.approx(-0.5 / 9.5)
    r = breakdown.report(0.010, {"a": 0.004, "b": 0.003, "c": 0.002})
    assert r["full_ms"] == 10.0 and r["floor_ms"] == 9.0 and r["machinery_ms"] == 1.0
    assert r["overhead_above_floor"] == 0.1111


def test_interleaved_medians():
    calls = {"a": 0, "b": 0}

    def count(name):
        def fn():
            calls[name] += 1
        return fn

    med = breakdown.interleaved({"a": count("a"), "b": count("b")}, repeats=3, inner=2, warmup=1)
    assert set(med) == {"a", "b"} and all(v >= 0 for v in med.values())
    assert calls == {"a": 7, "b": 7}  # 1 warm-up + 3 rounds x 2


def test_interleaved_pools_every_round_across_measurements():
    """Two measurements into one ``samples_out``: each function keeps one time per timed round of both (warm-up
    rounds excluded), and a pool's median is taken over all of them."""
    pooled = {}
    for repeats in (3, 4):
        breakdown.interleaved({"a": lambda: None, "b": lambda: None}, repeats=repeats, inner=2, warmup=1,
                              samples_out=pooled)
    assert {k: len(v) for k, v in pooled.items()} == {"a": 7, "b": 7}
    assert all(t >= 0 for v in pooled.values() for t in v)


def test_paired_ratios_are_formed_within_each_round():
    """Two blocks of two rounds, the second block's setup about twice as slow: the step ratio is the median of
    the per-round ratios 10/9, 11/9, 3/2 and 32/21, (11/9 + 3/2) / 2 = 1.3611 by hand, not the ratio of the
    pooled medians (2.05 / 1.45 = 1.4138), which pairs one block's step with the other's floor."""
    samples = {"step": [1.0, 1.1, 3.0, 3.2], "teacher": [0.5, 0.5, 1.0, 1.0], "student": [0.4, 0.4, 1.0, 1.1],
               "losses": [0.1, 0.1, 0.2, 0.2]}
    out = breakdown.paired(samples, "step", ("teacher", "student"), ("teacher", "student", "losses"))
    assert out["step_ratio"] == pytest.approx((11 / 9 + 3 / 2) / 2, abs=1e-4)
    # overheads per round: 1.0/1.0 - 1, 1.1/1.0 - 1, 3.0/2.2 - 1, 3.2/2.3 - 1 -> median (0.1 + 0.3636) / 2
    assert out["overhead_above_floor"] == pytest.approx((0.1 + (3.0 / 2.2 - 1)) / 2, abs=1e-4)


def test_block_report_pools_the_rounds_and_keeps_each_blocks_own():
    """Two blocks of two rounds (the same samples as above): the step ratio and overhead are the per-round
    medians worked out there, the ratio of the pooled medians is 2.05 / 1.45, each block's own step ratio is its
    rounds' median ((10/9 + 11/9) / 2 and (3/2 + 32/21) / 2), and the parts are reported under their new names."""
    blocks = [{"step": [1.0, 1.1], "teacher": [0.5, 0.5], "student": [0.4, 0.4], "loss_x": [0.1, 0.1]},
              {"step": [3.0, 3.2], "teacher": [1.0, 1.0], "student": [1.0, 1.1], "loss_x": [0.2, 0.2]}]
    parts = {"teacher": "teacher", "student": "student", "loss_x": "losses"}
    out = breakdown.block_report(blocks, "step", ("teacher", "student"), parts)
    assert out["step_ratio"] == pytest.approx((11 / 9 + 3 / 2) / 2, abs=1e-4)
    assert out["overhead_above_floor"] == pytest.approx((0.1 + (3.0 / 2.2 - 1)) / 2, abs=1e-4)
    assert out["step_ratio_of_medians"] == pytest.approx(2.05 / 1.45, abs=1e-4)
    assert out["step_ratio_per_block"] == pytest.approx([(10 / 9 + 11 / 9) / 2, (3 / 2 + 32 / 21) / 2], abs=1e-4)
    assert out["overhead_per_block"] == pytest.approx([0.05, (3.0 / 2.2 + 3.2 / 2.3) / 2 - 1], abs=1e-4)
    assert out["parts_ms"] == pytest.approx({"teacher": 750.0, "student": 700.0, "losses": 150.0})
    assert out["full_ms"] == pytest.approx(2050.0)
    assert out["overhead_of_medians"] == pytest.approx(2.05 / (0.75 + 0.70 + 0.15) - 1, abs=1e-4)
    single = breakdown.block_report(blocks[:1], "step", ("teacher", "student"), parts)
    assert "step_ratio_per_block" not in single and "overhead_per_block" not in single
    assert single["step_ratio"] == pytest.approx((10 / 9 + 11 / 9) / 2, abs=1e-4)


@pytest.mark.skipif(not breakdown.hwm_resettable(), reason="the RSS high-water mark cannot be reset here")
def test_peak_of_a_known_allocation():
    big = breakdown.peak_rss_mb("test_breakdown:allocating_step", {"mb": 200}, repeats=2, path=[HERE])
    small = breakdown.peak_rss_mb("test_breakdown:allocating_step", {"mb": 100}, repeats=2, path=[HERE])
    assert big["hwm_reset_works"]
    assert 190 <= big["peak_delta_mb"] <= 215
    assert breakdown.peak_ratio(big, small) == pytest.approx(2.0, rel=0.08)
