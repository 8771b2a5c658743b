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


def test_ece_of_a_calibrated_score_is_about_zero_and_of_a_miscalibrated_one_large():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 200_000)
    y = rng.uniform(0, 1, p.size) < p  # P(lens | p) = p: perfectly calibrated
    good = stats.reliability(p, y)
    assert good.bins == 10 and good.n.sum() == p.size
    assert good.ece < 0.01
    assert np.allclose(good.mean_observed, good.mean_predicted, atol=0.02)
    over = stats.reliability(p, rng.uniform(0, 1, p.size) < p ** 3)  # overconfident
    assert over.ece > 0.15
    # the ECE is the count-weighted mean gap: constant 0.9 against a 50 % outcome -> 0.4
    assert np.isclose(stats.reliability(np.full(1000, 0.9), np.arange(1000) % 2).ece, 0.4)


def test_reliability_bins_by_hand_and_in_chunks():
    p = np.array([0.05, 0.15, 0.15, 0.95, 1.0, np.nan])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    r = stats.reliability(p, y, bins=10)
    assert r.n.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]  # 1.0 in the last bin, NaN skipped
    rows = r.rows()
    assert [(x["lo"], x["hi"], x["n"]) for x in rows] == [(0.0, 0.1, 1), (0.1, 0.2, 2),
                                                          (0.9, 1.0, 2)]
    assert np.isclose(rows[1]["mean_observed"], 0.5) and np.isclose(rows[2]["mean_predicted"],
                                                                    0.975)
    # |0.05 - 0| + |0.30 - 1| + |1.95 - 2| over 5 pairs
    assert np.isclose(r.ece, (0.05 + 0.7 + 0.05) / 5)
    acc = stats.ReliabilityBins(10)
    for a in range(0, 6, 2):
        acc.update(p[a:a + 2], y[a:a + 2])
    assert np.isclose(acc.result().ece, r.ece)


def test_completeness_and_purity_hand_counted():
    # scores descending: L L N L N N
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 1, 0, 1, 0, 0])
    comp, pur, sel = stats.completeness_purity(s, y, np.array([0.85, 0.75, 0.6, 0.0, 0.95]))
    assert sel.tolist() == [1, 2, 4, 6, 0]
    assert np.allclose(comp, [1 / 3, 2 / 3, 1.0, 1.0, 0.0])
    assert np.allclose(pur[:4], [1.0, 1.0, 3 / 4, 1 / 2]) and np.isnan(pur[4])


def test_coverage_spread_correlation_and_error_by_spread():
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    assert stats.coverage(truth, truth - 1, truth + 1) == 1.0
    assert stats.coverage(truth, np.array([0.5, 0, 0, 4]), np.array([1, 2, 2, 5])) == 0.5
    rng = np.random.default_rng(2)
    spread = rng.uniform(0.01, 1, 5000)
    err = np.abs(rng.normal(0, spread))
    rho = stats.spread_rank_correlation(spread, err)
    assert np.isclose(rho, sps.spearmanr(spread, err).statistic)
    assert rho > 0.3
    assert np.isnan(stats.spread_rank_correlation(np.ones(10), err[:10]))
    rows = stats.error_by_spread(spread, err, bins=5)
    assert len(rows) == 5 and sum(r["n"] for r in rows) == 5000
    assert all(r["n"] == 1000 for r in rows)
    means = [r["mean_abs_error"] for r in rows]
    assert means == sorted(means)
    for r in rows:  # a Gaussian error of spread s has mean |error| sqrt(2/pi) s
        assert np.isclose(r["mean_abs_error"], np.sqrt(2 / np.pi) * r["mean_spread"], rtol=0.1)
    u = stats.uncertainty(truth + 0.5, truth, np.full(4, 0.5), truth, truth + 1, 0.9)
    assert u["coverage"] == 1.0 and u["mean_interval_width"] == 1.0 and u["n"] == 4
    assert u["nominal_coverage"] == 0.9 and np.isnan(u["spearman_spread_abs_error"])
