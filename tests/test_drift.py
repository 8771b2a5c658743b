"""The drift kernel: sketches that merge, a test that agrees with scipy's, verdicts that
tell a shifted population from a fresh one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from astrocat.kernels import drift


def _reference(rng: np.random.Generator, n: int = 1000) -> np.ndarray:
    return rng.lognormal(0.0, 0.35, n)  # like the row distances: ~1, a long right tail


def test_sketches_merge_by_adding_counts():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0, 1, 500), rng.lognormal(1, 0.5, 700)
    assert np.array_equal((drift.Sketch.of(a) + drift.Sketch.of(b)).counts,
                          drift.Sketch.of(np.concatenate([a, b])).counts)
    s = drift.Sketch.of(np.concatenate([a, [np.nan, np.inf]]))
    assert s.n == 500  # NaN (no reference) and inf are not distances
    again = drift.Sketch.from_json(s.to_json())
    assert np.array_equal(again.counts, s.counts)
    assert drift.Sketch.from_json(None).n == 0


def test_quantiles_and_tail_shares_are_close_to_the_exact_ones():
    d = _reference(np.random.default_rng(1), 20_000)
    s = drift.Sketch.of(d)
    for q in (0.1, 0.5, 0.95):
        assert s.quantile(q) == pytest.approx(np.quantile(d, q), rel=0.02)
    x = float(np.quantile(d, 0.9))
    assert s.share_above(x) == pytest.approx(0.1, abs=0.005)


def test_the_statistic_and_p_value_agree_with_scipy_ks_2samp():
    rng = np.random.default_rng(2)
    ref = _reference(rng)
    for scale in (1.0, 1.05, 1.2):
        run = _reference(rng, 800) * scale
        want = stats.ks_2samp(run, ref, alternative="less", method="asymp")
        got = drift.statistic(drift.Sketch.of(run), drift.Sketch.of(ref))
        # at the bin edges only: never above scipy's, and within a bin's worth of it
        assert got <= want.statistic + 1e-12
        assert got == pytest.approx(want.statistic, abs=0.02)
        p = drift.p_value(want.statistic, len(run), len(ref))
        assert p == pytest.approx(want.pvalue, rel=0.2, abs=1e-6)


def test_fresh_runs_read_in_domain_and_shifted_ones_do_not():
    rng = np.random.default_rng(3)
    base = drift.Baseline.of(_reference(rng))
    fresh = [drift.compare(drift.Sketch.of(_reference(rng, 500)), base)["verdict"]
             for _ in range(200)]
    assert fresh.count("in_domain") >= 198
    big = drift.compare(drift.Sketch.of(_reference(rng, 100_000)), base)
    assert big["verdict"] == "in_domain"  # significance alone is not a shift
    shifted = drift.compare(drift.Sketch.of(_reference(rng, 500) * 1.3), base)
    assert shifted["verdict"] == "shifted", shifted
    far = drift.compare(drift.Sketch.of(_reference(rng, 500) * 3), base)
    assert far["verdict"] == "far", far
    assert far["median_ratio"] == pytest.approx(3, rel=0.1)
    assert far["beyond_q95"] > 0.9
    smaller = drift.compare(drift.Sketch.of(_reference(rng, 500) * 0.5), base)
    assert smaller["verdict"] == "in_domain"  # closer than the reference is not a drift
    few = drift.compare(drift.Sketch.of(_reference(rng, 10) * 3), base)
    assert few["verdict"] == "untested" and few["n"] == 10
    assert "untested" in drift.describe("m", few)
    assert "far" in drift.describe("m", far) and "n=500" in drift.describe("m", far)


def test_a_baseline_survives_json():
    base = drift.Baseline.of(_reference(np.random.default_rng(4)))
    again = drift.Baseline.from_json(base.to_json())
    assert again.n == base.n and again.q95 == pytest.approx(base.q95, rel=1e-5)
    assert np.array_equal(again.sketch.counts, base.sketch.counts)
