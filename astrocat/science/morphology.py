"""Galaxy Zoo 2 morphology (seeds 001 and 002), with the merger fraction.

Per answer: the mean vote fraction, confident galaxies, histograms, the label correlation
matrix; the merger fraction at a threshold with its Beta interval (Cameron 2011); with the
Kaggle ``training_solutions_rev1.csv`` joined on GalaxyID: RMSE against the
mean-prediction baseline, per-answer ROC AUC and the true merger fraction of the same
galaxies. The answers themselves come from the decision tree as data
(``astrocat/schemas/galaxy_zoo2.csv``).
"""

from __future__ import annotations

import math

import click
import numpy as np
import pyarrow as pa

from astrocat.kernels.gz_tree import galaxy_zoo2
from astrocat.science import stats, trust
from astrocat.science.base import (
    CompareContext,
    Context,
    Joined,
    TaskOption,
    Truth,
    TruthLayout,
    equals,
    values,
)
from astrocat.science.drawing import (
    PALETTE,
    THUMB,
    FigureOut,
    Images,
    mosaic,
    new_figure,
    png,
    reliability_figure,
    spread_axes,
)
from astrocat.science.render import (
    Section,
    Table,
    calibration_items,
    num,
    pct,
    uncertainty_items,
)
from astrocat.science.streaming import Moments, TopK

KEY = "morphology"
MERGER_COLUMN = "gz_odd_merger"  # Class8.6: already carries the factor Class6.1
MERGER_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MERGER_EXAMPLES = 9  # random mergers shown, as seed 001 Fig. 18
Q1 = ("gz_smooth", "gz_features_or_disk", "gz_star_or_artifact")
HIST_BINS = 20  # vote-fraction histograms per answer (seed 001's label histograms)
#: The seven labels seed 001 shows prototypes for (Figs. 14-17).
LABELS_OF_INTEREST = ("gz_smooth", "gz_star_or_artifact", "gz_edge_on_yes", "gz_odd_ring",
                      "gz_odd_lens_or_arc", "gz_arms_2", "gz_odd_merger")
#: Prototype pages: questions per page, so that each page stays about 12 rows tall.
PROTOTYPE_PAGES = ((1, 2, 3, 4, 5), (6, 7, 8), (9, 10, 11))
OPTIONS = (
    TaskOption("merger_threshold", 0.3, "Merger when gz_odd_merger (Class8.6, already x "
               "Class6.1) >= this.", click.FloatRange(0, 1)),
    TaskOption("vote_threshold", 0.5, "A galaxy confidently shows an answer when its vote "
               "fraction >= this; also what counts as positive in the truth for the ROC AUC.",
               click.FloatRange(0, 1)),
    TaskOption("confidence", 0.683, "Level of the merger-fraction interval.",
               click.FloatRange(0, 1, min_open=True, max_open=True)),
    TaskOption("prototypes", 5, "Prototype images per Galaxy Zoo answer (with "
               "--plots/--report).", click.IntRange(min=1, max=20), in_report=False),
)
#: Galaxy Zoo 2 (Kaggle "Galaxy Challenge"): ``training_solutions_rev1.csv`` with
#: ``GalaxyID, Class1.1 ... Class11.6``; joined on ``GalaxyID == object_id``.
TRUTH = TruthLayout(
    task=KEY, signature=frozenset({"GalaxyID", "Class1.1"}), id_column="GalaxyID",
    columns=tuple(galaxy_zoo2().kaggle_columns), id_pattern=r"^(?P<id>\d+)$",
    hint="GalaxyID,Class1.1,... for morphology", label="Galaxy Zoo", noun="galaxy",
    join="joined on GalaxyID == object_id")


#: How the vote fractions' reliability diagram is binned (said in the JSON and the report).
RELIABILITY_BINNING = ("predicted against true vote fraction, pooled over every answer "
                       "of every matched galaxy, binned by the predicted value")


class _Accumulator:
    """Running moments, confident counts and histograms of the 37 answers; every merger
    score (float32) of galaxies not left out as out-of-domain; prototype and
    merger-example top lists; predictions (and their TTA spreads and intervals) matched
    to truth."""

    def __init__(self, ctx: Context) -> None:
        tree = galaxy_zoo2()
        self.opts, self.truth, self.notes = ctx.options, ctx.truth, ctx.notes
        self.cols = [c for c in tree.catalog_columns if c in ctx.names]
        self.domain = trust.Domain(ctx)
        # TTA spreads and intervals matter only against truth (spread against |error|)
        tta = {end: [f"{c}_{end}" for c in self.cols] for end in ("std", "lo", "hi")}
        self.tta = {end: cs for end, cs in tta.items()
                    if self.cols and self.truth is not None and set(cs) <= ctx.names}
        if "std" not in self.tta:
            self.tta = {}
        self.views = trust.tta_views(ctx.provenance, KEY)
        self.nominal = trust.nominal_coverage(ctx.provenance, KEY)
        self.columns = ([*self.cols, *self.domain.columns,
                         *(c for cs in self.tta.values() for c in cs)] if self.cols else [])
        m = len(self.cols)
        self.moments = Moments(m)
        self.confident = np.zeros(m, np.int64)
        self.hist = np.zeros((m, HIST_BINS), np.int64)
        self.merger: list[np.ndarray] = []
        self.proto = self.proto_true = self.examples = None
        if ctx.images and m:
            self.proto = TopK(self.opts["prototypes"], m)
            self.examples = TopK(MERGER_EXAMPLES, 1)
            if self.truth is not None:
                self.proto_true = TopK(self.opts["prototypes"], m)
        self.t_idx = [tree.index(c) for c in self.cols]  # truth columns in Kaggle order
        self.rng = np.random.default_rng(ctx.seed)
        self.pred_matched: list[np.ndarray] = []
        self.truth_row: list[np.ndarray] = []
        self.keep_matched: list[np.ndarray] = []  # not left out as out-of-domain
        self.tta_matched: dict[str, list[np.ndarray]] = {end: [] for end in self.tta}
        self.n_without_truth = 0
        self.q1_wins: np.ndarray | None = None  # galaxies whose largest Q1 answer is each

    def update(self, batch: pa.RecordBatch, ok: np.ndarray) -> None:
        sel = np.flatnonzero(ok & equals(batch.column("kind"), "rgb_image"))
        if len(sel):
            v = np.column_stack([values(batch, c)[sel] for c in self.cols]).astype(np.float32)
            fin = np.isfinite(v).all(axis=1)
            self._fold(v[fin], sel[fin], batch)

    def _fold(self, v: np.ndarray, sel: np.ndarray, batch: pa.RecordBatch) -> None:
        """Fold one batch of galaxies (rows ``sel`` of the batch, values ``v``)."""
        opts, mtruth = self.opts, self.truth
        oid = batch.column("object_id")
        if not len(v):
            return
        keep = self.domain.keep(self.domain.flags(batch)[sel])  # for the merger fraction
        self.moments.update(v)
        q1 = [self.cols.index(c) for c in Q1 if c in self.cols]
        if q1:
            if self.q1_wins is None:
                self.q1_wins = np.zeros(len(q1), np.int64)
            self.q1_wins += np.bincount(np.argmax(v[:, q1], axis=1), minlength=len(q1))
        self.confident += (v >= opts["vote_threshold"]).sum(axis=0)
        bins = np.clip((v * HIST_BINS).astype(np.int64), 0, HIST_BINS - 1)  # uniform bins
        for j in range(v.shape[1]):
            self.hist[j] += np.bincount(bins[:, j], minlength=HIST_BINS)
        take = pa.array(sel)
        if MERGER_COLUMN in self.cols:
            mv = v[:, self.cols.index(MERGER_COLUMN)]
            self.merger.append(mv[keep])
            if self.examples is not None:
                # a seeded random sample of mergers, as seed 001 Fig. 18 ("nine random images")
                key = np.where((mv >= opts["merger_threshold"]) & keep,
                               self.rng.random(len(mv)), -np.inf)
                if np.isfinite(key).any():
                    self.examples.update(key[:, None], mv[:, None], oid.take(take),
                                          batch.column("source").take(take))
        if self.proto is not None:
            self.proto.update(v, v, oid.take(take), batch.column("source").take(take))
        if mtruth is not None:
            rows = mtruth.lookup(mtruth.keys(oid.take(take)))
            hit = rows >= 0
            self.n_without_truth += int((~hit).sum())
            if hit.any():
                self.pred_matched.append(v[hit])
                self.truth_row.append(rows[hit])
                self.keep_matched.append(keep[hit])
                for end, cs in self.tta.items():
                    self.tta_matched[end].append(np.column_stack(
                        [values(batch, c)[sel[hit]] for c in cs]).astype(np.float32))
                if self.proto_true is not None:
                    tv = mtruth.values[np.ix_(rows[hit], self.t_idx)]
                    t2 = pa.array(sel[hit])
                    self.proto_true.update(tv, tv, oid.take(t2), batch.column("source").take(t2))

    def finish(self) -> tuple[dict, dict] | None:
        if not self.moments.n:
            if self.truth is not None:
                self.truth.note_unused(self.notes, "no galaxies with Galaxy Zoo outputs")
            return None
        return _numbers(self)


def start(ctx: Context) -> _Accumulator:
    return _Accumulator(ctx)


def _label(col: str) -> str:
    tree = galaxy_zoo2()
    a = tree.answers[tree.index(col)]
    return f"{a.kaggle_column} {a.answer_text}"


def _answers_meta() -> dict[str, dict]:
    return {a.catalog_column: {"kaggle_column": a.kaggle_column, "question": a.question,
                               "question_text": a.question_text, "answer_text": a.answer_text}
            for a in galaxy_zoo2().answers}


def _numbers(g: _Accumulator) -> tuple[dict, dict]:
    opts, mtruth, notes = g.opts, g.truth, g.notes
    tree = galaxy_zoo2()
    cols, n = g.cols, g.moments.n
    mean = g.moments.mean
    meta = _answers_meta()
    q1 = [c for c in Q1 if c in cols]
    out: dict = {
        "n": n,
        "mean_vote_fraction": {c: float(mean[cols.index(c)]) for c in q1},
        "share_by_largest_q1_answer": {c: float(g.q1_wins[j] / n) for j, c in enumerate(q1)},
        "vote_threshold": opts["vote_threshold"],
        "answers": [{"column": c, **meta[c], "mean": float(mean[j]),
                     "n_confident": int(g.confident[j]), "share_confident": g.confident[j] / n}
                    for j, c in enumerate(cols)],
    }
    data: dict = {"columns": cols, "mean": mean, "hist": g.hist, "corr_pred": g.moments.corr(),
                  "proto": g.proto, "proto_true": g.proto_true, "examples": g.examples}
    merger = np.concatenate(g.merger) if g.merger else None
    matched = None
    if mtruth is not None and g.pred_matched:
        pred = np.concatenate(g.pred_matched)
        trows = np.concatenate(g.truth_row)
        keep = np.concatenate(g.keep_matched)
        tta = {end: np.concatenate(parts) for end, parts in g.tta_matched.items()}
        g.pred_matched, g.truth_row, g.tta_matched = [], [], {}  # the parts die here
        t_idx = [tree.index(c) for c in cols]
        tv = mtruth.values[np.ix_(trows, t_idx)]  # one copy, float32
        # the merger fraction's galaxies: those it left out as out-of-domain, left out here
        matched = (pred, tv) if keep.all() else (pred[keep], tv[keep]) if keep.any() else None
        out["truth"], tdata = _against_truth(pred, tv, cols, opts, mtruth, g.n_without_truth)
        if tta:
            out["truth"]["uncertainty"], data["uncertainty"] = _uncertainty(
                pred, tv, tta, cols, g.views, g.nominal)
        for row, extra in zip(out["answers"], tdata.pop("per_answer"), strict=True):
            row.update(extra)
        data.update(tdata)
    elif mtruth is not None:
        mtruth.note_unmatched(notes)
    out["correlation"] = {"columns": [meta[c]["kaggle_column"] for c in cols],
                          "predicted": _matrix(data["corr_pred"])}
    if "corr_true" in data:
        out["correlation"]["truth"] = _matrix(data["corr_true"])
    if merger is not None:
        out["merger"], data["merger"] = _merger(merger, matched, cols, opts)
        if (ood := g.domain.report()) is not None:
            out["merger"]["ood"] = ood
    return out, data


def _matrix(a: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 4) for x in row] for row in a]


def _against_truth(pred: np.ndarray, tv: np.ndarray, cols: list[str], opts: dict,
                   mtruth: Truth, n_without: int) -> tuple[dict, dict]:
    """RMSE (Kaggle's, over all answers) against the mean-prediction baseline; ROC AUC per
    answer with the truth binarised at the vote threshold (seed 002 Table I)."""
    n, m = pred.shape
    sq = np.zeros(m)
    tm = Moments(m)
    rel = stats.ReliabilityBins()
    for a in range(0, n, 65_536):  # chunks: no float64 copy of a million-row matrix
        p, t = pred[a:a + 65_536].astype(np.float64), tv[a:a + 65_536].astype(np.float64)
        sq += ((p - t) ** 2).sum(axis=0)
        tm.update(t)
        rel.update(p, t)
    reliability = rel.result()
    tmean = tm.mean
    base = np.clip(np.diag(tm.xx) / n - tmean ** 2, 0, None)  # MSE of predicting the mean
    zeros = np.diag(tm.xx) / n
    per = []
    aucs = np.full(m, np.nan)
    for j in range(m):
        pos = tv[:, j] >= opts["vote_threshold"]
        aucs[j] = stats.roc_auc(pred[:, j], pos)
        per.append({"truth_mean": float(tmean[j]), "rmse": math.sqrt(sq[j] / n),
                    "rmse_baseline": math.sqrt(base[j]), "auc": float(aucs[j]),
                    "n_positive": int(pos.sum())})
    good = np.isfinite(aucs)
    summary = {
        "file": str(mtruth.path), "n_matched": n, "n_catalog_without_truth": n_without,
        "n_truth_rows": len(mtruth.ids),
        "rmse": math.sqrt(sq.sum() / (n * m)),
        "rmse_baseline_mean": math.sqrt(base.sum() / m),
        "rmse_baseline_zeros": math.sqrt(zeros.sum() / m),
        "baseline_note": "predicting each answer's mean over the matched truth (seed 001's "
                         "'training mean' baseline, in-sample so slightly optimistic)",
        "auc_positive_rule": f"truth vote fraction >= {opts['vote_threshold']}",
        "auc_defined": int(good.sum()),
        "auc_median": float(np.median(aucs[good])) if good.any() else float("nan"),
        "auc_at_least_0_9": int((aucs[good] >= 0.9).sum()),
        "calibration": stats.calibration_report(reliability, RELIABILITY_BINNING),
    }
    return summary, {"per_answer": per, "corr_true": tm.corr(), "truth_mean": tmean,
                     "reliability": reliability,
                     "truth_hist": np.stack([np.histogram(tv[:, j], HIST_BINS, (0, 1))[0]
                                             for j in range(m)]),
                     "rmse": np.array([p["rmse"] for p in per]),
                     "rmse_baseline": np.array([p["rmse_baseline"] for p in per]), "auc": aucs}


def _uncertainty(pred: np.ndarray, tv: np.ndarray, tta: dict[str, np.ndarray],
                 cols: list[str], views: int | None, nominal: float) -> tuple[dict, dict]:
    """TTA spread against the actual error, pooled over every answer of every matched
    galaxy; with the intervals their coverage of the true vote fraction, pooled and per
    answer."""
    lo, hi = tta.get("lo"), tta.get("hi")
    out = {"views": views, "pooled_over": "every answer of every matched galaxy",
           **stats.uncertainty(pred, tv, tta["std"], lo, hi, nominal)}
    if lo is not None and hi is not None:
        out["coverage_per_answer"] = {c: stats.coverage(tv[:, j], lo[:, j], hi[:, j])
                                      for j, c in enumerate(cols)}
    return out, {"by_spread": out["by_spread"], "report": out, "columns": cols}


def _merger(m: np.ndarray, matched: tuple | None, cols: list[str],
            opts: dict) -> tuple[dict, dict]:
    """Merger fraction at the threshold with its Beta interval (Cameron 2011), and how it
    moves with the threshold; with truth, the true fraction of the same galaxies."""
    tree = galaxy_zoo2()
    thr = opts["merger_threshold"]

    def frac(values: np.ndarray, t: float) -> stats.Fraction:
        return stats.beta_fraction(int((values >= t).sum()), len(values), opts["confidence"])

    f = frac(m, thr)
    table_t = sorted(set(MERGER_THRESHOLDS) | {round(thr, 4)})
    jm = cols.index(MERGER_COLUMN)
    truth_m = matched[1][:, jm] if matched is not None else None
    rows = []
    for t in table_t:
        g = frac(m, t)
        row = {"threshold": t, "k": g.k, "value": g.value, "lower": g.lower, "upper": g.upper}
        if truth_m is not None:
            row["truth_k"] = int((truth_m >= t).sum())
            row["truth_value"] = row["truth_k"] / len(truth_m)
        rows.append(row)
    out = {
        "column": MERGER_COLUMN,
        "kaggle_column": tree.answers[tree.index(MERGER_COLUMN)].kaggle_column,
        "note": "Class8.6 already carries the factor Class6.1 (odd); it is not multiplied "
                "by Class6.1 again",
        "threshold": thr, "k": f.k, "n": f.n, "fraction": f.value,
        "lower": f.lower, "upper": f.upper, "confidence": f.confidence,
        "by_threshold": rows,
    }
    grid = np.round(np.arange(0.05, 0.951, 0.025), 4)
    data = {"grid": grid, "curve": [frac(m, t) for t in grid], "threshold": thr,
            "truth_curve": None}
    if truth_m is not None:
        pred_m = matched[0][:, jm]
        tf = stats.beta_fraction(int((truth_m >= thr).sum()), len(truth_m), opts["confidence"])
        pf = frac(pred_m, thr)
        out["truth"] = {
            "n": tf.n, "k": tf.k, "fraction": tf.value,
            "predicted_k_same_galaxies": pf.k, "predicted_fraction_same_galaxies": pf.value,
            "predicted_lower": pf.lower, "predicted_upper": pf.upper,
            "interval_contains_truth": bool(pf.lower <= tf.value <= pf.upper),
            "selection": stats.confusion(pred_m, truth_m >= thr, thr),
        }
        data["truth_curve"] = np.array([(truth_m >= t).mean() for t in grid])
    return out, data


def section(m: dict) -> Section:
    """The terminal/HTML section."""
    s = Section("morphology", f"Morphology: {m['n']} galaxies (Galaxy Zoo 2 answers)")
    q1 = ", ".join(f"{c.removeprefix('gz_')} {num(v, '.3f')}"
                   for c, v in m["mean_vote_fraction"].items())
    s.items.append(f"Question 1 mean vote fractions: {q1}")
    t = m.get("truth")
    if t:
        s.items.append(
            f"Against {t['file']} ({t['n_matched']} galaxies matched on GalaxyID, "
            f"{t['n_catalog_without_truth']} without truth): RMSE over all answers "
            f"{num(t['rmse'])} vs {num(t['rmse_baseline_mean'])} predicting the mean, "
            f"{num(t['rmse_baseline_zeros'])} predicting zeros (Kaggle all-zeros 0.2716, "
            f"winner 0.0749). ROC AUC ({t['auc_positive_rule']} is positive): median "
            f"{num(t['auc_median'], '.3f')}, {t['auc_at_least_0_9']} of {t['auc_defined']} "
            "answers >= 0.9.")
    names = [f"{a['kaggle_column']} {a['answer_text']}" for a in m["answers"]]
    s.items.append(Table(
        f"Per answer: mean vote fraction, galaxies with vote fraction >= {m['vote_threshold']}",
        ["answer", "mean", "confident", "share"],
        [[name, num(a["mean"], ".3f"), str(a["n_confident"]), pct(a["share_confident"], ".1f")]
         for name, a in zip(names, m["answers"], strict=True)]))
    if t:
        s.items.append(Table(
            "Per answer against truth (RMSE: model and predicting the mean; ROC AUC with "
            "the positives counted)",
            ["answer", "true mean", "RMSE", "baseline", "ROC AUC", "positives"],
            [[name, num(a.get("truth_mean"), ".3f"), num(a.get("rmse"), ".3f"),
              num(a.get("rmse_baseline"), ".3f"), num(a.get("auc"), ".3f"),
              str(a.get("n_positive", "-"))]
             for name, a in zip(names, m["answers"], strict=True)]))
        if c := t.get("calibration"):
            s.items += calibration_items(c, "vote fractions", "true fraction")
        if u := t.get("uncertainty"):
            s.items += uncertainty_items(u, "the vote fractions", "(answer, galaxy) pairs")
    if mg := m.get("merger"):
        s.items.append(
            f"Merger fraction ({mg['column']} = {mg['kaggle_column']} >= {mg['threshold']}; "
            f"Class8.6 already includes Class6.1): {num(mg['fraction'])} "
            f"({mg['k']}/{mg['n']}), {100 * mg['confidence']:.1f}% interval "
            f"[{num(mg['lower'])}, {num(mg['upper'])}] (Beta, Cameron 2011)")
        if line := trust.sentence(mg.get("ood"), ("galaxy", "galaxies"),
                                  "the merger fraction"):
            s.items.append(line)
        if mt := mg.get("truth"):
            verdict = "contains" if mt["interval_contains_truth"] else "does NOT contain"
            sel = mt["selection"]
            s.items.append(
                f"True merger fraction of the {mt['n']} matched galaxies: "
                f"{num(mt['fraction'])} ({mt['k']}); predicted on them "
                f"{num(mt['predicted_fraction_same_galaxies'])} "
                f"[{num(mt['predicted_lower'])}, {num(mt['predicted_upper'])}], which "
                f"{verdict} it. Merger selection: {sel['tp']} true, {sel['fp']} false "
                f"positives, {sel['fn']} missed.")
        hcols = ["threshold", "mergers", "fraction", "lower", "upper"]
        has_t = any("truth_k" in r for r in mg["by_threshold"])
        if has_t:
            hcols += ["true mergers", "true fraction"]
        rows = []
        for r in mg["by_threshold"]:
            row = [f"{r['threshold']:.2f}", str(r["k"]), num(r["value"]), num(r["lower"]),
                   num(r["upper"])]
            if has_t:
                row += [str(r["truth_k"]), num(r["truth_value"])]
            rows.append(row)
        s.items.append(Table("Merger fraction against threshold", hcols, rows))
    return s



# --------------------------------------------------------------------------- figures


def figures(d: dict, r: dict, images: Images) -> list[FigureOut]:
    """Seed 001's figures: answers, histograms, merger curve, truth metrics, correlation,
    prototype mosaics and merger examples (when the source images are reachable)."""
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
    if d.get("reliability") is not None:
        out.append(FigureOut(
            "morphology_reliability", "morphology", "Reliability of the vote fractions "
            "(pooled over answers) with the expected calibration error",
            reliability_figure(d["reliability"], "predicted vote fraction",
                               "mean true vote fraction",
                               "Vote fractions, pooled over every answer")))
    if d.get("uncertainty") is not None:
        out.append(FigureOut("morphology_uncertainty", "morphology",
                             "Test-time-augmentation spread against the actual error, and "
                             "interval coverage per answer", _uncertainty_figure(d)))
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
    fig = new_figure(figsize=(12, 0.26 * len(cols) + 1.6), layout="constrained")
    a1, a2 = fig.subplots(1, 2, sharey=True)
    h = 0.4 if has_t else 0.8
    a1.barh(y - (h / 2 if has_t else 0), d["mean"], h, color=PALETTE.pred, label="predicted")
    share = np.array([a["share_confident"] for a in r["answers"]])
    a2.barh(y - (h / 2 if has_t else 0), 100 * share, h, color=PALETTE.pred, label="predicted")
    if has_t:
        a1.barh(y + h / 2, d["truth_mean"], h, color=PALETTE.true, label="truth")
        t_share = np.array([a.get("n_positive", 0) for a in r["answers"]]) / r["truth"][
            "n_matched"]
        a2.barh(y + h / 2, 100 * t_share, h, color=PALETTE.true, label="truth")
        a1.legend(loc="lower right")
    a1.set_yticks(y, labels, fontsize=8)
    a1.invert_yaxis()
    a1.set_xlabel("mean weighted vote fraction")
    a2.set_xlabel(f"galaxies with vote fraction >= {r['vote_threshold']} (%)")
    a1.set_title(f"Mean vote fraction ({r['n']} galaxies)")
    a2.set_title("Share of confident galaxies")
    for ax in (a1, a2):
        ax.grid(axis="x", alpha=0.3)
    return png(fig)


def _histograms(d: dict) -> bytes:
    cols, hist = d["columns"], d["hist"]
    n_cols = 6
    n_rows = -(-len(cols) // n_cols)
    # fixed spacing: the constrained layout solver is slow with 37 axes
    fig = new_figure(figsize=(15, 2.0 * n_rows + 0.6))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, gridspec_kw={
        "left": 0.05, "right": 0.99, "bottom": 0.05, "top": 0.95, "hspace": 0.45,
        "wspace": 0.25})
    edges = np.linspace(0, 1, hist.shape[1] + 1)
    for j, ax in enumerate(axes.flat):
        if j >= len(cols):
            ax.set_visible(False)
            continue
        ax.stairs(hist[j], edges, color=PALETTE.pred, label="predicted")
        if "truth_hist" in d:
            ax.stairs(d["truth_hist"][j], edges, color=PALETTE.true, label="truth")
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
    return png(fig)


def _merger_curve(d: dict, r: dict) -> bytes:
    grid = d["grid"]
    f = np.array([c.value for c in d["curve"]])
    lo = np.array([c.lower for c in d["curve"]])
    hi = np.array([c.upper for c in d["curve"]])
    fig = new_figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    pct = f"{100 * r['confidence']:.1f}%"
    ax.fill_between(grid, 100 * lo, 100 * hi, color=PALETTE.pred, alpha=0.25,
                    label=f"{pct} Beta interval (Cameron 2011)")
    ax.plot(grid, 100 * f, color=PALETTE.pred, label=f"predicted ({r['n']} galaxies)")
    if d.get("truth_curve") is not None:
        ax.plot(grid, 100 * d["truth_curve"], "--", color=PALETTE.true,
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
    return png(fig)


def _truth_metrics(d: dict, r: dict) -> bytes:
    cols = d["columns"]
    labels = [_label(c) for c in cols]
    x = np.arange(len(cols))
    t = r["truth"]
    fig = new_figure(figsize=(14, 7.5), layout="constrained")
    a1, a2 = fig.subplots(2, 1, sharex=True)
    a1.bar(x - 0.2, d["rmse"], 0.4, color=PALETTE.pred, label=f"model (all: {t['rmse']:.4f})")
    a1.bar(x + 0.2, d["rmse_baseline"], 0.4, color=PALETTE.base,
           label=f"predicting the mean (all: {t['rmse_baseline_mean']:.4f})")
    a1.set_ylabel("RMSE (vote fraction)")
    a1.set_title(f"Per-answer RMSE against truth ({t['n_matched']} galaxies)")
    a1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    auc = d["auc"]
    ok = np.isfinite(auc)
    a2.bar(x[ok], auc[ok], 0.6, color=PALETTE.pred)
    for xi in x[~ok]:
        a2.text(xi, 0.52, "n/a", rotation=90, ha="center", va="bottom", fontsize=7,
                color="0.4")
    a2.axhline(0.9, color="k", ls=":", lw=0.8, label="AUC 0.9")
    a2.axhline(0.5, color=PALETTE.base, ls="--", lw=0.8, label="AUC 0.5 (chance)")
    a2.set_ylim(min(0.4, float(np.nanmin(auc, initial=1.0)) - 0.05), 1.0)
    a2.set_ylabel("ROC AUC")
    a2.set_title(f"Per-answer ROC AUC (positive: {t['auc_positive_rule']}; n/a: one class "
                 "empty) - seed 002 Table I")
    a2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    a2.set_xticks(x, labels, rotation=90, fontsize=8)
    for ax in (a1, a2):
        ax.grid(axis="y", alpha=0.3)
    return png(fig)


def _uncertainty_figure(d: dict) -> bytes:
    u = d["uncertainty"]["report"]
    cov = u.get("coverage_per_answer")
    fig = new_figure(figsize=(13 if cov else 6.4, 5.2), layout="constrained")
    axes = fig.subplots(1, 2 if cov else 1, squeeze=False, width_ratios=(1, 2) if cov
                        else None)[0]
    spread_axes(axes[0], u["by_spread"],
                f"model, Spearman {u['spearman_spread_abs_error']:.3f}")
    axes[0].set_title(f"|error| against TTA spread ({u['n']} answer x galaxy pairs)")
    if cov:
        cols = d["uncertainty"]["columns"]
        x = np.arange(len(cols))
        axes[1].bar(x, [100 * cov[c] for c in cols], 0.7, color=PALETTE.pred)
        nominal = 100 * (u.get("nominal_coverage") or 0.9)
        axes[1].axhline(nominal, color="k", ls="--", lw=0.8, label=f"nominal {nominal:.0f}%")
        axes[1].axhline(100 * u["coverage"], color=PALETTE.true, lw=1,
                        label=f"pooled {100 * u['coverage']:.1f}%")
        axes[1].set_xticks(x, [_label(c) for c in cols], rotation=90, fontsize=7)
        axes[1].set_ylabel("true vote fraction inside [_lo, _hi] (%)")
        axes[1].set_ylim(0, 115)
        axes[1].set_title("Interval coverage per answer")
        axes[1].legend(loc="upper right", ncol=2)
        axes[1].grid(axis="y", alpha=0.3)
    return png(fig)


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
    fig = new_figure(figsize=(8.5 * len(mats) + 1, 8.5), layout="constrained")
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
    return png(fig)


def _prototypes(tk: TopK, all_cols: list[str], cols, images: Images, what: str) -> bytes:
    cols = [c for c in cols if c in all_cols]
    tiles = [[(images.rgb(e["source"]), f"{e['object_id']}  {e['score']:.2f}")
              for e in tk.column(all_cols.index(c))] for c in cols]
    return mosaic(tiles, f"Top {tk.k} galaxies per answer by {what} vote fraction\n"
                   "(GalaxyID and value above each; central half of the image)", THUMB,
                   [_label(c).replace(" ", "\n", 1) for c in cols])


def _merger_examples(tk: TopK, r: dict, images: Images) -> bytes:
    entries = tk.column(0)
    side = max(1, int(np.ceil(np.sqrt(len(entries)))))
    tiles = [[(images.rgb(e["source"], 2 * THUMB), f"{e['object_id']}  merger {e['score']:.2f}")
              for e in entries[i:i + side]] for i in range(0, len(entries), side)]
    return mosaic(tiles or [[(None, "no galaxy above the threshold")]],
                   f"{len(entries)} random galaxies with {MERGER_COLUMN} >= {r['threshold']}\n"
                   f"({r['k']} of {r['n']} qualify; central half of the image)", 2 * THUMB,
                   font=8)


# --------------------------------------------------------------------------- comparison


class _Comparison:
    """Galaxies that became, or stopped being, mergers between two versions (of those
    neither version's merger fraction leaves out as out-of-domain)."""

    def __init__(self, ctx: CompareContext) -> None:
        here = MERGER_COLUMN in ctx.names_a and MERGER_COLUMN in ctx.names_b
        self.ctx = ctx
        self.columns = ([MERGER_COLUMN, "kind", "object_id", *trust.compare_columns(ctx)]
                        if here else [])
        self.threshold = ctx.options["merger_threshold"]
        self.confidence = ctx.options["confidence"]
        self.became, self.stopped = TopK(ctx.examples, 1), TopK(ctx.examples, 1)
        self.n_became = self.n_stopped = 0

    def update(self, j: Joined) -> None:
        both = (j.ok_in_both() & equals(j.column("b", "kind").fill_null(""), "rgb_image")
                & trust.joined_keep(j, "a", self.ctx) & trust.joined_keep(j, "b", self.ctx))
        ma, mb = j.a(MERGER_COLUMN), j.b(MERGER_COLUMN)
        with np.errstate(invalid="ignore"):
            ia, ib = both & (ma >= self.threshold), both & (mb >= self.threshold)
        oid = j.column("b", "object_id")
        for mask, top, score in ((ib & ~ia, self.became, mb), (ia & ~ib, self.stopped, ma)):
            sel = np.flatnonzero(mask)
            if len(sel):
                take = pa.array(sel)
                top.update(np.abs(mb - ma)[sel, None], score[sel, None], oid.take(take),
                           oid.take(take))
        self.n_became += int((ib & ~ia).sum())
        self.n_stopped += int((ia & ~ib).sum())

    def finish(self, a: dict | None, b: dict | None) -> dict | None:
        if not (a and b and "merger" in a and "merger" in b):
            return None
        fa, fb = a["merger"], b["merger"]
        p, same = stats.fractions_consistent(fa["k"], fa["n"], fb["k"], fb["n"])
        side = ("fraction", "lower", "upper", "k", "n")

        def one(f: dict) -> dict:
            out = {k: f[k] for k in side}
            if "ood" in f:
                out["ood_left_out"] = f["ood"]["left_out"]
            return out

        return {"threshold": self.threshold, "confidence": self.confidence,
                "merger_a": one(fa), "merger_b": one(fb),
                "difference": fb["fraction"] - fa["fraction"], "fisher_p": p,
                "consistent": same, "intervals_overlap": bool(
                    fa["lower"] <= fb["upper"] and fb["lower"] <= fa["upper"]),
                "became_mergers": self.n_became, "stopped_being_mergers": self.n_stopped,
                "examples_became": self.became.column(0),
                "examples_stopped": self.stopped.column(0)}


def compare(ctx: CompareContext) -> _Comparison:
    return _Comparison(ctx)


def compare_section(c: dict) -> Section:
    """The comparison's terminal/HTML section."""
    s = Section("morphology", "Morphology: merger fraction, A against B")
    pct_ = f"{100 * c['confidence']:.1f}%"
    sides = (("A", c["merger_a"]), ("B", c["merger_b"]))
    ood = any("ood_left_out" in m for _, m in sides)
    s.items.append(Table(
        f"Merger fraction ({MERGER_COLUMN} >= {c['threshold']}) with its {pct_} Beta interval",
        ["version", "mergers", "galaxies", "fraction", "lower", "upper"]
        + (["out-of-domain left out"] if ood else []),
        [[v, str(m["k"]), str(m["n"]), num(m["fraction"]), num(m["lower"]), num(m["upper"])]
         + ([str(m.get("ood_left_out", "-"))] if ood else []) for v, m in sides]))
    verdict = "consistent" if c["consistent"] else "NOT consistent"
    s.items.append(f"Change {num(c['difference'], '+.4f')}: {verdict} (Fisher exact p = "
                   f"{num(c['fisher_p'], '.3g')}; intervals "
                   f"{'overlap' if c['intervals_overlap'] else 'do not overlap'}). "
                   f"{c['became_mergers']} galaxies became mergers, "
                   f"{c['stopped_being_mergers']} stopped being mergers.")
    return s
