"""Gaia BP/RP-like low-resolution galaxy spectra with known redshift (SCIENCE.md section 3).

Each row holds the 186 flux samples seed 003 feeds its 1-D CNN: 80 BP pixels then 106
RP pixels over 366-996 nm, at the XP resolving power (R ~ 30-100). Early- and late-type
rest-frame templates (4000 A break, Ca H&K, Mg b, Na D; [OII], Hb, [OIII], Ha+[NII],
[SII]) are redshifted across the window, so z is learnable from where features fall.

Speed: every template component is pre-convolved and sampled on a fine redshift grid
once; a spectrum is then a weighted sum of linearly interpolated rows (520k in < 1 min).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from astrocat.simulate._common import chunks, iter_chunked, object_rng, resolve_workers

N_BP, N_RP = 80, 106
N_PIX = N_BP + N_RP
Z_MAX = 0.6
DZ = 0.0005  # redshift grid step of the pre-convolved tables
FORMATS = ("parquet", "csv", "fits")
CHUNK = 8192  # fixed, so results do not depend on the worker count
FIRST_SOURCE_ID = 4_000_000_000_000_000_000  # Gaia-like 19-digit int64 ids


@cache
def wavelengths() -> np.ndarray:
    """Observed wavelength (nm) of each of the 186 samples.

    A prism disperses blue light more than red: BP pixels are spaced evenly in 1/lambda^2
    (1.6 nm at 366 nm to ~10 nm at 680 nm), RP evenly in 1/lambda (2-5 nm); the two
    overlap near 650-675 nm like the real BP and RP (Carrasco et al. 2021).
    """
    bp = 1.0 / np.sqrt(np.linspace(1 / 366.0**2, 1 / 675.0**2, N_BP))
    rp = 1.0 / np.linspace(1 / 645.0, 1 / 996.0, N_RP)
    return np.concatenate([bp, rp])


@cache
def resolving_power() -> np.ndarray:
    """R = lambda / FWHM per sample: 85 -> 30 across BP, 95 -> 55 across RP."""
    lam = wavelengths()
    bp = np.interp(lam[:N_BP], [366.0, 675.0], [85.0, 30.0])
    rp = np.interp(lam[N_BP:], [645.0, 996.0], [95.0, 55.0])
    return np.concatenate([bp, rp])


# Rest-frame features (nm). Absorption: (centre, depth, sigma).
_EARLY_ABS = [
    (393.37, 0.55, 0.6),
    (396.85, 0.5, 0.6),  # Ca II K, H
    (410.2, 0.1, 0.6),
    (430.5, 0.25, 1.0),
    (434.0, 0.08, 0.6),  # Hd, G band, Hg
    (486.1, 0.08, 0.6),
    (517.5, 0.3, 1.2),
    (527.0, 0.12, 0.8),  # Hb, Mg b, Fe 5270
    (589.3, 0.25, 0.8),
    (656.3, 0.08, 0.8),
    (710.0, 0.08, 6.0),  # Na D, Ha, TiO
    (849.8, 0.12, 0.5),
    (854.2, 0.15, 0.5),
    (866.2, 0.13, 0.5),  # Ca triplet
]
_LATE_ABS = [
    (393.37, 0.2, 0.6),
    (396.85, 0.1, 0.6),
    (388.9, 0.12, 0.6),
    (397.0, 0.1, 0.6),
    (410.2, 0.15, 0.8),
    (434.0, 0.15, 0.8),
    (486.1, 0.12, 0.8),
    (517.5, 0.08, 1.2),
]
# Emission lines grouped into fixed-ratio components: (name, [(centre, relative flux)]).
LINES: list[tuple[str, list[tuple[float, float]]]] = [
    ("OII", [(372.7, 1.0)]),
    ("Hg", [(434.0, 1.0)]),
    ("Hb", [(486.1, 1.0)]),
    ("OIII", [(495.9, 1.0 / 3.0), (500.7, 1.0)]),
    ("Ha", [(656.3, 1.0)]),
    ("NII", [(654.8, 1.0 / 3.0), (658.4, 1.0)]),
    ("SII", [(671.6, 0.55), (673.1, 0.45)]),
]
CONTINUA = ("early", "late", "starburst")


def _planck(lam_nm: np.ndarray, t: float) -> np.ndarray:
    x = 1.4388e7 / (lam_nm * t)  # hc / (lambda k T), lambda in nm
    return lam_nm**-5.0 / np.expm1(x)


def _absorb(lam: np.ndarray, lines: list[tuple[float, float, float]]) -> np.ndarray:
    f = np.ones_like(lam)
    for c, depth, s in lines:
        f *= 1.0 - depth * np.exp(-0.5 * ((lam - c) / s) ** 2)
    return f


def _step(lam: np.ndarray, at: float, width: float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh((lam - at) / width))


@cache
def rest_templates() -> tuple[np.ndarray, np.ndarray]:
    """Rest-frame grid (nm) and the three continuum templates, each 1 at 550 nm.

    Early: ~4500 K old population with a strong 4000 A break (D4000 ~ 2) and UV drop.
    Late: bluer, weak break (D4000 ~ 1.2), Balmer absorption. Starburst: f ~ lambda^-1.8.
    """
    lam = np.arange(180.0, 1060.0, 0.2)
    early = _planck(lam, 4500.0) * (0.45 + 0.55 * _step(lam, 400.0, 2.5))
    early *= 0.25 + 0.75 * _step(lam, 300.0, 25.0) * 1.0
    early *= _absorb(lam, _EARLY_ABS)
    late = _planck(lam, 7500.0) * (0.8 + 0.2 * _step(lam, 400.0, 3.0))
    late *= 0.85 + 0.15 * _step(lam, 364.6, 2.0)  # Balmer break
    late *= _absorb(lam, _LATE_ABS)
    burst = (lam / 550.0) ** -1.8 * (0.92 + 0.08 * _step(lam, 364.6, 2.0))
    temps = np.stack([early, late, burst])
    temps /= temps[:, [int(np.searchsorted(lam, 550.0))]]
    return lam, temps


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Pre-convolved responses ``T[component, z_index, pixel]`` and the z grid.

    Components: the continua (unit at rest 550 nm), then each line group with unit total
    line flux (in the same f_lambda-per-nm units), all through the Gaussian LSF.
    """
    lam_pix = wavelengths()
    sig_pix = lam_pix / resolving_power() / 2.3548
    zs = np.arange(0.0, Z_MAX + 2 * DZ, DZ)
    # Observed fine grid and LSF matrix (rows: pixels) for the continua.
    fine = np.arange(340.0, 1030.0, 0.2)
    w = np.exp(-0.5 * ((fine[None, :] - lam_pix[:, None]) / sig_pix[:, None]) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    rest, temps = rest_templates()
    cont = np.empty((len(CONTINUA), len(zs), N_PIX))
    for k, t in enumerate(temps):
        obs = np.interp(fine[None, :] / (1.0 + zs[:, None]), rest, t)  # (nz, fine)
        cont[k] = obs @ w.T
    lines = np.zeros((len(LINES), len(zs), N_PIX))
    norm = 1.0 / (np.sqrt(2 * np.pi) * sig_pix)
    for k, (_, comps) in enumerate(LINES):
        for centre, rel in comps:
            mu = centre * (1.0 + zs[:, None])
            lines[k] += rel * norm * np.exp(-0.5 * ((lam_pix[None, :] - mu) / sig_pix) ** 2)
    return np.concatenate([cont, lines]).astype(np.float32), zs


def draw_redshifts(rng: np.random.Generator, n: int) -> np.ndarray:
    """SDSS DR16 galaxy-like z: Gamma(3.23, 0.044) cut to [0, 0.6].

    Gives mean 0.142, median 0.128, sigma 0.079, 99 % below 0.39 (SCIENCE.md: 0.142,
    0.126, 0.079, 0.37).
    """
    z = rng.gamma(3.23, 0.044, n)
    bad = z > Z_MAX
    while bad.any():
        z[bad] = rng.gamma(3.23, 0.044, int(bad.sum()))
        bad = z > Z_MAX
    return z


def _chunk(start: int, stop: int, seed: int) -> dict[str, np.ndarray]:
    """One fixed-size block of spectra, drawn from a generator seeded by the block."""
    rng = object_rng(seed, "spectra", start // CHUNK)
    n = stop - start
    table, _ = _tables()
    n_cont = len(CONTINUA)
    z = draw_redshifts(rng, n)
    # Population: ~40 % early (red, no/weak lines), ~60 % star-forming.
    early = rng.random(n) < 0.4
    f_early = np.where(early, rng.uniform(0.75, 1.0, n), rng.uniform(0.0, 0.5, n))
    f_burst = np.where(early, 0.0, rng.uniform(0.0, 0.4, n)) * (1 - f_early)
    wc = np.stack([f_early, 1 - f_early - f_burst, f_burst], axis=1)
    # Continuum level at each line's rest wavelength sets line flux = EW x continuum.
    rest, temps = rest_templates()
    c_ha = wc @ np.array([np.interp(656.3, rest, t) for t in temps])
    ew_ha = np.where(
        early, rng.uniform(0.0, 0.3, n), np.exp(rng.uniform(np.log(0.5), np.log(12), n))
    )
    agn = rng.random(n) < 0.08
    f_ha = ew_ha * c_ha
    balmer_dec = rng.uniform(2.86, 5.0, n)  # Ha/Hb: case B (2.86) plus dust
    f_hb = f_ha / balmer_dec
    o3_hb = np.where(
        agn, rng.uniform(3.0, 10.0, n), np.exp(rng.uniform(np.log(0.2), np.log(3.0), n))
    )
    n2_ha = np.where(agn, rng.uniform(0.6, 1.5, n), rng.uniform(0.15, 0.5, n))
    o2_hb = rng.uniform(1.0, 4.0, n)
    s2_ha = rng.uniform(0.15, 0.45, n)
    wl = np.stack(
        [o2_hb * f_hb, 0.47 * f_hb, f_hb, o3_hb * f_hb, f_ha, n2_ha * f_ha, s2_ha * f_ha], axis=1
    )
    weights = np.concatenate([wc, wl], axis=1).astype(np.float32)  # (n, components)
    pos = z / DZ
    j = np.minimum(pos.astype(np.int64), table.shape[1] - 2)
    frac = (pos - j).astype(np.float32)[:, None]
    flux = np.zeros((n, N_PIX), dtype=np.float32)
    for k in range(n_cont + len(LINES)):
        rows = table[k, j] * (1 - frac) + table[k, j + 1] * frac
        flux += weights[:, k : k + 1] * rows
    # Flux scale: G ~ 16.5-20.5 galaxies, f_lambda in W m^-2 nm^-1 (Gaia XP units).
    g_mag = rng.uniform(16.5, 20.5, n)
    scale = 2.5e-11 * 10 ** (-0.4 * g_mag) / np.median(flux, axis=1)
    flux *= scale.astype(np.float32)[:, None]
    # Noise: S/N 10-100 at the median, worse at the band edges (low throughput).
    lam = wavelengths()
    edge = np.concatenate(
        [
            1 + 2.0 * np.exp(-(lam[:N_BP] - 366) / 25) + 1.5 * np.exp(-(675 - lam[:N_BP]) / 15),
            1 + 1.0 * np.exp(-(lam[N_BP:] - 645) / 15) + 2.5 * np.exp(-(996 - lam[N_BP:]) / 40),
        ]
    ).astype(np.float32)
    snr = np.exp(rng.uniform(np.log(10), np.log(100), n))
    med = np.median(flux, axis=1)
    sigma = (med / snr).astype(np.float32)[:, None] * edge[None, :]
    sigma *= np.sqrt(0.5 + np.clip(flux / med[:, None].astype(np.float32), 0, None))
    flux += sigma * rng.standard_normal((n, N_PIX), dtype=np.float32)
    # Sky position: SDSS-like footprint (dec > -10), uniform on the sphere.
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-10.0)), 1.0, n)))
    ids = FIRST_SOURCE_ID + (seed % 100_000) * 10**9 + np.arange(start, stop, dtype=np.int64)
    return {"source_id": ids, "ra": ra, "dec": dec, "z": z, "flux": flux}


CSV_COLUMNS = ["source_id", "ra", "dec", "z"] + [f"flux_{i}" for i in range(N_PIX)]


def csv_fields(block: dict[str, np.ndarray], k: int) -> list[str]:
    """Row ``k`` of a block as CSV cells, in :data:`CSV_COLUMNS` order."""
    head = [
        str(int(block["source_id"][k])),
        f"{block['ra'][k]:.8f}",
        f"{block['dec'][k]:.8f}",
        f"{block['z'][k]:.6f}",
    ]
    return head + [f"{v:.6e}" for v in block["flux"][k]]


SCHEMA = pa.schema(
    [
        ("source_id", pa.int64()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("z", pa.float64()),
        ("flux", pa.list_(pa.float32(), N_PIX)),
    ]
)


def _arrow(block: dict[str, np.ndarray]) -> pa.Table:
    flux = block["flux"]
    values = pa.array(flux.ravel(), type=pa.float32())
    return pa.Table.from_pydict(
        {
            "source_id": pa.array(block["source_id"], type=pa.int64()),
            "ra": pa.array(block["ra"], type=pa.float64()),
            "dec": pa.array(block["dec"], type=pa.float64()),
            "z": pa.array(block["z"], type=pa.float64()),
            "flux": pa.FixedSizeListArray.from_arrays(values, N_PIX),
        },
        schema=SCHEMA,
    )


def simulate(
    n: int,
    out: Path,
    seed: int = 0,
    *,
    progress: bool = True,
    workers: int | None = None,
    fmt: str = "parquet",
) -> Path:
    """Write ``spectra.<fmt>`` with source_id, ra, dec, z, flux(186); return its path.

    The truth (``z``) travels in the same table, as in the SDSS-matched training set.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"spectra.{fmt}"
    w = resolve_workers(workers)
    # Small jobs are not worth a pool; big ones split into fixed blocks.
    if n <= 4 * CHUNK:
        w = 1
    blocks = iter_chunked(
        _chunk,
        chunks(n, CHUNK),
        (int(seed),),
        workers=w,
        progress=progress,
        description="spectra",
    )
    if fmt == "parquet":
        with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
            for block in blocks:
                writer.write_table(_arrow(block))
    elif fmt == "csv":
        with open(path, "w", newline="\n", encoding="ascii") as fh:
            fh.write(",".join(CSV_COLUMNS) + "\n")
            for b in blocks:
                for k in range(len(b["z"])):
                    fh.write(",".join(csv_fields(b, k)) + "\n")
    else:
        _write_fits(path, list(blocks))
    return path


def _write_fits(path: Path, blocks: list[dict[str, np.ndarray]]) -> None:
    from astropy.io import fits

    def cat(key: str) -> np.ndarray:
        return np.concatenate([b[key] for b in blocks]) if blocks else np.zeros(0)

    flux = (
        np.concatenate([b["flux"] for b in blocks]) if blocks else np.zeros((0, N_PIX), np.float32)
    )
    cols = [
        fits.Column("source_id", "K", array=cat("source_id").astype(np.int64)),
        fits.Column("ra", "D", unit="deg", array=cat("ra")),
        fits.Column("dec", "D", unit="deg", array=cat("dec")),
        fits.Column("z", "D", array=cat("z")),
        fits.Column("flux", f"{N_PIX}E", unit="W m-2 nm-1", array=flux),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="SPECTRA")
    hdu.header["WAVEUNIT"] = ("nm", "sample wavelengths in WAVELEN extension")
    lam = fits.BinTableHDU.from_columns(
        [fits.Column("wavelength", "D", unit="nm", array=wavelengths())], name="WAVELEN"
    )
    fits.HDUList([fits.PrimaryHDU(), hdu, lam]).writeto(path, overwrite=True)
