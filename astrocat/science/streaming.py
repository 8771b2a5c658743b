"""Streaming building blocks the task accumulators share: bounded state per batch.

``TopK`` keeps the k best rows per column (prototype images, lens candidates, a seeded
random sample); ``Moments`` keeps running sums for means and correlation matrices. Both
fold record batches one at a time, so a catalog of any length costs the same memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class TopK:
    """The k rows with the largest key per column, with a score, object_id and source each.

    Merged batch by batch, so only k x columns strings are ever held. Used for prototype
    images (key = score = vote fraction) and for a seeded random sample (key = random).
    """

    def __init__(self, k: int, m: int) -> None:
        self.k, self.m = k, m
        self.key = np.full((0, m), -np.inf)
        self.score = np.zeros((0, m))
        self.oid = np.empty((0, m), dtype=object)
        self.src = np.empty((0, m), dtype=object)

    def update(self, key: np.ndarray, score: np.ndarray, oid: pa.Array, src: pa.Array) -> None:
        """key, score: (n, m); oid, src: the n rows' strings (Arrow, taken lazily)."""
        n = len(key)
        if n == 0 or self.k == 0:
            return
        key = np.where(np.isnan(key), -np.inf, key)
        kk = min(self.k, n)
        idx = np.argpartition(-key, kk - 1, axis=0)[:kk] if n > kk else np.tile(
            np.arange(n)[:, None], (1, self.m))
        rows = np.unique(idx)
        pos = np.searchsorted(rows, idx)
        take = pa.array(rows)
        oids = np.array(oid.take(take).to_pylist(), dtype=object)[pos]
        srcs = np.array(src.take(take).to_pylist(), dtype=object)[pos]
        allkey = np.vstack([self.key, np.take_along_axis(key, idx, 0)])
        allscore = np.vstack([self.score, np.take_along_axis(score, idx, 0)])
        alloid, allsrc = np.vstack([self.oid, oids]), np.vstack([self.src, srcs])
        order = np.argsort(-allkey, axis=0, kind="stable")[: self.k]
        self.key = np.take_along_axis(allkey, order, 0)
        self.score = np.take_along_axis(allscore, order, 0)
        self.oid = np.take_along_axis(alloid, order, 0)
        self.src = np.take_along_axis(allsrc, order, 0)

    def column(self, j: int, key: str | None = None) -> list[dict]:
        """Best first: [{object_id, source, score}] for column j (finite keys only); with
        ``key``, each entry also carries its sort key under that name."""
        return [{"object_id": str(self.oid[i, j]), "source": str(self.src[i, j]),
                 "score": float(self.score[i, j]),
                 **({key: float(self.key[i, j])} if key else {})}
                for i in range(len(self.key)) if np.isfinite(self.key[i, j])]


class Moments:
    """Running n, sum and X^T X (float64), for means and the correlation matrix."""

    def __init__(self, m: int) -> None:
        self.n = 0
        self.s = np.zeros(m)
        self.xx = np.zeros((m, m))

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.n += len(x)
        self.s += x.sum(axis=0)
        # einsum's own loop, not BLAS: a multi-threaded BLAS on a busy machine (inference
        # or training beside us) spin-waits and made this 40x slower than one core.
        self.xx += np.einsum("ij,ik->jk", x, x)

    @property
    def mean(self) -> np.ndarray:
        return self.s / max(self.n, 1)

    def corr(self) -> np.ndarray:
        """Pearson correlation, seed 001 eq. (1); NaN for constant columns."""
        mu = self.mean
        cov = self.xx / max(self.n, 1) - np.outer(mu, mu)
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            c = cov / np.outer(sd, sd)
        c[~(np.outer(sd, sd) > 1e-12)] = np.nan
        return np.clip(c, -1, 1)
