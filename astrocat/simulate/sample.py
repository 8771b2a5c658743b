"""A small mixed survey for the README demo: every input kind, some compressed, some broken.

``out/`` holds only what ``astrocat infer --input out`` should see (galaxy JPEGs, lens
FITS incl. ``.fits.gz`` and ``.fits.fz``, a spectra Parquet, density maps, and a
``broken/`` folder of bad inputs that must become error rows, not crashes). The truth
goes to the sibling ``<out>_truth/`` so it is never mistaken for input.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from astropy.io import fits

from astrocat.simulate import fields, galaxies, lenses, spectra

DEFAULT_N = 150  # galaxies; the other kinds scale with it
FIRST_ID = 200000  # distinct from the training surveys' 100000+ IDs


def truth_dir(out: Path) -> Path:
    """``<out>_truth`` beside ``out``."""
    out = Path(out)
    return out.with_name(out.name + "_truth")


def _broken(out: Path, good_jpeg: Path | None, seed: int) -> None:
    """Deliberately bad inputs, one per failure mode a reader must survive."""
    out.mkdir(parents=True, exist_ok=True)
    if good_jpeg is not None:
        data = good_jpeg.read_bytes()
        (out / "truncated.jpg").write_bytes(data[: len(data) * 2 // 5])
    (out / "not_really.fits").write_text(
        "This is a text file that only claims to be FITS.\nSIMPLE? no.\n", encoding="ascii"
    )
    (out / "empty.jpg").write_bytes(b"")
    cube = np.random.default_rng([seed, 99]).normal(0, 1, (3, 48, 48)).astype(np.float32)
    hdr = fits.Header()
    hdr["COMMENT"] = "3-D cube: not a single-band cut-out"
    fits.PrimaryHDU(cube, hdr).writeto(out / "cube.fits", overwrite=True)
    block = spectra._chunk(0, 5, seed)  # the survey's own generator
    lines = [",".join(spectra.CSV_COLUMNS)]
    for k in range(5):
        cells = spectra.csv_fields(block, k)
        if k == 2:
            cells[4 + 57] = ""  # flux_57 missing
        lines.append(",".join(cells))
    (out / "spectra_missing_flux.csv").write_text("\n".join(lines) + "\n", encoding="ascii")


def simulate(
    n: int,
    out: Path,
    seed: int = 2026,
    *,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write the demo survey into ``out`` and its truth into ``<out>_truth``; return the latter.

    ``n`` is the number of galaxies (0 means 150); lenses, spectra and fields scale with it
    (150 -> 50 lenses, 200 spectra, 20 fields; about 5 MB in all).
    """
    out = Path(out)
    n_gal = n if n > 0 else DEFAULT_N
    n_lens = max(4, round(n_gal / 3))
    n_spec = max(10, round(4 * n_gal / 3))
    n_field = max(2, round(n_gal / 7.5))
    truth = truth_dir(out)
    truth.mkdir(parents=True, exist_ok=True)
    kw = {"progress": progress, "workers": workers}

    gal = galaxies.simulate(n_gal, out / "galaxies", seed, first_id=FIRST_ID, **kw)
    shutil.move(gal, truth / gal.name)

    lab = lenses.simulate(n_lens, out / "lenses", seed, first_id=FIRST_ID, **kw)
    shutil.move(lab, truth / lab.name)
    # A few cut-outs as gzip and tile-compressed FITS, as archives ship them.
    for i in range(n_lens):
        kind = {1: "gzip", 2: "fz"}.get(i % 8)  # both present from 3 lenses on
        if kind is None:
            continue
        path = out / "lenses" / f"imageEUC_VIS-{FIRST_ID + i}.fits"
        with fits.open(path) as hdul:
            data, header = hdul[0].data.copy(), hdul[0].header.copy()
        lenses.write_cutout(path, data, header, kind)
        path.unlink()

    spectra.simulate(n_spec, out / "spectra", seed, **kw)

    fld = fields.simulate(n_field, out / "fields", seed, **kw)
    shutil.move(fld, truth / fld.name)

    first = out / "galaxies" / f"{FIRST_ID}.jpg"
    _broken(out / "broken", first if first.exists() else None, seed)
    return truth
