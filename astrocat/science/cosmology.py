"""Cosmological parameters from density fields (seed 004's plan, CAMELS/Quijote-style):
Omega_m and sigma_8 per field, and with truth RMSE and bias against the prior's centre;
with test-time-augmentation columns too, how the spread tracks the error and how often
the intervals hold the truth.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from astrocat.science import stats, trust
from astrocat.science.base import (
    CompareContext,
    Context,
    Joined,
    TaskOption,
    Truth,
    TruthLayout,
    values,
)
from astrocat.science.drawing import PALETTE, FigureOut, Images, new_figure, png, spread_axes
from astrocat.science.render import Section, Table, num, uncertainty_items

KEY = "cosmology"
COLUMNS = ["omega_m_pred", "sigma_8_pred"]
PARAMS = (("omega_m", "Omega_m"), ("sigma_8", "sigma_8"))  # report keys, names
#: Centre of the Quijote Latin-hypercube prior (Omega_m in [0.1, 0.5], sigma_8 in
#: [0.6, 1.0]); predicting it is the trivial baseline (RMSE ~0.115, SCIENCE.md sec. 5).
PRIOR_CENTRE = {"omega_m": 0.3, "sigma_8": 0.8}
MAX_FIELDS_LISTED = 10_000  # per-field rows kept for the report; statistics use all
OPTIONS: tuple[TaskOption, ...] = ()
#: ``ID, omega_m, sigma_8``, joined on the trailing integer of ``field_<ID>``.
TRUTH = TruthLayout(
    task=KEY, signature=frozenset({"ID", "omega_m", "sigma_8"}), id_column="ID",
    columns=("omega_m", "sigma_8"), hint="ID,omega_m,sigma_8 for density fields",
    label="density field", noun="density field")


class _Accumulator:
    """(Omega_m, sigma_8) of every ok field (float32), truth keys, the first fields listed."""

    def __init__(self, ctx: Context) -> None:
        # TTA spreads and intervals matter only against truth (spread against |error|)
        tta = {end: [f"{c}_{end}" for c in COLUMNS] for end in ("std", "lo", "hi")}
        self.tta = {end: cs for end, cs in tta.items()
                    if ctx.truth is not None and set(cs) <= ctx.names}
        if "std" not in self.tta:
            self.tta = {}
        self.views = trust.tta_views(ctx.provenance, KEY)
        self.nominal = trust.nominal_coverage(ctx.provenance, KEY)
        self.columns = ([*COLUMNS, *(c for cs in self.tta.values() for c in cs)]
                        if set(COLUMNS) <= ctx.names else [])
        self.truth, self.notes = ctx.truth, ctx.notes
        self.pred: list[np.ndarray] = []
        self.spread: dict[str, list[np.ndarray]] = {end: [] for end in self.tta}
        self.keys: list[np.ndarray] = []
        self.fields: list[dict] = []

    def update(self, batch: pa.RecordBatch, ok: np.ndarray) -> None:
        oid = batch.column("object_id")
        om, s8 = values(batch, "omega_m_pred"), values(batch, "sigma_8_pred")
        sel = np.flatnonzero(ok & np.isfinite(om) & np.isfinite(s8))
        self.pred.append(np.column_stack([om[sel], s8[sel]]).astype(np.float32))
        for end, cs in self.tta.items():
            self.spread[end].append(np.column_stack([values(batch, c)[sel] for c in cs])
                                    .astype(np.float32))
        if self.truth is not None:
            self.keys.append(self.truth.keys(oid.take(pa.array(sel))))
        room = MAX_FIELDS_LISTED - len(self.fields)
        if room > 0 and len(sel):
            ids = oid.take(pa.array(sel[:room])).to_pylist()
            self.fields.extend({"object_id": i, "omega_m_pred": float(a), "sigma_8_pred": float(b)}
                               for i, a, b in zip(ids, om[sel[:room]], s8[sel[:room]],
                                                  strict=True))

    def finish(self) -> tuple[dict, dict] | None:
        if not self.pred:
            if self.truth is not None:
                self.truth.note_unused(self.notes, "no omega_m_pred/sigma_8_pred columns")
            return None
        c = np.concatenate(self.pred)
        keys = np.concatenate(self.keys) if self.truth is not None else None
        if not len(c):
            return None
        out, data = _numbers(c, keys, self.fields, self.truth, self.notes)
        if self.tta and "truth" in out:
            hit = data["hit"]
            tta = {end: np.concatenate(parts)[hit] for end, parts in self.spread.items()}
            out["truth"]["uncertainty"] = {
                key: {"views": self.views, **stats.uncertainty(
                    data["pred"][:, j], data["true"][:, j], tta["std"][:, j],
                    tta["lo"][:, j] if "lo" in tta else None,
                    tta["hi"][:, j] if "hi" in tta else None, self.nominal)}
                for j, (key, _) in enumerate(PARAMS)}
            data["uncertainty"] = out["truth"]["uncertainty"]
        return out, data


def start(ctx: Context) -> _Accumulator:
    return _Accumulator(ctx)


def _param_metrics(pred: np.ndarray, true: np.ndarray, centre: float) -> dict:
    err, berr = pred.astype(float) - true, centre - true.astype(float)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "bias": float(err.mean()),
            "baseline": centre, "rmse_baseline": float(np.sqrt(np.mean(berr ** 2))),
            "bias_baseline": float(berr.mean())}


def _numbers(c: np.ndarray, keys: np.ndarray | None, fields: list[dict],
             ctruth: Truth | None, notes: list[str]) -> tuple[dict, dict]:
    cf = c.astype(np.float64)
    out: dict = {
        "n": len(c),
        "omega_m_mean": float(cf[:, 0].mean()), "omega_m_std": float(cf[:, 0].std()),
        "sigma_8_mean": float(cf[:, 1].mean()), "sigma_8_std": float(cf[:, 1].std()),
        "fields": fields, "fields_listed": len(fields),
    }
    data: dict = {"pred": c, "true": None}
    rows = None if ctruth is None else ctruth.match(keys, notes)
    if rows is None:
        return out, data
    hit = rows >= 0
    true = ctruth.values[rows[hit]].astype(np.float64)
    pred = cf[hit]
    out["truth"] = {
        "file": str(ctruth.path), "n_matched": int(hit.sum()),
        "n_catalog_without_truth": int((~hit).sum()),
        "baseline_note": "predicting the centre of the Quijote Latin-hypercube prior",
        "omega_m": _param_metrics(pred[:, 0], true[:, 0], PRIOR_CENTRE["omega_m"]),
        "sigma_8": _param_metrics(pred[:, 1], true[:, 1], PRIOR_CENTRE["sigma_8"]),
    }
    fkeys = ctruth.keys(pa.array([f["object_id"] for f in fields], pa.string()))
    for f, r in zip(fields, ctruth.lookup(fkeys), strict=True):
        if r >= 0:
            f["omega_m_true"] = float(ctruth.values[r, 0])
            f["sigma_8_true"] = float(ctruth.values[r, 1])
    data.update(pred=c[hit], true=true, pred_all=c, hit=hit)
    return out, data


def section(c: dict, show: int = 20) -> Section:
    """The terminal/HTML section (the first ``show`` fields listed)."""
    s = Section("cosmology", f"Cosmology: {c['n']} density fields")
    s.items.append(f"Omega_m {c['omega_m_mean']:.4f} +/- {c['omega_m_std']:.4f} (scatter), "
                   f"sigma_8 {c['sigma_8_mean']:.4f} +/- {c['sigma_8_std']:.4f}")
    t = c.get("truth")
    if t:
        s.items.append(f"Against {t['file']} ({t['n_matched']} fields matched on ID); "
                       f"baseline: {t['baseline_note']}")
        s.items.append(Table("Parameters against truth", [
            "parameter", "RMSE", "bias", "baseline", "RMSE baseline", "bias baseline"], [
            [name, num(t[k]["rmse"]), num(t[k]["bias"], "+.4f"), num(t[k]["baseline"], ".2f"),
             num(t[k]["rmse_baseline"]), num(t[k]["bias_baseline"], "+.4f")]
            for k, name in PARAMS]))
        for k, name in PARAMS:
            if u := (t.get("uncertainty") or {}).get(k):
                s.items += uncertainty_items(u, name, "fields")
    fields = c.get("fields", [])
    if fields:
        has_t = "omega_m_true" in fields[0]
        cols = ["field", "Omega_m", "sigma_8"] + (["Omega_m true", "sigma_8 true"]
                                                  if has_t else [])
        more = f" (first {show} of {c['n']})" if c["n"] > show else ""
        s.items.append(Table(f"Per field{more}", cols, [
            [f["object_id"], num(f["omega_m_pred"]), num(f["sigma_8_pred"])]
            + ([num(f.get("omega_m_true")), num(f.get("sigma_8_true"))] if has_t else [])
            for f in fields[:show]]))
    return s


# --------------------------------------------------------------------------- figures


def figures(d: dict, r: dict, images: Images) -> list[FigureOut]:
    """Fields in the Omega_m-sigma_8 plane; with truth, predicted against true; with TTA
    columns and truth, the spread against the error."""
    out = [FigureOut("cosmology_fields", "cosmology",
                     "Omega_m and sigma_8 per field" + (" against truth" if d.get("true")
                                                        is not None else ""),
                     _cosmo(d, r))]
    if d.get("uncertainty"):
        out.append(FigureOut("cosmology_uncertainty", "cosmology", "Test-time-augmentation "
                             "spread against the actual error of Omega_m and sigma_8",
                             _uncertainty_figure(d["uncertainty"])))
    return out


def _uncertainty_figure(u: dict) -> bytes:
    fig = new_figure(figsize=(11, 4.8), layout="constrained")
    for ax, (key, name) in zip(fig.subplots(1, 2), PARAMS, strict=True):
        x = u[key]
        label = f"model, Spearman {num(x['spearman_spread_abs_error'], '.3f')}"
        if "coverage" in x:
            label += (f"; interval coverage {100 * x['coverage']:.0f}% (nominal "
                      f"{100 * (x.get('nominal_coverage') or 0.9):.0f}%)")
        spread_axes(ax, x["by_spread"], label)
        ax.set_title(f"{name}: |error| against TTA spread ({x['n']} fields)")
    return png(fig)


def _cosmo(d: dict, r: dict) -> bytes:
    has_t = d.get("true") is not None
    fig = new_figure(figsize=(15 if has_t else 5.6, 4.9), layout="constrained")
    axes = fig.subplots(1, 3 if has_t else 1, squeeze=False)[0]
    pred = d["pred_all"] if has_t else d["pred"]
    ax = axes[-1]
    ax.add_patch(_prior_box())
    ax.scatter(pred[:, 0], pred[:, 1], s=12, color=PALETTE.pred, label="predicted")
    if has_t:
        ax.scatter(d["true"][:, 0], d["true"][:, 1], s=12, marker="x", color=PALETTE.true,
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
            ax.scatter(d["true"][:, j], d["pred"][:, j], s=14, color=PALETTE.pred,
                       label=f"model: RMSE {t[key]['rmse']:.4f}, bias {t[key]['bias']:+.4f}")
            ax.plot(lim, lim, "k--", lw=0.8, label="predicted = true")
            ax.axhline(PRIOR_CENTRE[key], color=PALETTE.base, lw=1,
                       label=f"prior centre {PRIOR_CENTRE[key]}: RMSE "
                             f"{t[key]['rmse_baseline']:.4f}")
            ax.set_xlabel(f"true {name}")
            ax.set_ylabel(f"predicted {name}")
            ax.set_title(f"{name}: {t['n_matched']} fields")
            ax.legend(fontsize=8, loc="upper left")
            ax.grid(alpha=0.3)
    return png(fig)


def _prior_box():
    from matplotlib.patches import Rectangle

    return Rectangle((0.1, 0.6), 0.4, 0.4, fill=False, ls=":", ec="0.5",
                     label="Quijote LH prior")


# --------------------------------------------------------------------------- comparison


class _Comparison:
    """How far Omega_m and sigma_8 moved, field by field, between two versions."""

    def __init__(self, ctx: CompareContext) -> None:
        here = set(COLUMNS) <= ctx.names_a and set(COLUMNS) <= ctx.names_b
        self.columns = list(COLUMNS) if here else []
        self.n = 0
        self.sum = np.zeros(2)
        self.sumsq = np.zeros(2)
        self.max = np.zeros(2)

    def update(self, j: Joined) -> None:
        both = j.ok_in_both()
        d = np.column_stack([j.b(c) - j.a(c) for c in COLUMNS])[both].astype(np.float64)
        d = d[np.isfinite(d).all(axis=1)]
        self.n += len(d)
        self.sum += d.sum(axis=0)
        self.sumsq += (d ** 2).sum(axis=0)
        if len(d):
            self.max = np.maximum(self.max, np.abs(d).max(axis=0))

    def finish(self, a: dict | None, b: dict | None) -> dict | None:
        if not (a and b):
            return None
        n = max(self.n, 1)
        out: dict = {"n_fields_compared": self.n}
        for j, key in enumerate(("omega_m", "sigma_8")):
            out[key] = {"mean_a": a[f"{key}_mean"], "mean_b": b[f"{key}_mean"],
                        "mean_shift": self.sum[j] / n if self.n else float("nan"),
                        "rms_shift": float(np.sqrt(self.sumsq[j] / n)) if self.n
                        else float("nan"),
                        "max_abs_shift": float(self.max[j]) if self.n else float("nan")}
            if "truth" in a and "truth" in b:
                out[key]["rmse_a"] = a["truth"][key]["rmse"]
                out[key]["rmse_b"] = b["truth"][key]["rmse"]
        return out


def compare(ctx: CompareContext) -> _Comparison:
    return _Comparison(ctx)


def compare_section(c: dict) -> Section:
    """The comparison's terminal/HTML section."""
    s = Section("cosmology", "Cosmology, A against B")
    has_t = "rmse_a" in c["omega_m"]
    s.items.append(Table(
        f"Shifts B - A over {c['n_fields_compared']} fields ok in both",
        ["parameter", "mean A", "mean B", "mean shift", "rms shift", "max |shift|"]
        + (["RMSE A", "RMSE B"] if has_t else []),
        [[name, num(x["mean_a"]), num(x["mean_b"]), num(x["mean_shift"], "+.4f"),
          num(x["rms_shift"]), num(x["max_abs_shift"])]
         + ([num(x["rmse_a"]), num(x["rmse_b"])] if has_t else [])
         for name, x in (("Omega_m", c["omega_m"]), ("sigma_8", c["sigma_8"]))]))
    return s
