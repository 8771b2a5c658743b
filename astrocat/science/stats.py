"""Statistics the science summaries and training reports share (one place each).

Definitions follow ../shared/SCIENCE.md: Cameron (2011) Beta intervals for fractions;
photo-z conventions (delta z / (1 + z), sigma_NMAD, outlier fraction); the Bologna lens
challenge's AUROC, TPR0 and TPR10 (Metcalf et al. 2019).
"""

from __future__ import annotations

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
