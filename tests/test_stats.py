"""Each statistic against an independent calculation on known data."""

import numpy as np
from scipy import stats as sps

from astrocat.science import stats


def test_beta_fraction_matches_scipy_and_cameron():
    f = stats.beta_fraction(26, 1000)
    assert f.value == 0.026
    assert np.isclose(f.lower, sps.beta.ppf(0.1585, 27, 975))
    assert np.isclose(f.upper, sps.beta.ppf(0.8415, 27, 975))
    assert f.lower < 0.026 < f.upper
    zero = stats.beta_fraction(0, 50)
    assert 0 < zero.lower < 0.005 and 0 < zero.upper < 0.05  # equal-tailed, Cameron 2011


def test_lens_metrics_hand_counted():
    # scores descending: L L N L N N ... -> first FP after 2 lenses of 3 -> TPR0 = 2/3
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0])
    m = stats.lens_metrics(scores, labels)
    # pairs (lens > non-lens): lens .9 beats 3, .8 beats 3, .6 beats 2 -> 8 of 9
    assert np.isclose(m.auroc, 8 / 9)
    assert np.isclose(m.tpr0, 2 / 3)
    assert m.tpr10 == 1.0
    perfect = stats.lens_metrics(np.array([0.9, 0.1]), np.array([1, 0]))
    assert perfect.auroc == 1.0 and perfect.tpr0 == 1.0


def test_tpr0_counts_ties_with_false_positives():
    m = stats.lens_metrics(np.array([0.9, 0.9, 0.1]), np.array([1, 0, 1]))
    assert m.tpr0 == 0.0


def test_redshift_metrics_on_constructed_sample():
    zt = np.full(100, 0.1)
    dz = np.zeros(100)
    dz[:10] = 0.5  # 10 % catastrophic outliers
    dz[10:55] = 0.011  # 45 rows at +0.01*(1+z)
    dz[55:] = -0.011  # 45 rows at -0.01*(1+z)
    m = stats.redshift_metrics(zt + dz, zt)
    assert np.isclose(m.outlier_fraction, 0.10)
    # median of dz/(1+z) is 0.01; |dz - med| median: 45 zeros... computed by hand with numpy
    d = dz / 1.1
    assert np.isclose(m.sigma_nmad, 1.4826 * np.median(np.abs(d - np.median(d))))
    assert np.isclose(m.bias, d.mean())


def test_bias_table_recovers_injected_offset():
    rng = np.random.default_rng(0)
    zt = rng.uniform(0, 0.3, 5000)
    zp = zt + 0.02 + rng.normal(0, 0.001, zt.size)
    table = stats.bias_table(zp, zt)
    assert [r["z_lo"] for r in table] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    for r in table:
        assert abs(r["mean_error"] - 0.02) < 1e-3
        assert r["std_error"] < 2e-3
    assert np.isclose(sum(r["percent"] for r in table), 100.0)
