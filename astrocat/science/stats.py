"""Statistics the science summaries and training reports share (one place each).

Definitions follow ../shared/SCIENCE.md: Cameron (2011) Beta intervals for fractions;
photo-z conventions (delta z / (1 + z), sigma_NMAD, outlier fraction); the Bologna lens
challenge's AUROC, TPR0 and TPR10 (Metcalf et al. 2019); completeness and purity against
threshold; reliability diagrams with the expected calibration error (equal-width bins);
predicted spread against actual error (Spearman) and interval coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Fraction:
    k: int
    n: int
    value: float
    lower: float
    upper: float
    confidence: float


def beta_fraction(k: int, n: int, confidence: float = 0.683) -> Fraction:
    """k of n selected, with the Beta(k+1, n-k+1) equal-tailed interval (Cameron 2011)."""
    if n <= 0:
        return Fraction(k, n, float("nan"), float("nan"), float("nan"), confidence)
    tail = (1.0 - confidence) / 2.0
    lo = float(sps.beta.ppf(tail, k + 1, n - k + 1))
    hi = float(sps.beta.ppf(1.0 - tail, k + 1, n - k + 1))
    return Fraction(k, n, k / n, lo, hi, confidence)


def fractions_consistent(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05
                         ) -> tuple[float, bool]:
    """Two-sided Fisher exact test of k1/n1 against k2/n2: (p-value, p >= alpha)."""
    if min(n1, n2) <= 0:
        return float("nan"), False
    p = float(sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
    return p, p >= alpha


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, float) - np.asarray(truth, float)) ** 2)))


@dataclass(frozen=True)
class RedshiftMetrics:
    n: int
    mae: float
    bias: float  # mean delta z / (1 + z)
    median_bias: float
    sigma_nmad: float
    outlier_fraction: float  # |dz/(1+z)| > 0.15


def redshift_metrics(z_pred: np.ndarray, z_true: np.ndarray) -> RedshiftMetrics:
    zp, zt = np.asarray(z_pred, float), np.asarray(z_true, float)
    dz = (zp - zt) / (1.0 + zt)
    med = float(np.median(dz)) if len(dz) else float("nan")
    return RedshiftMetrics(
        n=len(dz),
        mae=float(np.mean(np.abs(zp - zt))) if len(dz) else float("nan"),
        bias=float(np.mean(dz)) if len(dz) else float("nan"),
        median_bias=med,
        sigma_nmad=float(1.4826 * np.median(np.abs(dz - med))) if len(dz) else float("nan"),
        outlier_fraction=float(np.mean(np.abs(dz) > 0.15)) if len(dz) else float("nan"),
    )


def bias_table(z_pred: np.ndarray, z_true: np.ndarray, width: float = 0.05) -> list[dict]:
    """Seed 003's table: per bin of true z, mean and std of (z_pred - z_true), % of data,
    plus the field's conventions (delta z/(1+z) bias, sigma_NMAD, eta, MAE) per bin."""
    zp, zt = np.asarray(z_pred, float), np.asarray(z_true, float)
    if len(zt) == 0:
        return []
    edges = np.arange(0.0, max(width, float(zt.max())) + width, width)
    idx = np.clip(np.digitize(zt, edges) - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        sel = idx == b
        if not sel.any():
            continue
        err = zp[sel] - zt[sel]
        m = redshift_metrics(zp[sel], zt[sel])
        rows.append({
            "z_lo": round(float(edges[b]), 4), "z_hi": round(float(edges[b + 1]), 4),
            "n": int(sel.sum()), "percent": 100.0 * float(sel.mean()),
            "mean_error": float(err.mean()), "std_error": float(err.std()),
            "bias": m.bias, "sigma_nmad": m.sigma_nmad, "outlier_fraction": m.outlier_fraction,
            "mae": m.mae,
        })
    return rows


@dataclass(frozen=True)
class LensMetrics:
    n_lenses: int
    n_nonlenses: int
    auroc: float
    tpr0: float  # TPR at the highest threshold that admits no false positive
    tpr10: float  # TPR at the lowest threshold admitting fewer than 10 false positives


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending; tied scores move together."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    n_pos, n_neg = max(1, y.sum()), max(1, (~y).sum())
    return (np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, s[distinct]])


def lens_metrics(scores: np.ndarray, labels: np.ndarray) -> LensMetrics:
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return LensMetrics(n_pos, n_neg, float("nan"), float("nan"), float("nan"))
    u = sps.mannwhitneyu(s[y], s[~y], alternative="two-sided").statistic
    fpr, tpr, _ = roc_curve(s, y)
    fp = np.rint(fpr * n_neg)
    return LensMetrics(
        n_lenses=n_pos,
        n_nonlenses=n_neg,
        auroc=float(u / (n_pos * n_neg)),
        tpr0=float(tpr[fp == 0].max()),
        tpr10=float(tpr[fp < 10].max()),
    )


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U / (n_pos n_neg)); ties count 1/2.

    Rank-based so that one sort per label serves millions of rows; NaN when a class is
    empty (an answer nobody in the truth gives, say).
    """
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = sps.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def confusion(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Confusion matrix when ``score >= threshold`` means "positive", with TPR and TNR."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    pred = s >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {"threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "tpr": ratio(tp, tp + fn), "tnr": ratio(tn, tn + fp),
            "precision": ratio(tp, tp + fp), "accuracy": ratio(tp + tn, len(y))}


def rates_by_threshold(
    scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(TPR, TNR) at each threshold (``score >= t`` is positive), as seed 004 plots them."""
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    t = np.asarray(thresholds, float)
    tp = len(pos) - np.searchsorted(pos, t, side="left")
    tn = np.searchsorted(neg, t, side="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / len(pos) if len(pos) else np.full(len(t), np.nan), (
            tn / len(neg) if len(neg) else np.full(len(t), np.nan))


def completeness_purity(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(completeness, purity, selected) of the selection ``score >= t`` at each threshold.

    Completeness (recall) = true positives selected / all positives; purity (precision) =
    true positives selected / all selected. Purity is NaN where nothing is selected,
    completeness where there is no positive at all.
    """
    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    pos, every = np.sort(s[y]), np.sort(s)
    t = np.asarray(thresholds, float)
    tp = len(pos) - np.searchsorted(pos, t, side="left")
    sel = len(every) - np.searchsorted(every, t, side="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        comp = tp / len(pos) if len(pos) else np.full(len(t), np.nan)
        purity = np.where(sel > 0, tp / np.maximum(sel, 1), np.nan)
    return np.asarray(comp, float), purity.astype(float), sel.astype(np.int64)


# --------------------------------------------------------------------------- calibration

#: Equal-width bins over [0, 1] of the reliability diagrams and their ECE.
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram: per equal-width bin of the prediction over [0, 1], the
    number of pairs, the mean prediction and the mean outcome; and the expected
    calibration error ECE = sum over bins of n_b / N * |mean prediction_b - mean
    outcome_b| (Naeini et al. 2015; Guo et al. 2017)."""

    edges: np.ndarray  # bins + 1 edges, 0 .. 1
    n: np.ndarray  # int64 per bin
    mean_predicted: np.ndarray  # NaN for an empty bin
    mean_observed: np.ndarray
    ece: float  # NaN without any pair

    @property
    def bins(self) -> int:
        return len(self.n)

    def rows(self) -> list[dict]:
        """The non-empty bins, JSON-ready."""
        return [{"lo": round(float(self.edges[b]), 6), "hi": round(float(self.edges[b + 1]), 6),
                 "n": int(self.n[b]), "mean_predicted": float(self.mean_predicted[b]),
                 "mean_observed": float(self.mean_observed[b])}
                for b in range(self.bins) if self.n[b]]


class ReliabilityBins:
    """Folds (prediction, outcome) pairs, in chunks of any shape, into equal-width bins of
    the prediction over [0, 1]; predictions outside it count in the end bins. The outcome
    is a 0/1 label (a classifier's score) or a true fraction (vote fractions); pairs with
    a non-finite member are skipped."""

    def __init__(self, bins: int = RELIABILITY_BINS) -> None:
        self.n = np.zeros(bins, np.int64)
        self.sum_pred = np.zeros(bins)
        self.sum_obs = np.zeros(bins)

    def update(self, pred: np.ndarray, outcome: np.ndarray) -> None:
        p = np.asarray(pred, np.float64).ravel()
        y = np.asarray(outcome, np.float64).ravel()
        fin = np.isfinite(p) & np.isfinite(y)
        p, y = p[fin], y[fin]
        bins = len(self.n)
        idx = np.clip(np.floor(p * bins).astype(np.int64), 0, bins - 1)  # p == 1: last bin
        self.n += np.bincount(idx, minlength=bins)
        self.sum_pred += np.bincount(idx, weights=p, minlength=bins)
        self.sum_obs += np.bincount(idx, weights=y, minlength=bins)

    def result(self) -> Reliability:
        total = int(self.n.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            mp, mo = self.sum_pred / self.n, self.sum_obs / self.n
        ece = float(np.abs(self.sum_pred - self.sum_obs).sum() / total) if total else math.nan
        return Reliability(np.linspace(0.0, 1.0, len(self.n) + 1), self.n.copy(), mp, mo, ece)


def reliability(pred: np.ndarray, outcome: np.ndarray, bins: int = RELIABILITY_BINS
                ) -> Reliability:
    """The reliability diagram and ECE of predictions against outcomes (see ``Reliability``)."""
    acc = ReliabilityBins(bins)
    acc.update(pred, outcome)
    return acc.result()


def calibration_report(rel: Reliability, binning: str) -> dict:
    """A reliability diagram as the JSON reports it."""
    return {"ece": rel.ece, "bins": rel.bins, "binning": binning,
            "n": int(rel.n.sum()), "reliability": rel.rows()}


# --------------------------------------------------------------------------- uncertainty

#: Equal-count bins of the predicted spread for mean |error| against spread.
SPREAD_BINS = 10
#: Pairs used at most for the rank correlation (a seeded sample beyond it).
MAX_RANK_PAIRS = 2_000_000


def coverage(truth: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of finite rows whose true value lies in [lo, hi] (NaN without any)."""
    t, a, b = (np.asarray(x).ravel() for x in (truth, lo, hi))
    fin = np.isfinite(t) & np.isfinite(a) & np.isfinite(b)
    return float(((a[fin] <= t[fin]) & (t[fin] <= b[fin])).mean()) if fin.any() else math.nan


def spread_rank_correlation(spread: np.ndarray, abs_error: np.ndarray, seed: int = 0
                            ) -> float:
    """Spearman's rank correlation of the predicted spread with |error| (NaN for fewer
    than 3 pairs or a constant side); a seeded sample of MAX_RANK_PAIRS beyond that many."""
    s, e = np.asarray(spread).ravel(), np.asarray(abs_error).ravel()
    fin = np.isfinite(s) & np.isfinite(e)
    s, e = s[fin], e[fin]
    if len(s) > MAX_RANK_PAIRS:
        pick = np.random.default_rng(seed).choice(len(s), MAX_RANK_PAIRS, replace=False)
        s, e = s[pick], e[pick]
    if len(s) < 3 or np.ptp(s) == 0 or np.ptp(e) == 0:
        return math.nan
    return float(sps.spearmanr(s.astype(np.float64), e.astype(np.float64)).statistic)


def error_by_spread(spread: np.ndarray, abs_error: np.ndarray, bins: int = SPREAD_BINS
                    ) -> list[dict]:
    """Mean |error| per equal-count bin of the predicted spread (quantile edges; tied
    spreads share a bin, so there may be fewer bins): spread_lo, spread_hi, n,
    mean_spread, mean_abs_error."""
    s, e = np.asarray(spread).ravel(), np.asarray(abs_error).ravel()
    fin = np.isfinite(s) & np.isfinite(e)
    s, e = s[fin], e[fin]
    if not len(s):
        return []
    edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(idx, minlength=len(edges) - 1)
    ms = np.bincount(idx, weights=s, minlength=len(edges) - 1)
    me = np.bincount(idx, weights=e, minlength=len(edges) - 1)
    return [{"spread_lo": float(edges[b]), "spread_hi": float(edges[b + 1]), "n": int(n[b]),
             "mean_spread": float(ms[b] / n[b]), "mean_abs_error": float(me[b] / n[b])}
            for b in range(len(n)) if n[b]]


def uncertainty(pred: np.ndarray, truth: np.ndarray, spread: np.ndarray,
                lo: np.ndarray | None = None, hi: np.ndarray | None = None,
                nominal: float | None = None, bins: int = SPREAD_BINS) -> dict:
    """How well a predicted spread (TTA ``_std``) tracks the actual error, JSON-ready: the
    rank correlation (Spearman) of spread with |pred - truth|, mean |error| per
    equal-count bin of spread, and with an interval [lo, hi] its empirical coverage of
    the truth (against ``nominal``). Arrays of any shape are pooled; float32 stays
    float32 (sums in float64)."""
    p, t, s = (np.asarray(x).ravel() for x in (pred, truth, spread))
    err = np.abs(p - t)
    fin = np.isfinite(err) & np.isfinite(s)
    out: dict = {"n": int(fin.sum()),
                 "spearman_spread_abs_error": spread_rank_correlation(s, err),
                 "mean_spread": float(s[fin].mean(dtype=np.float64)) if fin.any()
                 else math.nan,
                 "mean_abs_error": float(err[fin].mean(dtype=np.float64)) if fin.any()
                 else math.nan,
                 "by_spread": error_by_spread(s, err, bins)}
    if lo is not None and hi is not None:
        a, b = np.asarray(lo).ravel(), np.asarray(hi).ravel()
        width = b - a
        ok = np.isfinite(width)
        out["coverage"] = coverage(t, a, b)
        out["nominal_coverage"] = nominal
        out["mean_interval_width"] = (float(width[ok].mean(dtype=np.float64)) if ok.any()
                                      else math.nan)
    return out
