"""Euclid VIS-like strong-lens cut-outs in the Bologna Lens Finding Challenge layout.

101x101 single-band FITS at 0.1"/px named ``imageEUC_VIS-<ID>.fits`` and a
``lens_labels.csv`` with the challenge's columns (Metcalf et al. 2019; SCIENCE.md
section 4). Lenses are a singular isothermal ellipsoid plus external shear (analytic
deflection, Kormann et al. 1994) ray-shot onto a Sersic source; non-lenses are the same
foreground galaxies, often with unlensed neighbours, so "extra light" is not the answer.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter

from astrocat.simulate._common import (
    chunk_size,
    chunks,
    kind_rng,
    object_rng,
    resolve_workers,
    run_chunked,
    write_csv,
)
from astrocat.simulate._render import ellipse_radius, rotate, sersic

SIZE = 101
PIXEL_ARCSEC = 0.1
SUPER = 3  # rays per pixel side: resolves sub-pixel arcs and the lens galaxy's cusp
FIRST_ID = 100000
LABELS = "lens_labels.csv"
COLUMNS = ["ID", "is_lens", "Einstein_area", "numb_pix_lensed_image", "flux_lensed_image_in_sigma"]
COMPRESS = (None, "gzip", "fz")
#: An injected lens must leave at least this many pixels above 1 sigma (the challenge's
#: visibility cut); fainter draws get a brighter source.
MIN_LENSED_PIXELS = 20


def _super_grid() -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel ray positions in pixels, relative to the image centre."""
    step = 1.0 / SUPER
    ax = (np.arange(SIZE * SUPER) + 0.5) * step - 0.5 - (SIZE - 1) / 2
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    return xx.astype(np.float64), yy.astype(np.float64)


def _bin(img: np.ndarray) -> np.ndarray:
    return img.reshape(SIZE, SUPER, SIZE, SUPER).mean(axis=(1, 3))


def sie_deflection(
    x: np.ndarray, y: np.ndarray, theta_e: float, q: float, pa: float
) -> tuple[np.ndarray, np.ndarray]:
    """Deflection of a singular isothermal ellipsoid (Kormann et al. 1994; Keeton 2001).

    Normalised so the critical curve encloses pi theta_E^2 (intermediate-axis
    convention); ``q`` is the axis ratio (<= 1), ``pa`` the major axis angle (rad).
    """
    u, v = rotate(x, y, pa)
    q = min(q, 0.999)
    b = theta_e / np.sqrt(q)
    e = np.sqrt(1.0 - q * q)
    psi = np.sqrt(q * q * u * u + v * v) + 1e-12
    au = b * q / e * np.arctan(e * u / psi)
    av = b * q / e * np.arctanh(np.clip(e * v / psi, -0.999999, 0.999999))
    c, s = np.cos(pa), np.sin(pa)
    return au * c - av * s, au * s + av * c


def _deflection(
    x: np.ndarray, y: np.ndarray, lens: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    ax, ay = sie_deflection(x, y, lens["theta_e"], lens["q"], lens["pa"])
    g1, g2 = lens["g1"], lens["g2"]  # external shear
    return ax + g1 * x + g2 * y, ay + g2 * x - g1 * y


def einstein_area(lens: dict[str, float]) -> float:
    """Area (arcsec^2) inside the tangential critical curve, where det(A) < 0."""
    xs, ys = _super_grid()
    ax, ay = _deflection(xs, ys, lens)
    h = 1.0 / SUPER
    dax_dy, dax_dx = np.gradient(ax, h)
    day_dy, day_dx = np.gradient(ay, h)
    det = (1 - dax_dx) * (1 - day_dy) - dax_dy * day_dx
    return float((det < 0).sum() * h * h * PIXEL_ARCSEC**2)


def _sersic_image(x: np.ndarray, y: np.ndarray, p: dict[str, float]) -> np.ndarray:
    u, v = rotate(x - p["x"], y - p["y"], p["pa"])
    return p["amp"] * sersic(ellipse_radius(u, v, p["q"]), p["re"], p["n"])


def _header(rng: np.random.Generator, ident: int) -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    ra = float(rng.uniform(0, 360))
    dec = float(np.degrees(np.arcsin(rng.uniform(-0.95, 0.95))))
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(SIZE + 1) / 2, (SIZE + 1) / 2]
    w.wcs.cdelt = [-PIXEL_ARCSEC / 3600, PIXEL_ARCSEC / 3600]
    w.wcs.radesys = "ICRS"
    hdr = w.to_header()
    hdr["RA"] = (ra, "[deg] cut-out centre")
    hdr["DEC"] = (dec, "[deg] cut-out centre")
    hdr["ID"] = (ident, "challenge image ID")
    hdr["TELESCOP"] = ("Euclid", "simulated (astrocat)")
    hdr["INSTRUME"] = ("VIS", "single broad band, 550-900 nm")
    hdr["PIXSCALE"] = (PIXEL_ARCSEC, "[arcsec/pixel]")
    hdr["BUNIT"] = ("ADU", "sky-subtracted")
    return hdr


def render(
    seed: int, index: int, is_lens: bool, first_id: int = FIRST_ID
) -> tuple[np.ndarray, fits.Header, list[float]]:
    """One cut-out: float32 image, header, and label row (challenge columns)."""
    rng = object_rng(seed, "lenses", index)
    ident = first_id + index
    xs, ys = _super_grid()
    noise = float(rng.uniform(0.8, 1.2))
    psf_sigma = float(rng.uniform(0.16, 0.2) / PIXEL_ARCSEC / 2.3548)  # FWHM 0.16-0.20"
    # Foreground elliptical: r_e 0.3-1.5", n 2.5-5.5, I(r_e) 3-30 sigma.
    q_l = float(rng.uniform(0.5, 1.0))
    pa_l = float(rng.uniform(0, np.pi))
    fg = {
        "x": rng.normal(0, 0.7),
        "y": rng.normal(0, 0.7),
        "pa": pa_l,
        "q": q_l,
        "re": rng.uniform(3, 15),
        "n": rng.uniform(2.5, 5.5),
        "amp": noise * np.exp(rng.uniform(np.log(3), np.log(30))),
    }
    light = _sersic_image(xs, ys, fg)
    # Neighbours (both classes): small galaxies, sometimes thin edge-on arcs-alikes.
    for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3]))):
        r, ang = rng.uniform(15, 45), rng.uniform(0, 2 * np.pi)
        edge = rng.random() < (0.35 if not is_lens else 0.15)
        nb = {
            "x": r * np.cos(ang),
            "y": r * np.sin(ang),
            "pa": rng.uniform(0, np.pi),
            "q": rng.uniform(0.15, 0.3) if edge else rng.uniform(0.4, 1.0),
            "re": rng.uniform(2, 6),
            "n": rng.uniform(0.8, 3),
            "amp": noise * np.exp(rng.uniform(np.log(1), np.log(8))),
        }
        light += _sersic_image(xs, ys, nb)
    area = 0.0
    lensed = np.zeros((SIZE, SIZE))
    if is_lens:
        theta_e = float(rng.uniform(5, 25))  # 0.5-2.5"
        g = rng.uniform(0, 0.06)
        gpa = rng.uniform(0, np.pi)
        lens = {
            "theta_e": theta_e,
            "q": float(np.clip(q_l + rng.normal(0, 0.08), 0.45, 0.999)),
            "pa": pa_l + rng.normal(0, 0.15),
            "g1": g * np.cos(2 * gpa),
            "g2": g * np.sin(2 * gpa),
        }
        ax, ay = _deflection(xs - fg["x"], ys - fg["y"], lens)
        bx, by = xs - ax, ys - ay  # lens equation: beta = theta - alpha(theta)
        # Source inside ~the caustic region for rings/arcs, sometimes beyond (single arcs).
        rb = theta_e * np.sqrt(rng.uniform(0, 1)) * rng.choice([0.5, 1.0], p=[0.6, 0.4])
        ang = rng.uniform(0, 2 * np.pi)
        src = {
            "x": fg["x"] + rb * np.cos(ang),
            "y": fg["y"] + rb * np.sin(ang),
            "pa": rng.uniform(0, np.pi),
            "q": rng.uniform(0.4, 1.0),
            "re": rng.uniform(0.8, 4.0),
            "n": rng.uniform(0.7, 2.5),
            "amp": noise * np.exp(rng.uniform(np.log(1.5), np.log(15))),
        }
        base = _sersic_image(bx, by, src)
        # A star-forming knot or two, as real sources are clumpy.
        for _ in range(int(rng.integers(0, 3))):
            knot = {
                "x": src["x"] + rng.normal(0, src["re"]),
                "y": src["y"] + rng.normal(0, src["re"]),
                "pa": 0.0,
                "q": 1.0,
                "re": rng.uniform(0.3, 0.8),
                "n": 1.0,
                "amp": src["amp"] * rng.uniform(0.5, 2.0),
            }
            base += _sersic_image(bx, by, knot)
        area = einstein_area(lens)
        for _ in range(12):
            lensed = gaussian_filter(_bin(base), psf_sigma, mode="constant")
            if (lensed > noise).sum() >= MIN_LENSED_PIXELS:
                break
            base *= 1.6
    image = gaussian_filter(_bin(light), psf_sigma, mode="constant") + lensed
    image = image + rng.normal(0, noise, image.shape)
    above = lensed > noise
    labels = [
        float(ident),
        float(is_lens),
        round(area, 6),
        float(above.sum()),
        round(float(lensed[above].sum() / noise), 4),
    ]
    return image.astype(np.float32), _header(rng, ident), labels


def write_cutout(path: Path, data: np.ndarray, header: fits.Header, compress: str | None) -> Path:
    """Write one cut-out; ``gzip`` -> ``.fits.gz`` (mtime 0: reproducible bytes),
    ``fz`` -> ``.fits.fz`` tile-compressed (RICE, like survey archives)."""
    if compress is None:
        fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
        return path
    if compress == "gzip":
        buf = io.BytesIO()
        fits.PrimaryHDU(data, header).writeto(buf)
        target = path.with_name(path.name + ".gz")
        target.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
        return target
    if compress == "fz":
        target = path.with_name(path.name + ".fz")
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)])
        hdul.writeto(target, overwrite=True)
        return target
    raise ValueError(f"compress must be one of {COMPRESS}")


def _chunk(
    start: int,
    stop: int,
    seed: int,
    out: str,
    lens_set: frozenset[int],
    compress: str | None,
    first_id: int,
) -> list[list[float]]:
    rows = []
    for i in range(start, stop):
        data, header, labels = render(seed, i, i in lens_set, first_id)
        write_cutout(Path(out, f"imageEUC_VIS-{first_id + i}.fits"), data, header, compress)
        rows.append(labels)
    return rows


def simulate(
    n: int,
    out: Path,
    seed: int = 0,
    *,
    progress: bool = True,
    workers: int | None = None,
    lens_fraction: float = 0.5,
    compress: str | None = None,
    first_id: int = FIRST_ID,
) -> Path:
    """Write n cut-outs and ``lens_labels.csv``; exactly round(lens_fraction * n) lenses."""
    if compress not in COMPRESS:
        raise ValueError(f"compress must be one of {COMPRESS}")
    if not 0.0 <= lens_fraction <= 1.0:
        raise ValueError("lens_fraction must be in [0, 1]")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_lens = int(round(lens_fraction * n))
    lens_set = frozenset(int(i) for i in kind_rng(seed, "lenses").choice(n, n_lens, replace=False))
    w = resolve_workers(workers)
    rows = run_chunked(
        _chunk,
        chunks(n, chunk_size(n, w)),
        (int(seed), str(out), lens_set, compress, int(first_id)),
        workers=w,
        progress=progress,
        description="lenses",
    )
    lines = [f"{int(r[0])},{int(r[1])},{r[2]:.6f},{int(r[3])},{r[4]:.4f}" for r in rows]
    path = out / LABELS
    write_csv(path, COLUMNS, lines)
    return path
