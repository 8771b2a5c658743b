"""Out-of-domain statistics: how unlike its training inputs an input looks to a model.

Two views of an input, each compared with the model's training inputs by a Mahalanobis
distance (a Gaussian fitted to the reference sample, Ledoit-Wolf shrunk covariance):

* summary statistics of the prepared input (per channel: level, spread, 1/50/99 %
  quantiles, high-frequency power, central concentration, tail weight, share above
  3 sigma). These catch what a network's features tend to absorb: a photograph, a star
  field, ten times the noise, another task's inputs.
* the network's penultimate features (Lee et al. 2018, "A simple unified framework for
  detecting out-of-distribution samples"): what the network itself makes of the input.

Each distance is divided by its median over the reference sample; the row's distance is
the larger of the two, and the flag's threshold is a high quantile of that over held-out
inputs of the training distribution (``models.reference``).
"""

from __future__ import annotations

import numpy as np

#: Statistics per channel in ``input_statistics`` (their order is part of the reference).
N_STATS = 10
#: Side of the blocks whose means locate an input's peak (robust to single noisy pixels).
PEAK_BLOCK = 4


def channels_first(x: np.ndarray, layout: str) -> np.ndarray:
    """A prepared batch as (n, C, H, W) images, or (n, 1, 1, L) spectra."""
    if x.ndim == 2:
        return x[:, None, None, :]
    if x.ndim == 3:  # (n, H, W) planes, or (n, L, 1)/(n, 1, L) spectra
        return x[:, None, :, :]
    return x if layout == "NCHW" else np.moveaxis(x, -1, 1)


def input_statistics(x: np.ndarray, layout: str = "NHWC") -> np.ndarray:
    """(n, 10 * C) summary statistics of a prepared batch. Level, spread and
    high-frequency power use every pixel; the quantiles, tail weight and share above
    3 sigma a quarter of them (every other row and column), which keeps the cost a small
    fraction of the network's. The last is where the input peaks: for an image the
    distance of its brightest 4x4 block from the centre (a cut-out is centred on its
    target; a star field or a blank patch of sky is not), for a spectrum the position of
    its brightest 4 samples along the spectrum."""
    x = np.ascontiguousarray(channels_first(np.asarray(x, np.float32), layout))
    n, c, h, w = x.shape
    flat = x.reshape(n, c, -1)
    mean = flat.mean(axis=2)
    std = np.sqrt(_sum_of_squares(flat - mean[..., None]) / flat.shape[2]) + np.float32(1e-6)
    power = np.zeros((n, c), np.float32)
    if w > 1:
        power += _sum_of_squares(x[..., 1:] - x[..., :-1]) / np.float32(h * (w - 1))
    if h > 1:
        power += _sum_of_squares(x[:, :, 1:] - x[:, :, :-1]) / np.float32((h - 1) * w)
    high_freq = np.log(power + np.float32(1e-12)) - 2 * np.log(std)
    sub = x[:, :, ::2, ::2].reshape(n, c, -1) if h > 1 else x[:, :, :, ::2].reshape(n, c, -1)
    m = sub.shape[2]
    ranks = [round(q * (m - 1)) for q in (0.01, 0.5, 0.99)]  # nearest-rank quantiles
    # a (SIMD) sort of every row beats np.partition with three kth ~9x, same values
    q01, q50, q99 = np.moveaxis(np.sort(sub, axis=2)[:, :, ranks], 2, 0)
    ry, rx = max(1, h // 8), max(1, w // 8)
    cy, cx = h // 2, w // 2
    centre = x[:, :, max(0, cy - ry):cy + ry + 1, max(0, cx - rx):cx + rx + 1].mean(axis=(2, 3))
    concentration = (centre - q50) / std
    z = (sub - mean[..., None]) / std[..., None]
    z2 = np.square(z)
    tail = np.log(np.square(z2).mean(axis=2) + np.float32(1e-12))
    above = (z > 3).mean(axis=2)
    return np.concatenate([mean, np.log(std), q01, q50, q99, high_freq, concentration,
                           tail, above, _peak(x)], axis=1).astype(np.float64)


def _sum_of_squares(d: np.ndarray) -> np.ndarray:
    """(n, C) sums of squares of a (n, C, ...) array as one dot product per row (BLAS):
    no squared copy, a fifth of what ``np.square(d).mean`` costs; the same values to
    float32 rounding."""
    d = np.ascontiguousarray(d).reshape(d.shape[0], d.shape[1], 1, -1)
    return (d @ np.swapaxes(d, 2, 3))[:, :, 0, 0]


def _peak(x: np.ndarray) -> np.ndarray:
    """(n, C): where a (n, C, H, W) batch peaks, from block means over every other pixel
    (see input_statistics)."""
    sub = x[:, :, ::2, ::2] if x.shape[3] > 1 else x[:, :, ::2, :]
    n, c, h, w = sub.shape
    b = PEAK_BLOCK // 2  # blocks of the half-resolution grid: 4x4 pixels of the input
    if w == 1:  # a spectrum along H: signed position of the peak, -0.5 .. 0.5
        hh = max(b, h // b * b)
        blocks = sub[:, :, :hh, 0].reshape(n, c, -1, min(b, hh)).mean(axis=3)
        return (blocks.argmax(axis=2) + 0.5) / blocks.shape[2] - 0.5
    bh, bw = min(b, h), min(b, w)
    hh, ww = h // bh * bh, w // bw * bw
    # block sums (their argmax is the block means') from bh x bw strided views: ~5x
    # faster than a reshape and a mean over two non-adjacent axes
    blocks = sum(sub[:, :, dy:hh:bh, dx:ww:bw] for dy in range(bh) for dx in range(bw))
    sh, sw = blocks.shape[2:]
    row, col = np.divmod(blocks.reshape(n, c, -1).argmax(axis=2), sw)
    return np.hypot((row + 0.5) / sh - 0.5, (col + 0.5) / sw - 0.5)


def mahalanobis(f: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Distance of each row of ``f`` from a Gaussian given by its mean and precision."""
    d = np.asarray(f, np.float64) - mean
    return np.sqrt(np.maximum(((d @ precision) * d).sum(axis=1), 0.0))  # BLAS, not einsum
