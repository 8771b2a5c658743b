"""Drift of a run's population from a model's reference: is this whole night's data
unlike what the model learned, even when each row looks plausible alone?

A row's out-of-domain flag (``kernels.ood``) only fires far out in the tail (0.5 % of
inputs like the training inputs). A survey whose images are all a little off moves the
*distribution* of ``ood_distance`` instead, and that is what this compares: the run's
distances against the distances of the reference's held-out inputs (``reference.npz``).

* :class:`Sketch`: counts of distances in fixed log-spaced bins (2.9 % wide, 10^-2 to
  10^4). Parts, partitions and workers each keep one; they merge by adding counts, so no
  step ever holds every row's distance.
* :func:`compare`: a one-sided two-sample Kolmogorov-Smirnov test that the run's distances
  are larger than the reference's (the statistic at the bin edges, where both empirical
  CDFs are exact; p-value of ``scipy.stats.ksone`` (``scipy.special.smirnov``) at the
  effective size n m/(n+m), as ``scipy.stats.ks_2samp`` takes it), the share of the run
  beyond the reference's 95 % quantile against the 5 % expected, and the ratio of medians.
* The verdict: ``in_domain``, ``shifted`` (significant *and* large enough to matter) or
  ``far`` (most of the run beyond where the reference lives); ``untested`` below
  :data:`MIN_ROWS`. The thresholds were calibrated on fresh simulated surveys
  (``benchmarks/drift.py``) and the trust benchmark's foreign sets and shifts (the "Drift
  per run" sections of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
from dataclasses import dataclass

import numpy as np

#: Bin edges of a sketch: 80 per decade from 10^-2 to 10^4 (each bin 2.9 % wide); below
#: the first and above the last edge are one bin each.
EDGES = np.logspace(-2, 4, 481)
N_BINS = len(EDGES) + 1
#: Fewest rows a verdict is given for (below: ``untested``).
MIN_ROWS = 30
#: A run is ``shifted`` when the test's p-value is below ALPHA *and* the effect is large:
#: the KS statistic at least MIN_STATISTIC, or at least MIN_BEYOND of the run beyond the
#: reference's 95 % quantile (5 % expected).
ALPHA = 1e-3
MIN_STATISTIC = 0.10
MIN_BEYOND = 0.10
#: ``far``: at least FAR_BEYOND of the run beyond the reference's 95 % quantile.
FAR_BEYOND = 0.50
QUANTILE = 0.95
VERDICTS = ("in_domain", "shifted", "far", "untested")
TEST = ("one-sided two-sample Kolmogorov-Smirnov (run larger than the reference's "
        "held-out distances; scipy.stats.ksone at n*m/(n+m)) on ood_distance")


@dataclass(frozen=True)
class Sketch:
    """Counts of distances per bin of :data:`EDGES` (NaN distances are not counted)."""

    counts: np.ndarray  # (N_BINS,) int64

    @classmethod
    def empty(cls) -> Sketch:
        return cls(np.zeros(N_BINS, np.int64))

    @classmethod
    def of(cls, distances: np.ndarray) -> Sketch:
        d = np.asarray(distances, np.float64)
        d = d[np.isfinite(d)]
        return cls(np.bincount(np.searchsorted(EDGES, d, side="right"),
                               minlength=N_BINS).astype(np.int64))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def __add__(self, other: Sketch) -> Sketch:
        return Sketch(self.counts + other.counts)

    def below(self) -> np.ndarray:
        """(len(EDGES),): how many distances lie below each edge (exact)."""
        return np.cumsum(self.counts)[:-1]

    def quantile(self, q: float) -> float:
        """The q quantile, interpolated geometrically inside its bin (NaN when empty)."""
        n = self.n
        if n == 0:
            return float("nan")
        target = q * n
        cum = np.cumsum(self.counts)
        k = int(np.searchsorted(cum, target, side="left"))
        k = min(max(k, 1), len(EDGES) - 1)  # the open end bins: their finite edge
        lo, hi = math.log(EDGES[k - 1]), math.log(EDGES[k])
        before = cum[k - 1] - self.counts[k]
        inside = (target - before) / self.counts[k] if self.counts[k] else 0.5
        return float(math.exp(lo + min(max(inside, 0.0), 1.0) * (hi - lo)))

    def share_above(self, x: float) -> float:
        """Share of the distances above ``x`` (within its bin, spread geometrically)."""
        n = self.n
        if n == 0 or not math.isfinite(x):
            return float("nan")
        k = int(np.searchsorted(EDGES, x, side="right"))
        above = float(self.counts[k + 1:].sum())
        if 0 < k < len(EDGES):
            lo, hi = math.log(EDGES[k - 1]), math.log(EDGES[k])
            above += self.counts[k] * (hi - math.log(x)) / (hi - lo)
        return above / n

    def to_json(self) -> dict:
        """Sparse: the bins holding any distance, and their counts."""
        nz = np.flatnonzero(self.counts)
        return {"bins": nz.tolist(), "counts": self.counts[nz].tolist()}

    @classmethod
    def from_json(cls, d: dict | None) -> Sketch:
        counts = np.zeros(N_BINS, np.int64)
        if d:
            counts[np.asarray(d["bins"], np.int64)] = np.asarray(d["counts"], np.int64)
        return cls(counts)


@dataclass(frozen=True)
class Baseline:
    """The reference's held-out distances as the test needs them."""

    sketch: Sketch
    q95: float
    median: float

    @classmethod
    def of(cls, distances: np.ndarray) -> Baseline:
        d = np.asarray(distances, np.float64)
        d = d[np.isfinite(d)]
        return cls(Sketch.of(d), float(np.quantile(d, QUANTILE)), float(np.median(d)))

    @property
    def n(self) -> int:
        return self.sketch.n

    def to_json(self) -> dict:
        return {"n": self.n, "q95": round(self.q95, 6), "median": round(self.median, 6),
                "sketch": self.sketch.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> Baseline:
        return cls(Sketch.from_json(d["sketch"]), float(d["q95"]), float(d["median"]))


def statistic(run: Sketch, base: Sketch) -> float:
    """One-sided KS statistic: how far the run's CDF lies below the reference's (the run's
    distances larger), at the bin edges."""
    if run.n == 0 or base.n == 0:
        return float("nan")
    return float(max(0.0, np.max(base.below() / base.n - run.below() / run.n)))


def import_test_in_background(n_rows: int) -> None:
    """Start importing what :func:`p_value` needs while a run of ``n_rows`` computes:
    ``scipy.special`` takes 0.25-0.4 s, which the run's end, its cores idle, would wait
    for (a run too small to be tested never imports it)."""
    if n_rows >= MIN_ROWS and "scipy.special" not in sys.modules:
        threading.Thread(target=importlib.import_module, args=("scipy.special",),
                         name="astrocat-import-scipy", daemon=True).start()


def p_value(d: float, n: int, m: int) -> float:
    """One-sided p-value of the two-sample statistic ``d`` (sizes n, m): the one-sample
    distribution at the effective size n m/(n+m), ``scipy.stats.ksone.sf``, taken from
    ``scipy.special.smirnov`` that it wraps (``scipy.stats`` costs a run 1.3 s to import;
    ``scipy.special`` 0.4 s)."""
    from scipy.special import smirnov

    if not math.isfinite(d):
        return float("nan")
    return float(smirnov(max(1, round(n * m / (n + m))), d))


def verdict(n: int, d: float, p: float, beyond: float) -> str:
    """``in_domain``, ``shifted``, ``far`` or ``untested`` (see the module's doc)."""
    if n < MIN_ROWS or not math.isfinite(d):
        return "untested"
    if p >= ALPHA or (d < MIN_STATISTIC and beyond < MIN_BEYOND):
        return "in_domain"
    return "far" if beyond >= FAR_BEYOND else "shifted"


def compare(run: Sketch, base: Baseline) -> dict:
    """The drift record of a run: verdict, statistic, p-value, N, median ratio, share
    beyond the reference's 95 % quantile, and the test (JSON-able)."""
    n = run.n
    d = statistic(run, base.sketch)
    p = p_value(d, n, base.n) if n >= MIN_ROWS else float("nan")  # untested: no import
    beyond = run.share_above(base.q95)
    median = run.quantile(0.5)
    out = {"verdict": verdict(n, d, p, beyond), "statistic": _round(d),
           "p_value": float(f"{p:.3g}") if math.isfinite(p) else None, "n": n,
           "median_ratio": _round(median / base.median if base.median > 0 else math.nan),
           "beyond_q95": _round(beyond), "expected_beyond": round(1 - QUANTILE, 3)}
    return out


#: The keys of a drift record holding its sketches: what a brief record leaves out.
SKETCH_KEYS = ("sketch", "reference")


def brief(record: dict) -> dict:
    """A drift record without the sketches it rests on (what summaries and ``history``
    show)."""
    return {k: v for k, v in record.items() if k not in SKETCH_KEYS}


def _round(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None


def describe(name: str, record: dict) -> str:
    """One line for a run's summary: what moved, by how much, on how many rows."""
    v = record.get("verdict")
    if v == "untested":
        why = record.get("reason") or f"{record.get('n', 0)} rows, fewer than {MIN_ROWS}"
        return f"drift: {name} untested ({why})"
    beyond = record.get("beyond_q95")
    return (f"drift: {name} {v.replace('_', ' ')}: median ood_distance "
            f"{record.get('median_ratio')}x the reference's held-out inputs, "
            f"{_pct(beyond)} beyond their 95 % quantile (5 % expected); KS "
            f"{record.get('statistic')}, p={record.get('p_value')}, n={record.get('n')}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"
