"""Trust per row in the science report: the out-of-domain flag, in one place.

Registered in ``TASKS`` like a task, first, so that its table precedes the sections that
use it. Its section is the share of ok rows flagged out-of-domain (``ood_flag``) per
model; its one option, ``--include-ood``, is shared by every task: by default flagged
rows are left out of the merger fraction (morphology), the lens candidates (lenses) and
the redshift bias table (redshift), each through a :class:`Domain`, and each of those
sections says how many it left out. Every other number uses every row. ``diff`` counts
the rows whose flag changed. Catalogs written before astrocat had the flag have no
``ood_flag`` column: every row is used and the report says so.

The test-time-augmentation (TTA) columns belong to the task whose outputs they spread;
:func:`tta_views` and :func:`nominal_coverage` read what the catalog's provenance says
about them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from astrocat.kernels import drift
from astrocat.science.base import CompareContext, Context, Joined, TaskOption, equals
from astrocat.science.drawing import FigureOut, Images
from astrocat.science.render import Section, Table, pct

KEY = "ood"
FLAG, DISTANCE = "ood_flag", "ood_distance"
OPTIONS = (
    TaskOption("include_ood", False, "Keep rows flagged out-of-domain (ood_flag) in the "
               "merger fraction, the lens candidates and the redshift bias table (left out "
               "by default).", switch=True),
)
TRUTH = None
#: What the flag is left out of, as the sections and the overview say it.
APPLIES_TO = "the merger fraction, the lens candidates and the redshift bias table"
NO_DRIFT = "not recorded (the catalog was written before astrocat recorded drift, 0.4)"
NO_FLAG = ("The catalog has no out-of-domain flag (no ood_flag column: it was written "
           "before astrocat had one), so every row is used.")
#: The interval of the TTA columns ``_lo``/``_hi`` when the provenance does not say.
NOMINAL_COVERAGE = 0.9


# --------------------------------------------------------------------------- for the tasks


class Domain:
    """A task's view of the flag: which rows its statistic keeps, and how many flagged
    rows it left out. Without an ``ood_flag`` column every row is kept and ``report()``
    is None (the section says nothing; the out-of-domain section says why)."""

    def __init__(self, ctx: Context) -> None:
        self.present = FLAG in ctx.names
        self.include = bool(ctx.options.get("include_ood", False))
        self.columns = [FLAG] if self.present else []
        self.flagged = 0
        self.left_out = 0

    def flags(self, batch: pa.RecordBatch) -> np.ndarray:
        """The batch's flags (all False without the column; a null is not flagged)."""
        if not self.present:
            return np.zeros(batch.num_rows, bool)
        return _bools(batch.column(FLAG))

    def keep(self, flagged: np.ndarray) -> np.ndarray:
        """Count ``flagged`` (one entry per row the statistic would use) and return
        which of those rows it keeps."""
        n = int(np.count_nonzero(flagged))
        self.flagged += n
        if self.include:
            return np.ones(len(flagged), bool)
        self.left_out += n
        return ~np.asarray(flagged, bool)

    def report(self) -> dict | None:
        """``{"flagged", "left_out"}`` for the task's JSON; None without the column."""
        return ({"flagged": self.flagged, "left_out": self.left_out} if self.present
                else None)


def sentence(d: dict | None, noun: tuple[str, str], statistic: str) -> str | None:
    """The line a section prints about its flagged rows (None without the flag).

    ``noun``: (singular, plural), e.g. ("galaxy", "galaxies")."""
    if d is None:
        return None
    n = d["flagged"]
    if n == 0:
        return f"No {noun[0]} is flagged out-of-domain (ood_flag) to leave out of {statistic}."
    what = f"{n} flagged out-of-domain {noun[0] if n == 1 else noun[1]}"
    if d["left_out"]:
        return f"{what} left out of {statistic} (--include-ood keeps them)."
    return f"{what} kept in {statistic} (--include-ood)."


def joined_keep(j: Joined, side: str, ctx: CompareContext) -> np.ndarray:
    """Rows of one side of a ``diff`` join its summary keeps (see ``Domain``)."""
    names = ctx.names_a if side == "a" else ctx.names_b
    if FLAG not in names or ctx.options.get("include_ood", False):
        return np.ones(j.batch.num_rows, bool)
    return ~_bools(j.column(side, FLAG))


def compare_columns(ctx: CompareContext) -> list[str]:
    """The flag, where either side has it (what ``joined_keep`` reads)."""
    return [FLAG] if FLAG in ctx.names_a or FLAG in ctx.names_b else []


def tta_views(provenance: dict, task: str) -> int | None:
    """The TTA views of the catalog's model(s) for ``task`` (provenance
    ``models[name]["tta"]``); None when none of them used TTA."""
    views = [int(m["tta"]) for m in (provenance.get("models") or {}).values()
             if isinstance(m, dict) and m.get("task") == task and m.get("tta")]
    return max(views) if views else None


def nominal_coverage(provenance: dict, task: str) -> float:
    """The coverage the ``_lo``/``_hi`` intervals were calibrated for: the provenance's
    ``interval_coverage`` where it records one, else 90 % (the catalog's contract)."""
    for m in (provenance.get("models") or {}).values():
        if isinstance(m, dict) and m.get("task") == task and m.get("interval_coverage"):
            return float(m["interval_coverage"])
    return NOMINAL_COVERAGE


def _bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool)


# --------------------------------------------------------------------------- the section


class _Accumulator:
    """Ok rows, flagged rows and rows never checked (NaN distance: the model has no
    reference statistics), per model."""

    def __init__(self, ctx: Context) -> None:
        self.present = FLAG in ctx.names
        self.distance = DISTANCE in ctx.names
        self.include = bool(ctx.options.get("include_ood", False))
        self.models = ctx.provenance.get("models") or {}
        self.columns = ([FLAG, *(c for c in ("model", DISTANCE) if c in ctx.names)]
                        if self.present else [])
        self.counts: dict[str, np.ndarray] = {}  # model -> [ok, flagged, not checked]
        self.sketches: dict[str, drift.Sketch] = {}  # model -> its rows' ood_distance

    def update(self, batch: pa.RecordBatch, ok: np.ndarray) -> None:
        if not ok.any():
            return
        take = pa.array(np.flatnonzero(ok))
        model = batch.column("model").take(take) if "model" in batch.schema.names else \
            pa.array([""] * len(take))
        flag = _bools(batch.column(FLAG).take(take))
        distance = (batch.column(DISTANCE).take(take).to_numpy(zero_copy_only=False)
                    .astype(np.float64) if self.distance else np.full(len(flag), np.nan))
        unchecked = ~np.isfinite(distance) if self.distance else np.zeros(len(flag), bool)
        for name in pc.unique(model).to_pylist():
            mine = equals(model, name)
            c = self.counts.setdefault(name, np.zeros(3, np.int64))
            c += [int(mine.sum()), int((flag & mine).sum()), int((unchecked & mine).sum())]
            if self.distance:
                self.sketches[name] = (self.sketches.get(name, drift.Sketch.empty())
                                       + drift.Sketch.of(distance[mine]))

    def finish(self) -> tuple[dict, dict]:
        if not self.present:
            return {"has_flag": False, "note": NO_FLAG}, {}
        models: dict[str, dict] = {}
        data: dict[str, dict] = {}  # model -> the sketches its drift figure draws
        for name, (n_ok, n_flag, n_un) in sorted(self.counts.items()):
            row: dict = {"ok": int(n_ok), "flagged": int(n_flag),
                         "share": n_flag / n_ok if n_ok else float("nan")}
            if self.distance:
                row["not_checked"] = int(n_un)
            prov = self.models.get(name) or {}
            if prov.get("ood_threshold") is not None:
                row["threshold"] = prov["ood_threshold"]
            if prov.get("tta"):
                row["tta_views"] = int(prov["tta"])
            if self.distance and name:
                row["drift"], drawn = _drift(prov, self.sketches.get(name, drift.Sketch.empty()))
                if drawn is not None:
                    data[name] = {**drawn, "threshold": prov.get("ood_threshold")}
            models[name or "(none)"] = row
        n_ok = sum(m["ok"] for m in models.values())
        n_flag = sum(m["flagged"] for m in models.values())
        return {"has_flag": True, "include_ood": self.include, "ok": n_ok, "flagged": n_flag,
                "share": n_flag / n_ok if n_ok else float("nan"), "models": models}, data


def _drift(prov: dict, sketch: drift.Sketch) -> tuple[dict, dict | None]:
    """A model's drift over the catalog's rows, against the reference its provenance
    recorded (and what the figure draws); a catalog written before astrocat recorded
    drift, or a model without a reference, says why there is none."""
    recorded = prov.get("drift")
    if not isinstance(recorded, dict):
        return {"verdict": None, "note": NO_DRIFT}, None
    if not isinstance(recorded.get("reference"), dict):  # untested when the run was made
        return drift.brief(recorded), None
    base = drift.Baseline.from_json(recorded["reference"])
    return {**drift.compare(sketch, base), "test": recorded.get("test", drift.TEST)}, {
        "run": sketch, "reference": base}


def start(ctx: Context) -> _Accumulator:
    return _Accumulator(ctx)


def section(r: dict) -> Section:
    """The terminal/HTML section."""
    if not r["has_flag"]:
        return Section("ood", "Out-of-domain flag: none in this catalog", [r["note"]])
    s = Section("ood", f"Out-of-domain flag: {r['flagged']} of {r['ok']} ok rows flagged")
    models = r["models"]
    checked = any("not_checked" in m for m in models.values())
    tta = any("tta_views" in m for m in models.values())
    s.items.append(Table(
        "Ok rows flagged out-of-domain (ood_flag: the input looks unlike the model's "
        "training inputs), per model",
        ["model", "ok rows", "flagged", "share"] + (["not checked"] if checked else [])
        + (["TTA views"] if tta else []),
        [[name, str(m["ok"]), str(m["flagged"]), pct(m["share"])]
         + ([str(m.get("not_checked", 0))] if checked else [])
         + ([str(m.get("tta_views", "-"))] if tta else [])
         for name, m in models.items()]))
    if checked and any(m.get("not_checked") for m in models.values()):
        s.items.append("Not checked: rows whose model has no reference statistics "
                       "(ood_distance NaN); they are never flagged.")
    drifts = {n: m["drift"] for n, m in models.items() if "drift" in m}
    if drifts:
        s.items.append(_drift_table(drifts))
    if r["include_ood"]:
        s.items.append(f"--include-ood: flagged rows are kept in {APPLIES_TO}, as everywhere "
                       "else.")
    else:
        s.items.append(f"Flagged rows are left out of {APPLIES_TO} (--include-ood keeps "
                       "them); every other number uses every row.")
    return s


def _drift_table(drifts: dict[str, dict]) -> Table | str:
    tested = {n: d for n, d in drifts.items() if d.get("verdict") not in (None, "untested")}
    notes = [f"{n}: {d.get('note') or d.get('reason') or 'untested: too few rows'}"
             for n, d in drifts.items() if n not in tested]
    if not tested:
        return "Drift of the inputs as a whole: " + "; ".join(notes) + "."
    return Table(
        "Drift: each model's distribution of ood_distance against its reference's held-out "
        "inputs (in domain: like them as a whole; shifted: significantly and clearly "
        "further; far: mostly beyond where they lie)" + (f". {'; '.join(notes)}." if notes
                                                         else ""),
        ["model", "verdict", "rows", "median ratio", "beyond their 95 %", "KS", "p"],
        [[n, d["verdict"].replace("_", " "), str(d["n"]), _x(d["median_ratio"]),
          pct(d["beyond_q95"]) if d["beyond_q95"] is not None else "-",
          _x(d["statistic"]), _p(d["p_value"])] for n, d in tested.items()])


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _p(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2g}" if v >= 1e-4 else "<1e-4")


def figures(d: dict, r: dict, images: Images) -> list[FigureOut]:
    """The run's distribution of ood_distance over its reference's, per model."""
    if not d:
        return []
    return [FigureOut("ood_drift", "ood", "Distribution of ood_distance: this catalog "
                      "against each model's reference (held-out inputs like its training "
                      "data)", _drift_figure(d, r))]


def _drift_figure(d: dict, r: dict) -> bytes:
    """Cumulative distributions (what the KS test compares), one panel per model."""
    from matplotlib.ticker import ScalarFormatter

    from astrocat.science.drawing import PALETTE, new_figure, png

    names = sorted(d)
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    fig = new_figure(figsize=(5.2 * cols, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes, names, strict=False):
        got = d[name]
        used = []
        for what, sketch, colour in (("reference (held out)", got["reference"].sketch,
                                      PALETTE.base), ("this catalog", got["run"], PALETTE.pred)):
            if not sketch.n:
                continue
            used += [sketch.quantile(0.001), sketch.quantile(0.999)]
            ax.step(drift.EDGES, sketch.below() / sketch.n, where="post", color=colour,
                    lw=1.5, label=f"{what}, n={sketch.n}")
        ax.axvline(got["reference"].q95, color=PALETTE.base, ls="--", lw=1,
                   label="reference's 95 % quantile")
        if got.get("threshold"):
            ax.axvline(got["threshold"], color=PALETTE.true, ls=":", lw=1,
                       label="flag threshold")
            used.append(got["threshold"] * 1.2)
        ax.set_xscale("log")
        if used:
            ax.set_xlim(min(used) / 1.1, max(used) * 1.1)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
        rec = r["models"].get(name, {}).get("drift", {})
        verdict = (rec.get("verdict") or "?").replace("_", " ")
        ax.set_title(f"{name}: {verdict}" + (f" (median x{rec['median_ratio']:.2f})"
                                             if rec.get("median_ratio") else ""), fontsize=10)
        ax.set_xlabel("ood_distance")
        ax.set_ylabel("share of rows below")
        ax.set_ylim(0, 1.01)
        ax.legend(fontsize=7, loc="lower right")
    return png(fig)


# --------------------------------------------------------------------------- comparison


class _Comparison:
    """Rows ok in both versions whose flag changed, both ways."""

    def __init__(self, ctx: CompareContext) -> None:
        self.in_a, self.in_b = FLAG in ctx.names_a, FLAG in ctx.names_b
        self.columns = [FLAG] if self.in_a and self.in_b else []
        self.examples = ctx.examples
        self.n = {"compared": 0, "became_flagged": 0, "no_longer_flagged": 0}
        self.ids: dict[str, list[str]] = {"became_flagged": [], "no_longer_flagged": []}

    def update(self, j: Joined) -> None:
        both = j.ok_in_both()
        fa, fb = _bools(j.column("a", FLAG)), _bools(j.column("b", FLAG))
        self.n["compared"] += int(both.sum())
        for what, mask in (("became_flagged", both & fb & ~fa),
                           ("no_longer_flagged", both & fa & ~fb)):
            self.n[what] += int(mask.sum())
            room = self.examples - len(self.ids[what])
            if room > 0 and mask.any():
                sel = pa.array(np.flatnonzero(mask)[:room])
                self.ids[what] += j.column("b", "object_id").take(sel).to_pylist()

    def finish(self, a: dict | None, b: dict | None) -> dict | None:
        if not (self.in_a or self.in_b):
            return None
        if not (self.in_a and self.in_b):
            return {"note": f"Only {'A' if self.in_a else 'B'} has an ood_flag column: flag "
                            "changes are not counted."}
        return {**self.n, "flagged_a": (a or {}).get("flagged"),
                "flagged_b": (b or {}).get("flagged"), "drift": _drift_pairs(a, b),
                "examples_became_flagged": self.ids["became_flagged"],
                "examples_no_longer_flagged": self.ids["no_longer_flagged"]}


def _drift_pairs(a: dict | None, b: dict | None) -> dict[str, dict]:
    """Per model in either version, its drift in A and in B (None: not there)."""
    ma, mb = (a or {}).get("models") or {}, (b or {}).get("models") or {}
    return {n: {"a": (ma.get(n) or {}).get("drift"), "b": (mb.get(n) or {}).get("drift")}
            for n in sorted(set(ma) | set(mb))
            if "drift" in (ma.get(n) or {}) or "drift" in (mb.get(n) or {})}


def compare(ctx: CompareContext) -> _Comparison:
    return _Comparison(ctx)


def compare_section(c: dict) -> Section:
    """The comparison's terminal/HTML section."""
    s = Section("ood", "Out-of-domain flag, A against B")
    if "note" in c:
        s.items.append(c["note"])
        return s
    s.items.append(
        f"Of {c['compared']} rows ok in both, {c['became_flagged']} became flagged "
        f"out-of-domain and {c['no_longer_flagged']} are no longer flagged; flagged ok rows: "
        f"{c['flagged_a']} in A, {c['flagged_b']} in B.")
    for key, what in (("examples_became_flagged", "Became flagged"),
                      ("examples_no_longer_flagged", "No longer flagged")):
        if c[key]:
            s.items.append(f"{what}: " + ", ".join(c[key]))
    if c.get("drift"):
        s.items.append(Table(
            "Drift from each model's reference, A against B (verdict; median ood_distance "
            "over the reference's)", ["model", "A", "B"],
            [[n, _verdict(p["a"]), _verdict(p["b"])] for n, p in c["drift"].items()]))
    return s


def _verdict(d: dict | None) -> str:
    if not d:
        return "-"
    if d.get("verdict") in (None, "untested"):
        return "not recorded" if d.get("verdict") is None else "untested"
    return f"{d['verdict'].replace('_', ' ')} ({_x(d.get('median_ratio'))}x)"
