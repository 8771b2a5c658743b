"""Figures of the science report, as PNG bytes (matplotlib, headless).

Only imported for ``summarize --plots/--report``, so a plain summary never loads
matplotlib. Figures are drawn with the object-oriented API (``Figure`` + Agg canvas),
never ``pyplot``: no global backend state is touched, so importing this module in a
notebook changes nothing there.

Each figure mirrors one in the source studies where there is one (seed 001 Figs. 4 and
14-18, seed 002 Table I, seed 003 Figs. 16-18, seed 004's ROC and TPR/TNR curves); axes
carry units, and every figure says what its numbers are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from astrocat.catalog.summary import LABELS_OF_INTEREST, MERGER_COLUMN, Summary, TopK
from astrocat.kernels.gz_tree import galaxy_zoo2

DPI = 110
THUMB = 128  # pixels of each galaxy thumbnail (shown 1:1)
LENS_THUMB = 202  # a 101 x 101 cut-out at 2x, nearest-neighbour
#: Prototype pages: questions per page, so that each page stays about 12 rows tall.
PROTOTYPE_PAGES = ((1, 2, 3, 4, 5), (6, 7, 8), (9, 10, 11))
PRED_COLOUR, TRUE_COLOUR, BASE_COLOUR = "#1f77b4", "#d62728", "#7f7f7f"


@dataclass
class FigureOut:
    name: str  # file stem, e.g. "redshift_2d"
    section: str  # the report section it belongs to
    title: str
    png: bytes | None  # None when skipped (see note)
    note: str | None = None


def _png(fig: Figure, palette: bool = False) -> bytes:
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


def _label(col: str) -> str:
    tree = galaxy_zoo2()
    a = tree.answers[tree.index(col)]
    return f"{a.kaggle_column} {a.answer_text}"


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


def make_figures(result: Summary) -> list[FigureOut]:
    """Every figure the catalog's sections support, in report order."""
    d, r = result.data, result.report
    out: list[FigureOut] = []
    images = _Images(d.get("images_root"))
    if "morphology" in d:
        out += _morphology_figures(d["morphology"], r["morphology"], images)
    if "redshift" in d:
        out += _redshift_figures(d["redshift"], r["redshift"])
    if "lens" in d:
        out += _lens_figures(d["lens"], r["lens"], images)
    if "cosmology" in d:
        out += _cosmology_figures(d["cosmology"], r["cosmology"])
    if images.missing:
        out.append(FigureOut("images", "notes", "", None,
                             f"{images.missing} source image(s) for the mosaics could not be "
                             f"read under {images.root} (--images-root sets where "
                             "`source` paths are relative to)"))
    return out


# --------------------------------------------------------------------------- images


class _Images:
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


def _mosaic(tiles: list[list[tuple[np.ndarray | None, str]]], title: str, tile: int,
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
    fig = Figure(figsize=(width / DPI, height / DPI))
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
    return _png(fig, palette=True)


# --------------------------------------------------------------------------- morphology


def _morphology_figures(d: dict, r: dict, images: _Images) -> list[FigureOut]:
    out = [FigureOut("morphology_answers", "morphology",
                     "Mean vote fraction and share of confident galaxies per answer",
                     _answers(d, r)),
           FigureOut("morphology_histograms", "morphology",
                     "Distribution of vote fractions per answer (seed 001 label histograms)",
                     _histograms(d))]
    if "merger" in d:
        out.append(FigureOut("merger_fraction", "morphology",
                             "Merger fraction against threshold, with its Beta interval",
                             _merger_curve(d["merger"], r["merger"])))
    if "rmse" in d:
        out.append(FigureOut("morphology_truth", "morphology",
                             "Per-answer RMSE against the mean baseline, and ROC AUC",
                             _truth_metrics(d, r)))
    out.append(FigureOut("label_correlation", "morphology",
                         "Label correlation matrix (seed 001 Fig. 4)", _correlation(d)))
    proto = d.get("proto")
    if proto is not None:
        srcs = [s for j in range(proto.m) for s in (e["source"] for e in proto.column(j))]
        if not images.reachable(srcs):
            return out + [FigureOut("morphology_prototypes", "morphology", "", None,
                                    f"prototype and merger mosaics skipped: source images "
                                    f"not found under {images.root} (use --images-root)")]
        out.append(FigureOut("morphology_prototypes_interest", "morphology",
                             "Top prototypes of seed 001's seven labels of interest, "
                             "by predicted vote fraction (seed 001 Figs. 15-17)",
                             _prototypes(proto, d["columns"], LABELS_OF_INTEREST, images,
                                         "predicted")))
        if d.get("proto_true") is not None:
            out.append(FigureOut("morphology_prototypes_interest_true", "morphology",
                                 "The same labels' prototypes by TRUE vote fraction "
                                 "(seed 001 Fig. 14)",
                                 _prototypes(d["proto_true"], d["columns"], LABELS_OF_INTEREST,
                                             images, "true")))
        tree = galaxy_zoo2()
        for page, qs in enumerate(PROTOTYPE_PAGES, 1):
            cols = [a.catalog_column for a in tree.answers if a.question in qs]
            out.append(FigureOut(
                f"morphology_prototypes_{page}", "morphology",
                f"Top prototypes per answer, questions {qs[0]}-{qs[-1]} (predicted)",
                _prototypes(proto, d["columns"], cols, images, "predicted")))
        if d.get("examples") is not None and "merger" in d:
            out.append(FigureOut("merger_examples", "morphology",
                                 "Random mergers above the threshold (seed 001 Fig. 18)",
                                 _merger_examples(d["examples"], r["merger"], images)))
    return out


def _answers(d: dict, r: dict) -> bytes:
    cols = d["columns"]
    labels = [_label(c) for c in cols]
    y = np.arange(len(cols))
    has_t = "truth_mean" in d
    fig = Figure(figsize=(12, 0.26 * len(cols) + 1.6), layout="constrained")
    a1, a2 = fig.subplots(1, 2, sharey=True)
    h = 0.4 if has_t else 0.8
    a1.barh(y - (h / 2 if has_t else 0), d["mean"], h, color=PRED_COLOUR, label="predicted")
    share = np.array([a["share_confident"] for a in r["answers"]])
    a2.barh(y - (h / 2 if has_t else 0), 100 * share, h, color=PRED_COLOUR, label="predicted")
    if has_t:
        a1.barh(y + h / 2, d["truth_mean"], h, color=TRUE_COLOUR, label="truth")
        t_share = np.array([a.get("n_positive", 0) for a in r["answers"]]) / r["truth"][
            "n_matched"]
        a2.barh(y + h / 2, 100 * t_share, h, color=TRUE_COLOUR, label="truth")
        a1.legend(loc="lower right")
    a1.set_yticks(y, labels, fontsize=8)
    a1.invert_yaxis()
    a1.set_xlabel("mean weighted vote fraction")
    a2.set_xlabel(f"galaxies with vote fraction >= {r['vote_threshold']} (%)")
    a1.set_title(f"Mean vote fraction ({r['n']} galaxies)")
    a2.set_title("Share of confident galaxies")
    for ax in (a1, a2):
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _histograms(d: dict) -> bytes:
    cols, hist = d["columns"], d["hist"]
    n_cols = 6
    n_rows = -(-len(cols) // n_cols)
    # fixed spacing: the constrained layout solver is slow with 37 axes
    fig = Figure(figsize=(15, 2.0 * n_rows + 0.6))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={
        "left": 0.05, "right": 0.99, "bottom": 0.05, "top": 0.95, "hspace": 0.45,
        "wspace": 0.25})
    edges = np.linspace(0, 1, hist.shape[1] + 1)
    for j, ax in enumerate(axes.flat):
        if j >= len(cols):
            ax.set_visible(False)
            continue
        ax.stairs(hist[j], edges, color=PRED_COLOUR, label="predicted")
        if "truth_hist" in d:
            ax.stairs(d["truth_hist"][j], edges, color=TRUE_COLOUR, label="truth")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title(_label(cols[j]), fontsize=8)
        ax.tick_params(labelsize=7)
        if j % n_cols == 0:
            ax.set_ylabel("galaxies", fontsize=8)
        if j // n_cols == n_rows - 1 or j + n_cols >= len(cols):
            ax.set_xlabel("vote fraction", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2)
    fig.suptitle("Vote-fraction distribution per Galaxy Zoo answer (log counts)")
    return _png(fig)


def _merger_curve(d: dict, r: dict) -> bytes:
    grid = d["grid"]
    f = np.array([c.value for c in d["curve"]])
    lo = np.array([c.lower for c in d["curve"]])
    hi = np.array([c.upper for c in d["curve"]])
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    pct = f"{100 * r['confidence']:.1f}%"
    ax.fill_between(grid, 100 * lo, 100 * hi, color=PRED_COLOUR, alpha=0.25,
                    label=f"{pct} Beta interval (Cameron 2011)")
    ax.plot(grid, 100 * f, color=PRED_COLOUR, label=f"predicted ({r['n']} galaxies)")
    if d.get("truth_curve") is not None:
        ax.plot(grid, 100 * d["truth_curve"], "--", color=TRUE_COLOUR,
                label=f"truth ({r['truth']['n']} matched galaxies)")
    ax.axvline(r["threshold"], color="k", lw=0.8, ls=":")
    ax.annotate(f"{100 * r['fraction']:.2f}% [{100 * r['lower']:.2f}, {100 * r['upper']:.2f}]"
                f"\nat {r['threshold']}", (r["threshold"], 100 * r["fraction"]),
                xytext=(10, 25), textcoords="offset points", fontsize=9,
                arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlabel(f"threshold on {r['column']} = {r['kaggle_column']} (already x Class6.1)")
    ax.set_ylabel("merger fraction (%)")
    ax.set_ylim(bottom=0)
    ax.set_title("Merger fraction against threshold")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def _truth_metrics(d: dict, r: dict) -> bytes:
    cols = d["columns"]
    labels = [_label(c) for c in cols]
    x = np.arange(len(cols))
    t = r["truth"]
    fig = Figure(figsize=(14, 7.5), layout="constrained")
    a1, a2 = fig.subplots(2, 1, sharex=True)
    a1.bar(x - 0.2, d["rmse"], 0.4, color=PRED_COLOUR, label=f"model (all: {t['rmse']:.4f})")
    a1.bar(x + 0.2, d["rmse_baseline"], 0.4, color=BASE_COLOUR,
           label=f"predicting the mean (all: {t['rmse_baseline_mean']:.4f})")
    a1.set_ylabel("RMSE (vote fraction)")
    a1.set_title(f"Per-answer RMSE against truth ({t['n_matched']} galaxies)")
    a1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    auc = d["auc"]
    ok = np.isfinite(auc)
    a2.bar(x[ok], auc[ok], 0.6, color=PRED_COLOUR)
    for xi in x[~ok]:
        a2.text(xi, 0.52, "n/a", rotation=90, ha="center", va="bottom", fontsize=7,
                color="0.4")
    a2.axhline(0.9, color="k", ls=":", lw=0.8, label="AUC 0.9")
    a2.axhline(0.5, color=BASE_COLOUR, ls="--", lw=0.8, label="AUC 0.5 (chance)")
    a2.set_ylim(min(0.4, float(np.nanmin(auc, initial=1.0)) - 0.05), 1.0)
    a2.set_ylabel("ROC AUC")
    a2.set_title(f"Per-answer ROC AUC (positive: {t['auc_positive_rule']}; n/a: one class "
                 "empty) - seed 002 Table I")
    a2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    a2.set_xticks(x, labels, rotation=90, fontsize=8)
    for ax in (a1, a2):
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _question_bounds(cols: list[str]) -> list[float]:
    tree = galaxy_zoo2()
    q = [tree.answers[tree.index(c)].question for c in cols]
    return [i - 0.5 for i in range(1, len(q)) if q[i] != q[i - 1]]


def _correlation(d: dict) -> bytes:
    cols = d["columns"]
    labels = [galaxy_zoo2().answers[galaxy_zoo2().index(c)].kaggle_column for c in cols]
    mats = [("predicted vote fractions", d["corr_pred"])]
    if "corr_true" in d:
        mats.append(("true vote fractions", d["corr_true"]))
    fig = Figure(figsize=(8.5 * len(mats) + 1, 8.5), layout="constrained")
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    im = None
    for ax, (title, m) in zip(axes, mats, strict=True):
        im = ax.imshow(np.ma.masked_invalid(m), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(cols)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(cols)), labels, fontsize=7)
        for b in _question_bounds(cols):
            ax.axhline(b, color="k", lw=0.4)
            ax.axvline(b, color="k", lw=0.4)
        ax.set_title(f"Correlation of {title}")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="Pearson correlation coefficient")
    return _png(fig)


def _prototypes(tk: TopK, all_cols: list[str], cols, images: _Images, what: str) -> bytes:
    cols = [c for c in cols if c in all_cols]
    tiles = [[(images.rgb(e["source"]), f"{e['object_id']}  {e['score']:.2f}")
              for e in tk.column(all_cols.index(c))] for c in cols]
    return _mosaic(tiles, f"Top {tk.k} galaxies per answer by {what} vote fraction\n"
                   "(GalaxyID and value above each; central half of the image)", THUMB,
                   [_label(c).replace(" ", "\n", 1) for c in cols])


def _merger_examples(tk: TopK, r: dict, images: _Images) -> bytes:
    entries = tk.column(0)
    side = max(1, int(np.ceil(np.sqrt(len(entries)))))
    tiles = [[(images.rgb(e["source"], 2 * THUMB), f"{e['object_id']}  merger {e['score']:.2f}")
              for e in entries[i:i + side]] for i in range(0, len(entries), side)]
    return _mosaic(tiles or [[(None, "no galaxy above the threshold")]],
                   f"{len(entries)} random galaxies with {MERGER_COLUMN} >= {r['threshold']}\n"
                   f"({r['k']} of {r['n']} qualify; central half of the image)", 2 * THUMB,
                   font=8)


# --------------------------------------------------------------------------- redshift


def _redshift_figures(d: dict, r: dict) -> list[FigureOut]:
    if d.get("z_true") is None:
        return [FigureOut("redshift_distribution", "redshift", "Distribution of z_pred",
                          _z_hist(d["z_pred"], None))]
    return [
        FigureOut("redshift_histograms", "redshift",
                  "Predicted and true redshift distributions (seed 003 Fig. 16)",
                  _z_hist(d["z_pred"], d["z_true"])),
        FigureOut("redshift_2d", "redshift", "Predicted against true redshift "
                  "(seed 003 Fig. 17)", _z_2d(d["z_pred"], d["z_true"], d["metrics"])),
        FigureOut("redshift_bias", "redshift", "Mean error +- sigma per 0.05 bin of true "
                  "redshift (seed 003 Fig. 18)", _z_bias(d["bias_table"])),
    ]


def _z_edges(*arrays: np.ndarray) -> np.ndarray:
    hi = max(float(np.nanmax(a)) for a in arrays if len(a))
    lo = min(0.0, np.floor(100 * min(float(np.nanmin(a)) for a in arrays if len(a))) / 100)
    return np.arange(lo, max(hi, 0.05) + 0.01, 0.01)  # negative z_pred stays visible


def _z_hist(zp: np.ndarray, zt: np.ndarray | None) -> bytes:
    edges = _z_edges(zp, *(() if zt is None else (zt,)))
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.hist(zp, edges, histtype="step", lw=1.5, color=PRED_COLOUR,
            label=f"predicted z_pred (n={len(zp)})")
    if zt is not None:
        ax.hist(zt, edges, histtype="step", lw=1.5, color=TRUE_COLOUR,
                label=f"true z (n={len(zt)})")
    ax.set_xlabel("redshift z")
    ax.set_ylabel("spectra per 0.01 in z")
    ax.set_title("Redshift distribution" + ("" if zt is None else ": predicted and true"))
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def _z_2d(zp: np.ndarray, zt: np.ndarray, m: dict) -> bytes:
    edges = _z_edges(zp, zt)
    fig = Figure(figsize=(6.6, 5.6), layout="constrained")
    ax = fig.subplots()
    h, _, _, im = ax.hist2d(zt, zp, bins=[edges, edges], norm=LogNorm(), cmap="viridis")
    ax.plot(edges[[0, -1]], edges[[0, -1]], "--", color=TRUE_COLOUR, lw=1,
            label="z_pred = z_true")
    cb = fig.colorbar(im, ax=ax, label="spectra per 0.01 x 0.01 cell (log scale)")
    cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("true redshift z_true")
    ax.set_ylabel("predicted redshift z_pred")
    ax.set_aspect("equal")
    ax.text(0.03, 0.97, f"n = {m['n']}\nbias dz/(1+z) = {m['bias']:+.4f}\n"
            f"sigma_NMAD = {m['sigma_nmad']:.4f}\neta(|dz|>0.15) = "
            f"{100 * m['outlier_fraction']:.2f}%\nMAE = {m['mae']:.4f}",
            transform=ax.transAxes, va="top", fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    ax.legend(loc="lower right")
    ax.set_title("Predicted against true redshift")
    return _png(fig)


def _z_bias(table: list[dict]) -> bytes:
    mid = np.array([(r["z_lo"] + r["z_hi"]) / 2 for r in table])
    mean = np.array([r["mean_error"] for r in table])
    sd = np.array([r["std_error"] for r in table])
    pct = np.array([r["percent"] for r in table])
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ax2 = ax.twinx()
    ax2.bar(mid, pct, width=0.045, color="0.85", zorder=0, label="% of data")
    ax2.set_ylabel("% of data in bin", color="0.45")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    n = np.array([r["n"] for r in table])
    few = n < 10  # a bin of one or two spectra has no meaningful sigma: mark it open
    ax.errorbar(mid, mean, yerr=sd, fmt="-", color=PRED_COLOUR, capsize=3,
                label="mean error +- standard deviation")
    ax.plot(mid[~few], mean[~few], "o", color=PRED_COLOUR, zorder=3)
    if few.any():
        ax.plot(mid[few], mean[few], "o", mfc="white", mec=PRED_COLOUR, zorder=3,
                label="bins with fewer than 10 spectra")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("true redshift z_true (0.05 bins)")
    ax.set_ylabel("error z_pred - z_true")
    ax.set_title("Redshift error per bin of true redshift")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower left")
    ax.grid(alpha=0.3)
    return _png(fig)


# --------------------------------------------------------------------------- lenses


def _lens_figures(d: dict, r: dict, images: _Images) -> list[FigureOut]:
    out = [FigureOut("lens_scores", "lens", "Distribution of p_lens", _lens_hist(d, r))]
    if d.get("labels") is not None:
        t = r["truth"]
        out += [
            FigureOut("lens_roc", "lens", "ROC curve, and TPR against the number of false "
                      "positives (AUROC, TPR0, TPR10)", _lens_roc(d["p"], d["labels"], t)),
            FigureOut("lens_rates", "lens", "TPR and TNR against threshold (seed 004)",
                      _lens_rates(d["p"], d["labels"], r["threshold"])),
            FigureOut("lens_confusion", "lens", f"Confusion matrix at p_lens >= "
                      f"{r['threshold']}", _lens_confusion(t["confusion"])),
        ]
    cands = d.get("candidates") or []
    if cands and images.reachable([c["source"] for c in cands]):
        out.append(FigureOut("lens_candidates", "lens", "Top lens candidates",
                             _lens_mosaic(cands, r, images)))
    return out


def _lens_hist(d: dict, r: dict) -> bytes:
    edges = np.linspace(0, 1, 41)
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    if d.get("labels") is not None:
        y = d["labels"]
        ax.hist(d["p"][y], edges, histtype="step", lw=1.5, color=TRUE_COLOUR,
                label=f"true lenses ({int(y.sum())})")
        ax.hist(d["p"][~y], edges, histtype="step", lw=1.5, color=PRED_COLOUR,
                label=f"true non-lenses ({int((~y).sum())})")
    else:
        ax.hist(d["p"], edges, histtype="step", lw=1.5, color=PRED_COLOUR,
                label=f"all cut-outs ({len(d['p'])})")
    ax.axvline(r["threshold"], color="k", ls=":", lw=1,
               label=f"threshold {r['threshold']} ({r['n_candidates']} candidates)")
    ax.set_xlabel("lens score p_lens")
    ax.set_ylabel("cut-outs per 0.025 in p_lens")
    ax.set_title("Lens scores")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def _lens_roc(p: np.ndarray, y: np.ndarray, t: dict) -> bytes:
    from astrocat.catalog import stats

    fpr, tpr, _ = stats.roc_curve(p, y)
    n_neg = t["n_nonlenses"]
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    a1.plot(fpr, tpr, color=PRED_COLOUR, label=f"model, AUROC = {t['auroc']:.3f}")
    a1.plot([0, 1], [0, 1], "--", color=BASE_COLOUR, label="chance (0.5)")
    a1.set_xlabel("false-positive rate (non-lenses above threshold)")
    a1.set_ylabel("true-positive rate (lenses above threshold)")
    a1.set_title(f"ROC curve ({t['n_lenses']} lenses, {n_neg} non-lenses)")
    a1.set_aspect("equal")
    a1.legend(loc="lower right")
    fp = np.rint(fpr * n_neg)
    a2.step(fp + 1, tpr, where="post", color=PRED_COLOUR)
    a2.set_xscale("log")
    a2.axvline(1, color="k", ls=":", lw=0.8)
    a2.axvline(10, color="k", ls="--", lw=0.8)
    a2.plot([1], [t["tpr0"]], "o", color=TRUE_COLOUR,
            label=f"TPR0 = {t['tpr0']:.3f} (before the first false positive)")
    a2.plot([10], [t["tpr10"]], "s", color=TRUE_COLOUR,
            label=f"TPR10 = {t['tpr10']:.3f} (fewer than 10 false positives)")
    a2.set_xlabel("false positives + 1 (log)")
    a2.set_ylabel("true-positive rate")
    a2.set_title("TPR against false positives (Metcalf et al. 2019)")
    a2.legend(loc="best")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    return _png(fig)


def _lens_rates(p: np.ndarray, y: np.ndarray, thr: float) -> bytes:
    from astrocat.catalog import stats

    t = np.linspace(0, 1, 201)
    tpr, tnr = stats.rates_by_threshold(p, y, t)
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, tpr, color=TRUE_COLOUR, label="TPR (lenses found)")
    ax.plot(t, tnr, color=PRED_COLOUR, label="TNR (non-lenses rejected)")
    ax.axvline(thr, color="k", ls=":", lw=1, label=f"threshold {thr}")
    ax.set_xlabel("threshold on p_lens")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("True-positive and true-negative rates against threshold")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    ax.grid(alpha=0.3)
    return _png(fig)


def _lens_confusion(c: dict) -> bytes:
    m = np.array([[c["tp"], c["fn"]], [c["fp"], c["tn"]]])
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    fig = Figure(figsize=(5.4, 4.4), layout="constrained")
    ax = fig.subplots()
    # coloured by the share of the true class, so that unbalanced classes read alike
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, f"{v}\n({100 * frac[i, j]:.1f}% of true class)", ha="center",
                va="center", color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks([0, 1], ["predicted lens", "predicted non-lens"])
    ax.set_yticks([0, 1], ["true lens", "true non-lens"])
    ax.set_title(f"Confusion matrix at p_lens >= {c['threshold']}\nTPR {c['tpr']:.3f}, "
                 f"TNR {c['tnr']:.3f}")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    return _png(fig)


def _lens_mosaic(cands: list[dict], r: dict, images: _Images) -> bytes:
    from PIL import Image

    def thumb(source: str) -> np.ndarray | None:
        plane = images.plane(source)
        if plane is None:
            return None
        im = Image.fromarray((255 * plane).astype(np.uint8))
        return np.asarray(im.resize((LENS_THUMB, LENS_THUMB), Image.Resampling.NEAREST))

    cands = cands[:12]
    mark = {True: " lens", False: " NOT lens", None: ""}
    flat = [(thumb(c["source"]), f"{c['object_id'].rsplit('-', 1)[-1]}  {c['score']:.3f}"
             f"{mark[c.get('is_lens')]}") for c in cands]
    return _mosaic([flat[i:i + 6] for i in range(0, len(flat), 6)],
                   f"Top {len(cands)} lens candidates by p_lens\n(ID, score, truth if known; "
                   "asinh stretch between the 1st and 99.5th percentile)", LENS_THUMB, font=8)


# --------------------------------------------------------------------------- cosmology


def _cosmology_figures(d: dict, r: dict) -> list[FigureOut]:
    return [FigureOut("cosmology_fields", "cosmology",
                      "Omega_m and sigma_8 per field" + (" against truth" if d.get("true")
                                                         is not None else ""),
                      _cosmo(d, r))]


def _cosmo(d: dict, r: dict) -> bytes:
    from astrocat.catalog.summary import PRIOR_CENTRE

    has_t = d.get("true") is not None
    fig = Figure(figsize=(15 if has_t else 5.6, 4.9), layout="constrained")
    axes = fig.subplots(1, 3 if has_t else 1, squeeze=False)[0]
    pred = d["pred_all"] if has_t else d["pred"]
    ax = axes[-1]
    ax.add_patch(_prior_box())
    ax.scatter(pred[:, 0], pred[:, 1], s=12, color=PRED_COLOUR, label="predicted")
    if has_t:
        ax.scatter(d["true"][:, 0], d["true"][:, 1], s=12, marker="x", color=TRUE_COLOUR,
                   label="true")
    ax.set_xlabel("Omega_m")
    ax.set_ylabel("sigma_8")
    ax.set_title(f"{len(pred)} fields in the Omega_m-sigma_8 plane")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8)
    if has_t:
        t = r["truth"]
        specs = (("omega_m", "Omega_m", (0.1, 0.5)), ("sigma_8", "sigma_8", (0.6, 1.0)))
        for j, (key, name, lim) in enumerate(specs):
            ax = axes[j]
            ax.scatter(d["true"][:, j], d["pred"][:, j], s=14, color=PRED_COLOUR,
                       label=f"model: RMSE {t[key]['rmse']:.4f}, bias {t[key]['bias']:+.4f}")
            ax.plot(lim, lim, "k--", lw=0.8, label="predicted = true")
            ax.axhline(PRIOR_CENTRE[key], color=BASE_COLOUR, lw=1,
                       label=f"prior centre {PRIOR_CENTRE[key]}: RMSE "
                             f"{t[key]['rmse_baseline']:.4f}")
            ax.set_xlabel(f"true {name}")
            ax.set_ylabel(f"predicted {name}")
            ax.set_title(f"{name}: {t['n_matched']} fields")
            ax.legend(fontsize=8, loc="upper left")
            ax.grid(alpha=0.3)
    return _png(fig)


def _prior_box():
    from matplotlib.patches import Rectangle

    return Rectangle((0.1, 0.6), 0.4, 0.4, fill=False, ls=":", ec="0.5",
                     label="Quijote LH prior")

