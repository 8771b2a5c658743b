"""Redshift from spectra (seed 003): bias table, sigma_NMAD, outlier fraction, figures.

Truth is a column of the catalog itself (a spectra table's carried ``z``, ``z_true`` or
``redshift``, or ``--truth-column``), not a separate file. Spectra flagged out-of-domain
are left out of the numbers against truth (the bias table and its summary metrics) unless
``--include-ood``; the z_pred distribution uses every spectrum.
"""

from __future__ import annotations

import click
import numpy as np
import pyarrow as pa

from astrocat.errors import AstrocatError
from astrocat.science import stats, trust
from astrocat.science.base import CompareContext, Context, Joined, TaskOption, equals, values
from astrocat.science.drawing import PALETTE, FigureOut, Images, new_figure, png
from astrocat.science.render import Section, Table, num, pct

KEY = "redshift"
TRUE_Z_COLUMNS = ("z", "z_true", "redshift")
OPTIONS = (
    TaskOption("truth_column", None, "True-redshift column [default: z, z_true or redshift "
               "if present].", click.STRING, in_report=False),
)
TRUTH = None  # the truth is a catalog column


class _Accumulator:
    """z_pred (and the true redshift, when the catalog carries one) of every ok spectrum,
    and whether each is flagged out-of-domain."""

    def __init__(self, ctx: Context) -> None:
        column = ctx.options["truth_column"]
        if column and column not in ctx.names:
            raise AstrocatError(f"--truth-column {column} is not in the catalog")
        self.truth = column or next((c for c in TRUE_Z_COLUMNS if c in ctx.names), None)
        present = "z_pred" in ctx.names
        self.domain = trust.Domain(ctx)
        self.columns = (["z_pred"] + ([self.truth] if self.truth else [])
                        + self.domain.columns) if present else []
        self.z_pred: list[np.ndarray] = []
        self.z_true: list[np.ndarray] = []
        self.flagged: list[np.ndarray] = []

    def update(self, batch: pa.RecordBatch, ok: np.ndarray) -> None:
        sel = ok & equals(batch.column("kind"), "spectrum")
        self.z_pred.append(values(batch, "z_pred")[sel].astype(np.float32))
        self.z_true.append(values(batch, self.truth)[sel].astype(np.float32) if self.truth
                           else np.full(int(sel.sum()), np.nan, np.float32))
        self.flagged.append(self.domain.flags(batch)[sel])

    def finish(self) -> tuple[dict, dict] | None:
        if not self.z_pred:
            return None
        zp, zt = np.concatenate(self.z_pred), np.concatenate(self.z_true)
        if not len(zp):
            return None
        flagged = np.concatenate(self.flagged)
        # the numbers against truth: of spectra with a true redshift, flagged ones left out
        use = np.isfinite(zt) & self.domain.keep(flagged & np.isfinite(zt))
        out, data = _numbers(zp, zt, self.truth, use)
        if "truth_column" in out and (ood := self.domain.report()) is not None:
            out["ood"] = ood
        return out, data


def start(ctx: Context) -> _Accumulator:
    return _Accumulator(ctx)


def _numbers(zp: np.ndarray, zt: np.ndarray, truth: str | None,
             use: np.ndarray | None = None) -> tuple[dict, dict]:
    """The distribution of every z_pred; against truth, of the spectra ``use`` marks (those
    with a true redshift, less any left out as out-of-domain)."""
    q = np.percentile(zp, [5, 16, 50, 84, 95])
    out: dict = {"n": len(zp), "z_pred_mean": float(np.mean(zp, dtype=np.float64)),
                 "z_pred_std": float(np.std(zp, dtype=np.float64)),
                 "z_pred_percentiles": dict(zip(["p5", "p16", "p50", "p84", "p95"],
                                                map(float, q), strict=True))}
    has = np.isfinite(zt) if use is None else use
    data: dict = {"z_pred": zp, "z_true": None}
    if truth and has.any():
        m = stats.redshift_metrics(zp[has], zt[has])
        out["truth_column"] = truth
        out["n_with_truth"] = int(has.sum())
        out["z_true_mean"] = float(np.mean(zt[has], dtype=np.float64))
        out["metrics"] = m.__dict__
        out["bias_table"] = stats.bias_table(zp[has], zt[has])
        data.update(z_pred=zp[has], z_true=zt[has], z_pred_all=zp, bias_table=out["bias_table"],
                    metrics=out["metrics"])
    elif truth and np.isfinite(zt).any():  # every spectrum with truth left out
        out["truth_column"] = truth
        out["n_with_truth"] = 0
    return out, data


def section(z: dict) -> Section:
    """The terminal/HTML section."""
    s = Section("redshift", f"Redshift: {z['n']} spectra")
    p = z["z_pred_percentiles"]
    s.items.append(f"z_pred mean {num(z['z_pred_mean'])}, std {num(z.get('z_pred_std'))}, "
                   f"median {num(p['p50'])}, 5-95% [{num(p['p5'])}, {num(p['p95'])}]")
    if "metrics" in z:
        m = z["metrics"]
        s.items.append(
            f"Against {z['truth_column']} ({z['n_with_truth']} spectra): dz = (z_pred - "
            f"z_true)/(1 + z_true); bias {num(m['bias'], '+.4f')} (median "
            f"{num(m['median_bias'], '+.4f')}), sigma_NMAD {num(m['sigma_nmad'])}, outlier "
            f"fraction eta (|dz| > 0.15) {pct(m['outlier_fraction'])}, MAE {num(m['mae'])}")
        if line := trust.sentence(z.get("ood"), ("spectrum", "spectra"),
                                  "the numbers against truth and the bias table"):
            s.items.append(line)
        s.items.append(Table(
            "Error per 0.05 bin of true redshift (seed 003 layout, error = z_pred - z_true)",
            ["z bin", "n", "% data", "mean error", "std error", "bias dz/(1+z)",
             "σ_NMAD", "eta", "MAE"],
            [[f"{r['z_lo']:.2f}-{r['z_hi']:.2f}", str(r["n"]), f"{r['percent']:.2f}",
              num(r["mean_error"], "+.4f"), num(r["std_error"]), num(r["bias"], "+.4f"),
              num(r["sigma_nmad"]), num(r["outlier_fraction"], ".3f"), num(r["mae"])]
             for r in z["bias_table"]]))
    elif "truth_column" in z:
        s.items.append(f"Every spectrum with a true redshift ({z['truth_column']}) is flagged "
                       "out-of-domain and left out of the numbers against truth "
                       "(--include-ood keeps them): distribution of z_pred only.")
    else:
        s.items.append("No true redshift column (--truth-column; z, z_true or redshift are "
                       "found automatically): distribution of z_pred only.")
    return s


# --------------------------------------------------------------------------- figures


def figures(d: dict, r: dict, images: Images) -> list[FigureOut]:
    """Seed 003's figures: distributions, predicted against true, error per bin."""
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
    fig = new_figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.hist(zp, edges, histtype="step", lw=1.5, color=PALETTE.pred,
            label=f"predicted z_pred (n={len(zp)})")
    if zt is not None:
        ax.hist(zt, edges, histtype="step", lw=1.5, color=PALETTE.true,
                label=f"true z (n={len(zt)})")
    ax.set_xlabel("redshift z")
    ax.set_ylabel("spectra per 0.01 in z")
    ax.set_title("Redshift distribution" + ("" if zt is None else ": predicted and true"))
    ax.legend()
    ax.grid(alpha=0.3)
    return png(fig)


def _z_2d(zp: np.ndarray, zt: np.ndarray, m: dict) -> bytes:
    edges = _z_edges(zp, zt)
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator

    fig = new_figure(figsize=(6.6, 5.6), layout="constrained")
    ax = fig.subplots()
    h, _, _, im = ax.hist2d(zt, zp, bins=[edges, edges], norm=LogNorm(), cmap="viridis")
    ax.plot(edges[[0, -1]], edges[[0, -1]], "--", color=PALETTE.true, lw=1,
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
    return png(fig)


def _z_bias(table: list[dict]) -> bytes:
    mid = np.array([(r["z_lo"] + r["z_hi"]) / 2 for r in table])
    mean = np.array([r["mean_error"] for r in table])
    sd = np.array([r["std_error"] for r in table])
    pct = np.array([r["percent"] for r in table])
    fig = new_figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ax2 = ax.twinx()
    ax2.bar(mid, pct, width=0.045, color="0.85", zorder=0, label="% of data")
    ax2.set_ylabel("% of data in bin", color="0.45")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    n = np.array([r["n"] for r in table])
    few = n < 10  # a bin of one or two spectra has no meaningful sigma: mark it open
    ax.errorbar(mid, mean, yerr=sd, fmt="-", color=PALETTE.pred, capsize=3,
                label="mean error +- standard deviation")
    ax.plot(mid[~few], mean[~few], "o", color=PALETTE.pred, zorder=3)
    if few.any():
        ax.plot(mid[few], mean[few], "o", mfc="white", mec=PALETTE.pred, zorder=3,
                label="bins with fewer than 10 spectra")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("true redshift z_true (0.05 bins)")
    ax.set_ylabel("error z_pred - z_true")
    ax.set_title("Redshift error per bin of true redshift")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower left")
    ax.grid(alpha=0.3)
    return png(fig)


# --------------------------------------------------------------------------- comparison

METRICS = ("bias", "sigma_nmad", "outlier_fraction", "mae")


class _Comparison:
    """Redshift numbers of two versions side by side (the rows' own changes are in the
    generic per-column part of the diff)."""

    columns: list[str] = []

    def update(self, j: Joined) -> None:
        """Never called: no columns."""

    def finish(self, a: dict | None, b: dict | None) -> dict | None:
        if not (a and b):
            return None
        out: dict = {"n_a": a["n"], "n_b": b["n"],
                     "z_pred_mean": {"a": a["z_pred_mean"], "b": b["z_pred_mean"]}}
        if "metrics" in a and "metrics" in b:
            out["truth_column"] = b.get("truth_column")
            out["metrics"] = {k: {"a": a["metrics"][k], "b": b["metrics"][k],
                                  "change": b["metrics"][k] - a["metrics"][k]}
                              for k in METRICS}
            if "ood" in a or "ood" in b:
                out["ood_left_out"] = {v: (x.get("ood") or {}).get("left_out")
                                       for v, x in (("a", a), ("b", b))}
        return out


def compare(ctx: CompareContext) -> _Comparison:
    return _Comparison()


def compare_section(c: dict) -> Section:
    """The comparison's terminal/HTML section."""
    s = Section("redshift", "Redshift, A against B")
    s.items.append(f"{c['n_a']} spectra in A, {c['n_b']} in B; mean z_pred "
                   f"{num(c['z_pred_mean']['a'])} -> {num(c['z_pred_mean']['b'])}")
    if "metrics" in c:
        names = {"bias": "bias dz/(1+z)", "sigma_nmad": "σ_NMAD",
                 "outlier_fraction": "eta (|dz| > 0.15)", "mae": "MAE"}
        s.items.append(Table(f"Against {c['truth_column']}", ["metric", "A", "B", "change"],
                             [[names[k], num(m["a"]), num(m["b"]), num(m["change"], "+.4f")]
                              for k, m in c["metrics"].items()]))
    if ood := c.get("ood_left_out"):
        s.items.append("Flagged out-of-domain spectra left out of the numbers against truth: "
                       f"{num(ood['a'], 'd')} in A, {num(ood['b'], 'd')} in B.")
    return s
