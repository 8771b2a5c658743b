"""Shared drawing for the science report: PNG output, photo mosaics, source thumbnails.

Each task module draws its own figures (seed 001 Figs. 4 and 14-18, seed 002 Table I,
seed 003 Figs. 16-18, seed 004's ROC and TPR/TNR curves) with what this module holds;
:mod:`astrocat.science.figures` walks the registry for ``summarize --plots/--report``.
matplotlib is imported only inside functions, so a plain summary never loads it. Figures
use the object-oriented API (``Figure`` + Agg canvas), never ``pyplot``: no global
backend state is touched, so drawing in a notebook changes nothing there.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
THUMB = 128  # pixels of each galaxy thumbnail (shown 1:1)


@dataclass(frozen=True)
class Palette:
    """The report's colours: predictions, truth, trivial baselines."""

    pred: str = "#1f77b4"
    true: str = "#d62728"
    base: str = "#7f7f7f"


PALETTE = Palette()


@dataclass
class FigureOut:
    name: str  # file stem, e.g. "redshift_2d"
    section: str  # the report section it belongs to
    title: str
    png: bytes | None = field(repr=False)  # None when skipped (see note)
    note: str | None = None

    def _repr_png_(self) -> bytes | None:
        """Shown as itself in a notebook cell."""
        return self.png


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` (Agg, no pyplot), imported on first use."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def png(fig: Figure, palette: bool = False) -> bytes:
    """PNG bytes; ``palette`` stores photo mosaics with 256 adaptive colours, which keeps
    them readable at a quarter of the size (the HTML page embeds every figure)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    if not palette:
        return buf.getvalue()
    from PIL import Image

    buf.seek(0)
    with Image.open(buf) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def save_figures(figures: list[FigureOut], out_dir: Path) -> dict[str, Path]:
    """Write each figure as ``DIR/<name>.png``; returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for f in figures:
        if f.png:
            path = out_dir / f"{f.name}.png"
            path.write_bytes(f.png)
            files[f.name] = path
    return files


# --------------------------------------------------------------------------- shared plots


def reliability_figure(rel: Any, predicted: str, observed: str, title: str) -> bytes:
    """A reliability diagram (``stats.Reliability``): mean outcome against mean
    prediction per equal-width bin, the diagonal of perfect calibration, and the count
    per bin beneath; the ECE in the title."""
    fig = new_figure(figsize=(6.4, 6.6), layout="constrained")
    a1, a2 = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    used = rel.n > 0
    mids = (rel.edges[:-1] + rel.edges[1:]) / 2
    a1.plot([0, 1], [0, 1], "--", color=PALETTE.base, lw=1, label="perfectly calibrated")
    a1.plot(rel.mean_predicted[used], rel.mean_observed[used], "o-", color=PALETTE.pred,
            label=f"model ({int(rel.n.sum())} pairs)")
    a1.set_ylabel(observed)
    a1.set_xlim(0, 1)
    a1.set_ylim(-0.02, 1.02)
    a1.set_title(f"{title}\nECE {rel.ece:.4f} over {rel.bins} equal-width bins")
    a1.legend(loc="upper left")
    a1.grid(alpha=0.3)
    a2.bar(mids, rel.n, width=0.9 / rel.bins, color=PALETTE.pred, alpha=0.6)
    a2.set_yscale("symlog", linthresh=1)
    a2.set_xlabel(predicted)
    a2.set_ylabel("pairs per bin")
    a2.grid(alpha=0.3)
    return png(fig)


def spread_axes(ax: Any, rows: list[dict], label: str, unit: str = "") -> None:
    """Mean |error| against mean predicted spread per bin of spread (``stats.uncertainty``'s
    ``by_spread``), with the line a Gaussian error of that spread would follow
    (mean |error| = sqrt(2/pi) x spread)."""
    s = np.array([r["mean_spread"] for r in rows])
    e = np.array([r["mean_abs_error"] for r in rows])
    right = float(s.max(initial=0)) * 1.1 or 1.0
    top = float(e.max(initial=0)) * 1.1 or 1.0
    ax.plot([0, right], [0, np.sqrt(2 / np.pi) * right], "--", color=PALETTE.base, lw=1,
            label="Gaussian error of that spread")
    ax.plot(s, e, "o-", color=PALETTE.pred, label=label)
    ax.set_xlim(0, right)
    ax.set_ylim(0, max(top, np.sqrt(2 / np.pi) * right * 1.02))
    ax.set_xlabel(f"mean predicted spread (TTA std{unit}), per equal-count bin")
    ax.set_ylabel(f"mean |prediction - truth|{unit}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


# --------------------------------------------------------------------------- images


class Images:
    """Thumbnails of source images, relative to the catalog's input root."""

    def __init__(self, root: str | None) -> None:
        self.root = Path(root) if root else None
        self.missing = 0

    def path(self, source: str) -> Path | None:
        if not source:
            return None
        p = Path(source)
        if not p.is_absolute() and self.root is not None:
            p = self.root / p
        return p if p.is_file() else None

    def reachable(self, sources: list[str]) -> bool:
        return any(self.path(s) is not None for s in sources)

    def rgb(self, source: str, size: int = THUMB) -> np.ndarray | None:
        """The central half of a galaxy image (what gz2-cnn sees), ``size`` pixels square."""
        from PIL import Image

        p = self.path(source)
        if p is None:
            self.missing += 1
            return None
        try:
            with Image.open(p) as im:
                im.draft("RGB", (2 * size, 2 * size))  # JPEG DCT scaling: fast
                im = im.convert("RGB")
                w, h = im.size
                im = im.crop((w // 4, h // 4, w - w // 4, h - h // 4))
                return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR))
        except Exception:  # noqa: BLE001 - truncated, bomb, not an image: a missing thumbnail
            self.missing += 1
            return None

    def plane(self, source: str) -> np.ndarray | None:
        """A FITS/npy single-band plane, asinh-stretched between the 1st and 99.5th percentile."""
        from astrocat.sources import readers

        p = self.path(source)
        if p is None:
            self.missing += 1
            return None
        name = p.name.lower()
        fmt = "npy" if name.endswith(".npy") else "fits"
        try:
            data = readers.read_plane(str(p), fmt, None).data
        except Exception:  # noqa: BLE001 - any unreadable file is just a missing thumbnail
            self.missing += 1
            return None
        lo, hi = np.percentile(data, [1, 99.5])
        x = np.clip((data - lo) / max(hi - lo, 1e-12), 0, 1)
        return np.arcsinh(10 * x) / np.arcsinh(10)


def mosaic(tiles: list[list[tuple[np.ndarray | None, str]]], title: str, tile: int,
            row_labels: list[str] | None = None, font: float = 7.0) -> bytes:
    """Thumbnails as ONE image with captions, shown pixel for pixel.

    One canvas and one ``imshow`` instead of an axes per thumbnail: a 13 x 5 prototype
    page renders in a fraction of the time, and images are never resampled twice.
    """
    cap, gap = int(2.2 * font * DPI / 72), 6  # caption band and gutter, pixels
    rows, cols = len(tiles), max((len(r) for r in tiles), default=1)
    cell_w, cell_h = tile + gap, tile + cap + gap
    canvas = np.full((rows * cell_h, cols * cell_w, 3), 255, np.uint8)
    for i, row in enumerate(tiles):
        for j, (img, _) in enumerate(row):
            y, x = i * cell_h + cap, j * cell_w
            if img is None:
                canvas[y:y + tile, x:x + tile] = 230
                continue
            a = np.asarray(img, dtype=float)
            if a.max() <= 1.0:
                a = a * 255
            if a.ndim == 2:
                a = np.repeat(a[..., None], 3, axis=2)
            h, w = min(tile, a.shape[0]), min(tile, a.shape[1])
            canvas[y:y + h, x:x + w] = np.clip(a[:h, :w], 0, 255).astype(np.uint8)
    left = 170 if row_labels else 10
    top = int(1.8 * (font + 2) * DPI / 72) * (title.count("\n") + 1) + 10
    width, height = left + canvas.shape[1] + 4, top + canvas.shape[0]
    fig = new_figure(figsize=(width / DPI, height / DPI))
    ax = fig.add_axes((left / width, 0, canvas.shape[1] / width, canvas.shape[0] / height))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for i, row in enumerate(tiles):
        for j, (img, caption) in enumerate(row):
            x, y = j * cell_w + tile / 2, i * cell_h + cap - 2
            ax.text(x, y, caption, ha="center", va="bottom", fontsize=font)
            if img is None:
                ax.text(x, y + tile / 2, "not found", ha="center", va="center",
                        fontsize=font, color="0.4")
        if row_labels:
            ax.text(-8, i * cell_h + cap + tile / 2, row_labels[i], ha="right", va="center",
                    fontsize=font + 1, clip_on=False)
    fig.text(0.5, 1 - 4 / height, title, ha="center", va="top", fontsize=font + 2)
    return png(fig, palette=True)
