"""Quijote-like 2-D matter density maps over a Latin hypercube in (Omega_m, sigma_8).

Each map is a projected slab of a 1 Gpc/h box on a 64x64 grid (SCIENCE.md section 5):
a Gaussian random field with the linear power spectrum (BBKS transfer function, shape
Gamma = Omega_m h with Sugiyama's baryon correction, normalised to sigma_8) turned into
a positive density 1 + delta by a lognormal transform (Coles & Jones 1991). Omega_m
sets where the spectrum turns over (inside the map's k range) and sigma_8 its height
and the field's skewness, so both are recoverable from the pixels.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from scipy.stats import qmc

from astrocat.simulate._common import (
    chunk_size,
    chunks,
    kind_rng,
    object_rng,
    resolve_workers,
    run_chunked,
    write_csv,
)

GRID = 64
BOX = 1000.0  # Mpc/h, the Quijote box
SLAB = 60.0  # Mpc/h projected along the line of sight
H, OMEGA_B, N_S = 0.6711, 0.049, 0.9624  # Quijote fiducial values kept fixed
OMEGA_M_RANGE = (0.1, 0.5)
SIGMA_8_RANGE = (0.6, 1.0)
FIRST_ID = 0
TRUTH = "fields_truth.csv"


def bbks_transfer(k: np.ndarray, omega_m: float) -> np.ndarray:
    """BBKS (Bardeen et al. 1986) transfer function, k in h/Mpc."""
    gamma = omega_m * H * np.exp(-OMEGA_B * (1.0 + np.sqrt(2.0 * H) / omega_m))
    q = np.maximum(k, 1e-12) / gamma
    return (np.log1p(2.34 * q) / (2.34 * q)) * (
        1 + 3.89 * q + (16.1 * q) ** 2 + (5.46 * q) ** 3 + (6.71 * q) ** 4
    ) ** -0.25


def linear_power(k: np.ndarray, omega_m: float, sigma_8: float) -> np.ndarray:
    """P(k) in (Mpc/h)^3, normalised so the 8 Mpc/h top-hat rms is sigma_8."""
    kk = np.logspace(-4, 2, 4000)
    x = kk * 8.0
    w = 3.0 * (np.sin(x) - x * np.cos(x)) / x**3
    shape = kk**N_S * bbks_transfer(kk, omega_m) ** 2
    s2 = np.trapezoid(kk**3 * shape * w**2 / (2 * np.pi**2), np.log(kk))
    return sigma_8**2 / s2 * np.asarray(k, dtype=float) ** N_S * bbks_transfer(k, omega_m) ** 2


@cache
def _kgrid() -> tuple[np.ndarray, np.ndarray]:
    """|k| (h/Mpc) on the rfft2 grid, and the squared cell window of a pixel average."""
    d = BOX / GRID
    kx = 2 * np.pi * np.fft.fftfreq(GRID, d)
    ky = 2 * np.pi * np.fft.rfftfreq(GRID, d)
    kxx, kyy = np.meshgrid(kx, ky, indexing="ij")
    window = (np.sinc(kxx * d / (2 * np.pi)) * np.sinc(kyy * d / (2 * np.pi))) ** 2
    return np.hypot(kxx, kyy), window


def density_map(omega_m: float, sigma_8: float, rng: np.random.Generator) -> np.ndarray:
    """One 64x64 float32 map of 1 + delta (mean ~ 1, positive)."""
    k, window = _kgrid()
    # Thin-slab projection: P_2D(k) = P_3D(k) / slab thickness, times the pixel window.
    p2d = linear_power(k, omega_m, sigma_8) / SLAB * window
    p2d[0, 0] = 0.0
    d = BOX / GRID
    white = np.fft.rfft2(rng.standard_normal((GRID, GRID)))
    g = np.fft.irfft2(white * np.sqrt(p2d / d**2), s=(GRID, GRID))
    # Variance of g on this grid, from the spectrum (not the sample), so that the mean
    # density of a map fluctuates as cosmic variance says it should.
    weights = np.full(p2d.shape, 2.0)
    weights[:, 0] = 1.0
    if GRID % 2 == 0:
        weights[:, -1] = 1.0
    var = float((weights * p2d).sum() / BOX**2)
    return np.exp(g - 0.5 * var).astype(np.float32)


def latin_hypercube(n: int, seed: int) -> np.ndarray:
    """(n, 2) parameters (Omega_m, sigma_8), one per stratum on each axis."""
    if n == 0:
        return np.zeros((0, 2))
    u = qmc.LatinHypercube(d=2, rng=kind_rng(seed, "fields")).random(n)
    lo = np.array([OMEGA_M_RANGE[0], SIGMA_8_RANGE[0]])
    hi = np.array([OMEGA_M_RANGE[1], SIGMA_8_RANGE[1]])
    return qmc.scale(u, lo, hi)


def _chunk(
    start: int, stop: int, seed: int, out: str, params: np.ndarray, first_id: int
) -> list[int]:
    for i in range(start, stop):
        om, s8 = params[i]
        m = density_map(float(om), float(s8), object_rng(seed, "fields", i))
        np.save(Path(out, f"field_{first_id + i}.npy"), m)
    return list(range(start, stop))


def simulate(
    n: int,
    out: Path,
    seed: int = 0,
    *,
    progress: bool = True,
    workers: int | None = None,
    first_id: int = FIRST_ID,
) -> Path:
    """Write ``field_<ID>.npy`` maps and ``fields_truth.csv`` (ID, omega_m, sigma_8)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = latin_hypercube(n, seed)
    w = resolve_workers(workers)
    if n < 2000:  # a map takes ~1 ms: a pool only pays for itself on big surveys
        w = 1
    run_chunked(
        _chunk,
        chunks(n, chunk_size(n, w, cap=256)),
        (int(seed), str(out), params, int(first_id)),
        workers=w,
        progress=progress,
        description="fields",
    )
    lines = [f"{first_id + i},{params[i, 0]:.6f},{params[i, 1]:.6f}" for i in range(n)]
    path = out / TRUTH
    write_csv(path, ["ID", "omega_m", "sigma_8"], lines)
    return path
