"""The terminal face of a summary: rich tables on stdout."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _f(x: float, fmt: str = ".4f") -> str:
    return format(x, fmt) if x == x else "-"


def render(report: dict, console: Console | None = None) -> None:
    c = console or Console()
    c.print(f"[bold]{report['catalog']}[/]: {report['rows']} rows, {report['ok']} ok, "
            f"[red]{report['errors']} errors[/]")
    t = Table(title="Rows by kind and status")
    t.add_column("kind")
    t.add_column("ok", justify="right")
    t.add_column("error", justify="right")
    for kind, by in report["by_kind"].items():
        t.add_row(kind, str(by.get("ok", 0)), str(by.get("error", 0)))
    c.print(t)
    if report["error_reasons"]:
        t = Table(title="Most common errors")
        t.add_column("rows", justify="right")
        t.add_column("reason")
        for reason, n in report["error_reasons"].items():
            t.add_row(str(n), reason)
        c.print(t)
    if m := report.get("morphology"):
        t = Table(title=f"Morphology ({m['n']} galaxies): Galaxy Zoo question 1")
        t.add_column("answer")
        t.add_column("mean vote fraction", justify="right")
        t.add_column("share (largest answer)", justify="right")
        for col, v in m["mean_vote_fraction"].items():
            t.add_row(col, _f(v), _f(m["share_by_largest_q1_answer"][col]))
        c.print(t)
        if mg := m.get("merger"):
            c.print(f"Merger fraction ({mg['column']} = {mg['kaggle_column']} >= "
                    f"{mg['threshold']}): [bold]{mg['fraction']:.4f}[/] "
                    f"({mg['k']}/{mg['n']}), {100 * mg['confidence']:.1f}% interval "
                    f"[{mg['lower']:.4f}, {mg['upper']:.4f}] (Beta, Cameron 2011)")
            t = Table(title="Merger fraction against threshold")
            for h in ("threshold", "mergers", "fraction", "lower", "upper"):
                t.add_column(h, justify="right")
            for r in mg["by_threshold"]:
                t.add_row(f"{r['threshold']:.1f}", str(r["k"]), _f(r["value"]), _f(r["lower"]),
                          _f(r["upper"]))
            c.print(t)
    if z := report.get("redshift"):
        p = z["z_pred_percentiles"]
        c.print(f"Redshift ({z['n']} spectra): mean z_pred {_f(z['z_pred_mean'])}, median "
                f"{_f(p['p50'])}, 5-95% [{_f(p['p5'])}, {_f(p['p95'])}]")
        if "metrics" in z:
            m = z["metrics"]
            c.print(f"Against {z['truth_column']}: MAE {_f(m['mae'])}, bias (dz/(1+z)) "
                    f"{_f(m['bias'], '+.4f')}, sigma_NMAD {_f(m['sigma_nmad'])}, "
                    f"outliers (|dz|/(1+z) > 0.15) {_f(100 * m['outlier_fraction'], '.2f')}%")
            t = Table(title="Bias per bin of true redshift (seed 003 layout)")
            for h in ("z bin", "n", "% data", "mean error", "std error", "bias dz/(1+z)",
                      "sigma_NMAD", "eta"):
                t.add_column(h, justify="right")
            for r in z["bias_table"]:
                t.add_row(f"{r['z_lo']:.2f}-{r['z_hi']:.2f}", str(r["n"]), f"{r['percent']:.2f}",
                          _f(r["mean_error"], "+.4f"), _f(r["std_error"]), _f(r["bias"], "+.4f"),
                          _f(r["sigma_nmad"]), _f(r["outlier_fraction"], ".3f"))
            c.print(t)
    if lens := report.get("lens"):
        c.print(f"Lens finding ({lens['n']} cut-outs): {lens['n_candidates']} candidates with "
                f"p_lens >= {lens['threshold']}")
        if lens["candidates"]:
            t = Table(title=f"Top {len(lens['candidates'])} lens candidates")
            t.add_column("object_id")
            t.add_column("p_lens", justify="right")
            for r in lens["candidates"]:
                t.add_row(r["object_id"], _f(r["p_lens"]))
            c.print(t)
    if cos := report.get("cosmology"):
        c.print(f"Cosmology ({cos['n']} fields): Omega_m {cos['omega_m_mean']:.4f} "
                f"+/- {cos['omega_m_std']:.4f} (scatter), sigma_8 {cos['sigma_8_mean']:.4f} "
                f"+/- {cos['sigma_8_std']:.4f}")
