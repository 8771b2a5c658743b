"""Spectra onto a model's spectral axis: flux-conserving resampling as a matrix product,
flux units through ``astropy.units``, air wavelengths to vacuum.

A spectral axis is a list of sample centres made of one or more increasing segments (the
bundled redshift model's axis is Gaia's BP then RP, which overlap at 645-675 nm). Each
sample is a bin between the midpoints to its neighbours within its segment, as specutils'
``FluxConservingResampler`` has it; an output bin's flux is the overlap-weighted mean of
the input bins it covers, so a batch of spectra on one input grid is two matrix products.
Missing input samples (NaN: masked, zero inverse variance) carry no weight; an output bin
less than ``MIN_COVERAGE`` covered by good samples is NaN, for the NaN policy to decide.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: An output bin needs at least this share of its width covered by good input samples.
MIN_COVERAGE = 0.5
#: At most this share of a spectrum's output bins may be filled by interpolation.
MAX_FILLED_FRACTION = 0.10


@dataclass(frozen=True)
class SpectralAxis:
    """Sample centres with their unit and medium; the flux unit and calibration that go
    with them (a model's axis, or what an input file says of its own samples)."""

    wavelength: tuple[float, ...]
    unit: str = "nm"  # an astropy unit string
    medium: str = "vacuum"  # vacuum | air | "" (not said: taken as the model's)
    flux_unit: str = ""  # an astropy unit string ("" unknown: taken as the model's)
    calibration: str = ""  # absolute | internal | "" (not said)

    @property
    def n(self) -> int:
        return len(self.wavelength)

    def in_nm(self) -> np.ndarray:
        """Vacuum wavelengths in nm (air converted)."""
        lam = to_nm(np.asarray(self.wavelength, dtype=np.float64), self.unit)
        return air_to_vacuum_nm(lam) if self.medium == "air" else lam

    def range_nm(self) -> tuple[float, float]:
        lam = self.in_nm()
        return float(lam.min()), float(lam.max())


def grid(start: float, n: int, step: float | None = None, stop: float | None = None,
         scale: str = "linear") -> tuple[float, ...]:
    """Centres ``start``, ``start + step``, ... (``scale`` linear), or evenly spaced in
    log10 (``log10``: ``step`` in dex, as SDSS's ``loglam``) or ln (``ln``); ``stop``
    instead of ``step`` gives the last centre."""
    if n < 2:
        raise ValueError("a spectral axis needs at least 2 samples")
    if scale == "linear":
        values = (np.linspace(start, stop, n) if stop is not None
                  else start + step * np.arange(n))
    elif scale in ("log10", "ln"):
        log, exp = (np.log10, lambda x: 10.0 ** x) if scale == "log10" else (np.log, np.exp)
        first = log(start)
        values = exp(np.linspace(first, log(stop), n) if stop is not None
                     else first + step * np.arange(n))
    else:
        raise ValueError(f"unknown axis scale {scale!r} (linear, log10 or ln)")
    return tuple(float(v) for v in values)


def to_nm(values: np.ndarray, unit: str) -> np.ndarray:
    from astropy import units as u

    return (values * u.Unit(unit or "nm")).to_value(u.nm, equivalencies=u.spectral())


def air_to_vacuum_nm(air_nm: np.ndarray) -> np.ndarray:
    """Air wavelengths (nm) to vacuum: the IAU standard (Morton 2000, from Edlen 1966), as
    SDSS and specutils' ``air_to_vac`` (method 'Morton') have it; unchanged below 200 nm."""
    sigma2 = (1e3 / air_nm) ** 2  # (1/lambda in um)^2
    factor = 1 + 8.34254e-5 + 2.406147e-2 / (130 - sigma2) + 1.5998e-4 / (38.9 - sigma2)
    return np.where(air_nm >= 200.0, air_nm * factor, air_nm)


def _segments(lam: np.ndarray) -> list[slice]:
    """The increasing runs of ``lam``."""
    breaks = np.flatnonzero(np.diff(lam) <= 0) + 1
    bounds = [0, *breaks.tolist(), len(lam)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _edges(centres: np.ndarray) -> np.ndarray:
    """Bin edges of one increasing run: midpoints, half a step beyond each end."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def bins(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) edges of every sample, segment by segment."""
    lo, hi = np.empty_like(lam), np.empty_like(lam)
    for s in _segments(lam):
        e = _edges(lam[s])
        lo[s], hi[s] = e[:-1], e[1:]
    return lo, hi


def overlap_matrix(src_nm: np.ndarray, dst_nm: np.ndarray) -> np.ndarray:
    """M[i, j]: the length of output bin i covered by input bin j (nm)."""
    slo, shi = bins(src_nm)
    dlo, dhi = bins(dst_nm)
    return np.clip(np.minimum(dhi[:, None], shi[None, :])
                   - np.maximum(dlo[:, None], slo[None, :]), 0.0, None)


@dataclass(frozen=True)
class Resampler:
    """One input grid onto one model axis: the overlap matrix and the unit factors."""

    matrix: np.ndarray  # (n_out, n_in) overlap lengths, nm
    width: np.ndarray  # (n_out,) output bin widths, nm
    factor: np.ndarray  # (n_in,) input flux -> the model's flux unit
    source_range: tuple[float, float]  # nm, vacuum
    target_range: tuple[float, float]
    uncovered: int  # model samples outside the input's range (however good its samples)

    def apply(self, flux: np.ndarray) -> np.ndarray:
        """(n, n_in) flux with NaN for missing samples -> (n, n_out) on the model's axis
        in its flux unit; bins without enough good coverage are NaN."""
        good = np.isfinite(flux)
        values = np.where(good, flux * self.factor, 0.0)
        weight = good.astype(np.float64) @ self.matrix.T
        total = values @ self.matrix.T
        with np.errstate(invalid="ignore", divide="ignore"):
            out = total / weight
        out[weight < MIN_COVERAGE * self.width] = np.nan
        return out.astype(np.float32)


def unit_factors(src: SpectralAxis, flux_unit: str, lam_nm: np.ndarray) -> np.ndarray:
    """Per-sample factors from the input's flux unit to ``flux_unit`` (f_nu <-> f_lambda
    through ``spectral_density`` at each sample's wavelength); ones where either is not
    said (a model normalises each spectrum: only the shape matters then)."""
    if not src.flux_unit or not flux_unit:
        return np.ones(len(lam_nm))
    from astropy import units as u

    return (1.0 * u.Unit(src.flux_unit)).to_value(
        u.Unit(flux_unit), equivalencies=u.spectral_density(lam_nm * u.nm)) * np.ones(
        len(lam_nm))


@functools.lru_cache(maxsize=64)
def resampler(src: SpectralAxis, dst: SpectralAxis) -> Resampler:
    """The resampler from ``src`` onto ``dst`` (cached: a table's rows, or a survey's
    files on one grid, build it once)."""
    src_nm = (to_nm(np.asarray(src.wavelength, np.float64), src.unit) if src.medium != "air"
              else src.in_nm())
    dst_nm = dst.in_nm()
    lo, hi = bins(dst_nm)
    factor = unit_factors(src, dst.flux_unit, src_nm)
    matrix = overlap_matrix(src_nm, dst_nm)
    uncovered = int((matrix.sum(axis=1) < MIN_COVERAGE * (hi - lo)).sum())
    return Resampler(matrix, hi - lo, factor, (float(src_nm.min()), float(src_nm.max())),
                     (float(dst_nm.min()), float(dst_nm.max())), uncovered)


def onto_axis(flux: np.ndarray, src: SpectralAxis | None, dst: SpectralAxis | None,
              n_model: int, model: str) -> tuple[np.ndarray, list[str | None]]:
    """A chunk of spectra as model ``model`` takes them: on its axis where both the card
    and the file state one, else as they are when their length is the model's; and per
    row, why it cannot be used (None where it can)."""
    n = len(flux)
    if dst is None or src is None:
        if flux.shape[1] == n_model:
            return flux, [None] * n
        why = (f"the card of model '{model}' states no spectral axis "
               "([input.spectral_axis]), so the number of samples must match"
               if dst is None else "the file states no wavelengths for its samples, so "
               "they must be the model's own")
        return flux, [f"spectrum has {flux.shape[1]} flux samples; model '{model}' needs "
                      f"{n_model}: {why}"] * n
    if dst.calibration == "absolute" and src.calibration == "internal":
        return flux, [f"internally calibrated spectrum (flux in {src.flux_unit or 'e-/s'} on "
                      "a pseudo-wavelength grid, e.g. GaiaXPy's convert); model "
                      f"'{model}' needs absolutely calibrated flux: use GaiaXPy's "
                      "calibrate, or the archive's XP_SAMPLED"] * n
    r = resampler(src, dst)
    ranges = (f"the spectrum covers {r.source_range[0]:.1f}-{r.source_range[1]:.1f} nm; model "
              f"'{model}' needs {r.target_range[0]:.1f}-{r.target_range[1]:.1f} nm (vacuum)")
    if r.uncovered:
        return flux, [f"{ranges}: {r.uncovered} of its {dst.n} samples lie outside"] * n
    out = r.apply(flux)
    reasons: list[str | None] = []
    for k in range(n):
        missing = fill_gaps(out[k])
        reasons.append(None if missing <= MAX_FILLED_FRACTION * dst.n else
                       f"too few good samples: {missing} of the model's {dst.n} samples "
                       f"have no good data (masked, zero inverse variance or missing); "
                       f"{ranges}")
    return out, reasons


def fill_gaps(row: np.ndarray) -> int:
    """Fill NaN samples of one resampled spectrum by linear interpolation in index order;
    returns how many were filled (the caller refuses too many)."""
    bad = ~np.isfinite(row)
    n = int(bad.sum())
    if n and n < len(row):
        idx = np.arange(len(row))
        row[bad] = np.interp(idx[bad], idx[~bad], row[~bad])
    return n
