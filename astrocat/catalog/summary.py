"""``astrocat summarize``: science numbers from a catalog, read in bounded memory.

The catalog is streamed in record batches with column projection. Per batch, only what a
statistic needs survives: running sums and moments (means, confident counts, histograms,
the label correlation matrix), a running top-k of prototype images and a seeded random
sample of mergers (a handful of strings), and small float32 arrays for statistics that
need every value (merger scores, z_pred/z_true, p_lens, Omega_m/sigma_8, and predictions of
galaxies that have truth). Nothing is ever turned into Python objects row by row, so a
1,000,000-row catalog stays far below 1 GB.

Definitions follow ../shared/SCIENCE.md; the statistics themselves live in ``stats``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from astrocat.catalog import stats
from astrocat.catalog import truth as truth_mod
from astrocat.errors import AstrocatError
from astrocat.kernels.gz_tree import galaxy_zoo2

TRUE_Z_COLUMNS = ("z", "z_true", "redshift")
MERGER_COLUMN = "gz_odd_merger"  # Class8.6: already carries the factor Class6.1
MERGER_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
LENS_RATE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(21))
#: Centre of the Quijote Latin-hypercube prior (Omega_m in [0.1, 0.5], sigma_8 in
#: [0.6, 1.0]); predicting it is the trivial baseline (RMSE ~0.115, SCIENCE.md sec. 5).
PRIOR_CENTRE = {"omega_m": 0.3, "sigma_8": 0.8}
Q1 = ("gz_smooth", "gz_features_or_disk", "gz_star_or_artifact")
HIST_BINS = 20  # vote-fraction histograms per answer (seed 001's label histograms)
MAX_FIELDS_LISTED = 10_000  # per-field rows kept for the report; statistics use all
#: The seven labels seed 001 shows prototypes for (Figs. 14-17).
LABELS_OF_INTEREST = ("gz_smooth", "gz_star_or_artifact", "gz_edge_on_yes", "gz_odd_ring",
                      "gz_odd_lens_or_arc", "gz_arms_2", "gz_odd_merger")


@dataclass
class SummaryOptions:
    merger_threshold: float = 0.3
    lens_threshold: float = 0.5
    truth_column: str | None = None
    top: int = 20
    confidence: float = 0.683
    vote_threshold: float = 0.5  # "confident" answer; also binarises truth for ROC AUC
    truth: tuple[str | Path, ...] = ()
    images: bool = False  # keep sources of prototype/merger images (for --plots/--report)
    prototypes: int = 5
    merger_examples: int = 9
    images_root: str | Path | None = None
    batch_size: int = 65_536
    seed: int = 0


# --------------------------------------------------------------------------- accumulators


class TopK:
    """The k rows with the largest key per column, with a score, object_id and source each.

    Merged batch by batch, so only k x columns strings are ever held. Used for prototype
    images (key = score = vote fraction) and for a seeded random sample (key = random).
    """

    def __init__(self, k: int, m: int) -> None:
        self.k, self.m = k, m
        self.key = np.full((0, m), -np.inf)
        self.score = np.zeros((0, m))
        self.oid = np.empty((0, m), dtype=object)
        self.src = np.empty((0, m), dtype=object)

    def update(self, key: np.ndarray, score: np.ndarray, oid: pa.Array, src: pa.Array) -> None:
        """key, score: (n, m); oid, src: the n rows' strings (Arrow, taken lazily)."""
        n = len(key)
        if n == 0 or self.k == 0:
            return
        key = np.where(np.isnan(key), -np.inf, key)
        kk = min(self.k, n)
        idx = np.argpartition(-key, kk - 1, axis=0)[:kk] if n > kk else np.tile(
            np.arange(n)[:, None], (1, self.m))
        rows = np.unique(idx)
        pos = np.searchsorted(rows, idx)
        take = pa.array(rows)
        oids = np.array(oid.take(take).to_pylist(), dtype=object)[pos]
        srcs = np.array(src.take(take).to_pylist(), dtype=object)[pos]
        allkey = np.vstack([self.key, np.take_along_axis(key, idx, 0)])
        allscore = np.vstack([self.score, np.take_along_axis(score, idx, 0)])
        alloid, allsrc = np.vstack([self.oid, oids]), np.vstack([self.src, srcs])
        order = np.argsort(-allkey, axis=0, kind="stable")[: self.k]
        self.key = np.take_along_axis(allkey, order, 0)
        self.score = np.take_along_axis(allscore, order, 0)
        self.oid = np.take_along_axis(alloid, order, 0)
        self.src = np.take_along_axis(allsrc, order, 0)

    def column(self, j: int) -> list[dict]:
        """Best first: [{object_id, source, score}] for column j (finite keys only)."""
        return [{"object_id": str(self.oid[i, j]), "source": str(self.src[i, j]),
                 "score": float(self.score[i, j])}
                for i in range(len(self.key)) if np.isfinite(self.key[i, j])]


class Moments:
    """Running n, sum and X^T X (float64), for means and the correlation matrix."""

    def __init__(self, m: int) -> None:
        self.n = 0
        self.s = np.zeros(m)
        self.xx = np.zeros((m, m))

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.n += len(x)
        self.s += x.sum(axis=0)
        # einsum's own loop, not BLAS: a multi-threaded BLAS on a busy machine (inference
        # or training beside us) spin-waits and made this 40x slower than one core.
        self.xx += np.einsum("ij,ik->jk", x, x)

    @property
    def mean(self) -> np.ndarray:
        return self.s / max(self.n, 1)

    def corr(self) -> np.ndarray:
        """Pearson correlation, seed 001 eq. (1); NaN for constant columns."""
        mu = self.mean
        cov = self.xx / max(self.n, 1) - np.outer(mu, mu)
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            c = cov / np.outer(sd, sd)
        c[~(np.outer(sd, sd) > 1e-12)] = np.nan
        return np.clip(c, -1, 1)


@dataclass
class _Morph:
    cols: list[str]
    moments: Moments
    confident: np.ndarray
    hist: np.ndarray
    merger: list = field(default_factory=list)
    proto: TopK | None = None
    proto_true: TopK | None = None
    examples: TopK | None = None
    pred_matched: list = field(default_factory=list)
    truth_row: list = field(default_factory=list)
    n_without_truth: int = 0
    q1_wins: np.ndarray | None = None  # galaxies whose largest Q1 answer is each answer


@dataclass
class Summary:
    """The report (every number, JSON-ready) and the arrays the figures are drawn from."""

    report: dict
    data: dict


# --------------------------------------------------------------------------- reading


def _columns(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise AstrocatError(f"{path} is not a readable Parquet catalog ({exc})") from exc


def provenance(schema: pa.Schema) -> dict:
    """The catalog's provenance record (empty if it has none)."""
    raw = (schema.metadata or {}).get(b"astrocat")
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def _np(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


def _mask(arr: pa.Array, value: str) -> np.ndarray:
    return pc.equal(arr, value).to_numpy(zero_copy_only=False).astype(bool)


def summarize(path: Path, opts: SummaryOptions | None = None) -> dict:
    """Every number of the science report (see ``collect`` for the figures' arrays too)."""
    return collect(path, opts).report


def collect(path: Path, opts: SummaryOptions | None = None) -> Summary:
    """One streaming pass over the catalog; returns the report and the figures' data."""
    opts = opts or SummaryOptions()
    path = Path(path)
    if not path.is_file():
        raise AstrocatError(f"no catalog at {path}")
    schema = _columns(path)
    names = set(schema.names)
    if not {"kind", "status"} <= names:
        raise AstrocatError(f"{path} is not an astrocat catalog (no kind/status columns)")
    truths = truth_mod.load_all(list(opts.truth))
    tree = galaxy_zoo2()
    gz_cols = [c for c in tree.catalog_columns if c in names]
    if opts.truth_column and opts.truth_column not in names:
        raise AstrocatError(f"--truth-column {opts.truth_column} is not in the catalog")
    ztrue = opts.truth_column or next((c for c in TRUE_Z_COLUMNS if c in names), None)
    has = {c: c in names for c in ("z_pred", "p_lens", "omega_m_pred", "sigma_8_pred")}
    want = ["kind", "status", "error", "object_id"] + gz_cols + [c for c, h in has.items() if h]
    if ztrue and has["z_pred"]:
        want.append(ztrue)
    if opts.images and "source" in names:
        want.append("source")
    mtruth = truths.get(truth_mod.MORPHOLOGY)
    ltruth = truths.get(truth_mod.LENS)
    ctruth = truths.get(truth_mod.COSMOLOGY)

    kinds: Counter = Counter()
    errors: Counter = Counter()
    morph = None
    if gz_cols:
        m = len(gz_cols)
        morph = _Morph(gz_cols, Moments(m), np.zeros(m, np.int64),
                       np.zeros((m, HIST_BINS), np.int64))
        if "source" in want:
            morph.proto = TopK(opts.prototypes, m)
            morph.examples = TopK(opts.merger_examples, 1)
            if mtruth is not None:
                morph.proto_true = TopK(opts.prototypes, m)
    t_idx = [tree.index(c) for c in gz_cols]  # truth columns in Kaggle order
    rng = np.random.default_rng(opts.seed)
    z_pred, z_true, p_lens, lens_keys, cosmo, cosmo_keys = [], [], [], [], [], []
    cands = TopK(opts.top, 1)
    n_cands = 0
    fields: list[dict] = []

    for batch in pq.ParquetFile(path).iter_batches(batch_size=opts.batch_size, columns=want):
        ks = pa.Table.from_batches([batch.select(["kind", "status"])]).group_by(
            ["kind", "status"]).aggregate([([], "count_all")])
        for k, s, n in zip(*(ks.column(i).to_pylist() for i in range(3)), strict=True):
            kinds[(k, s)] += n
        ok = _mask(batch.column("status"), "ok")
        if not ok.all():
            bad = pc.filter(batch.column("error"), pa.array(~ok))
            for msg, n in zip(*(pc.value_counts(bad).flatten()), strict=True):
                errors[str(msg).split(":")[0][:80]] += n.as_py()
        oid = batch.column("object_id")

        if morph is not None:
            sel = np.flatnonzero(ok & _mask(batch.column("kind"), "rgb_image"))
            if len(sel):
                v = np.column_stack([_np(batch, c)[sel] for c in gz_cols]).astype(np.float32)
                fin = np.isfinite(v).all(axis=1)
                sel, v = sel[fin], v[fin]
                _update_morph(morph, v, sel, batch, oid, opts, rng, mtruth, t_idx)

        if has["z_pred"]:
            sel = ok & _mask(batch.column("kind"), "spectrum")
            z_pred.append(_np(batch, "z_pred")[sel].astype(np.float32))
            z_true.append(_np(batch, ztrue)[sel].astype(np.float32) if ztrue and ztrue in want
                          else np.full(int(sel.sum()), np.nan, np.float32))

        if has["p_lens"]:
            p = _np(batch, "p_lens")
            sel = np.flatnonzero(ok & np.isfinite(p))
            p_lens.append(p[sel].astype(np.float32))
            if ltruth is not None:
                lens_keys.append(truth_mod.object_keys(oid.take(pa.array(sel)), truth_mod.LENS))
            above = sel[p[sel] >= opts.lens_threshold]
            n_cands += len(above)
            if len(above):
                take = pa.array(above)
                cands.update(p[above, None], p[above, None], oid.take(take),
                             batch.column("source").take(take) if "source" in want
                             else oid.take(take))

        if has["omega_m_pred"] and has["sigma_8_pred"]:
            om, s8 = _np(batch, "omega_m_pred"), _np(batch, "sigma_8_pred")
            sel = np.flatnonzero(ok & np.isfinite(om) & np.isfinite(s8))
            cosmo.append(np.column_stack([om[sel], s8[sel]]).astype(np.float32))
            if ctruth is not None:
                cosmo_keys.append(truth_mod.object_keys(oid.take(pa.array(sel)),
                                                        truth_mod.COSMOLOGY))
            room = MAX_FIELDS_LISTED - len(fields)
            if room > 0 and len(sel):
                ids = oid.take(pa.array(sel[:room])).to_pylist()
                fields.extend({"object_id": i, "omega_m_pred": float(a), "sigma_8_pred": float(b)}
                              for i, a, b in zip(ids, om[sel[:room]], s8[sel[:room]],
                                                 strict=True))

    report, data = _base_report(path, kinds, errors, opts, truths)
    notes: list[str] = report["notes"]
    if morph is not None and morph.moments.n:
        report["morphology"], data["morphology"] = _morphology(morph, opts, mtruth, notes)
    elif mtruth is not None:
        notes.append(f"morphology truth {mtruth.path} given but the catalog has no galaxies "
                     "with Galaxy Zoo outputs")
    if z_pred:
        zp, zt = np.concatenate(z_pred), np.concatenate(z_true)
        if len(zp):
            report["redshift"], data["redshift"] = _redshift(zp, zt, ztrue)
    if p_lens:
        p = np.concatenate(p_lens)
        keys = np.concatenate(lens_keys) if ltruth is not None else None
        report["lens"], data["lens"] = _lens(p, keys, cands, n_cands, opts, ltruth, notes)
    elif ltruth is not None:
        notes.append(f"lens truth {ltruth.path} given but the catalog has no p_lens column")
    if cosmo:
        c = np.concatenate(cosmo)
        keys = np.concatenate(cosmo_keys) if ctruth is not None else None
        if len(c):
            report["cosmology"], data["cosmology"] = _cosmology(c, keys, fields, ctruth, notes)
    elif ctruth is not None:
        notes.append(f"cosmology truth {ctruth.path} given but the catalog has no "
                     "omega_m_pred/sigma_8_pred columns")
    data["images_root"] = _images_root(schema, opts)
    return Summary(report, data)


def _update_morph(morph: _Morph, v: np.ndarray, sel: np.ndarray, batch: pa.RecordBatch,
                  oid: pa.Array, opts: SummaryOptions, rng: np.random.Generator,
                  mtruth: truth_mod.Truth | None, t_idx: list[int]) -> None:
    """Fold one batch of galaxies (rows ``sel`` of the batch, values ``v``) into ``morph``."""
    if not len(v):
        return
    morph.moments.update(v)
    q1 = [morph.cols.index(c) for c in Q1 if c in morph.cols]
    if q1:
        if morph.q1_wins is None:
            morph.q1_wins = np.zeros(len(q1), np.int64)
        morph.q1_wins += np.bincount(np.argmax(v[:, q1], axis=1), minlength=len(q1))
    morph.confident += (v >= opts.vote_threshold).sum(axis=0)
    bins = np.clip((v * HIST_BINS).astype(np.int64), 0, HIST_BINS - 1)  # uniform bins
    for j in range(v.shape[1]):
        morph.hist[j] += np.bincount(bins[:, j], minlength=HIST_BINS)
    take = pa.array(sel)
    if MERGER_COLUMN in morph.cols:
        mv = v[:, morph.cols.index(MERGER_COLUMN)]
        morph.merger.append(mv.copy())
        if morph.examples is not None:
            # a seeded random sample of mergers, as seed 001 Fig. 18 ("nine random images")
            key = np.where(mv >= opts.merger_threshold, rng.random(len(mv)), -np.inf)
            if np.isfinite(key).any():
                morph.examples.update(key[:, None], mv[:, None], oid.take(take),
                                      batch.column("source").take(take))
    if morph.proto is not None:
        morph.proto.update(v, v, oid.take(take), batch.column("source").take(take))
    if mtruth is not None:
        rows = mtruth.lookup(truth_mod.object_keys(oid.take(take), truth_mod.MORPHOLOGY))
        hit = rows >= 0
        morph.n_without_truth += int((~hit).sum())
        if hit.any():
            morph.pred_matched.append(v[hit])
            morph.truth_row.append(rows[hit])
            if morph.proto_true is not None:
                tv = mtruth.values[np.ix_(rows[hit], t_idx)]
                t2 = pa.array(sel[hit])
                morph.proto_true.update(tv, tv, oid.take(t2), batch.column("source").take(t2))


def _images_root(schema: pa.Schema, opts: SummaryOptions) -> str | None:
    if opts.images_root is not None:
        return str(opts.images_root)
    return provenance(schema).get("input_root")


# --------------------------------------------------------------------------- sections


def _base_report(path: Path, kinds: Counter, errors: Counter, opts: SummaryOptions,
                 truths: dict) -> tuple[dict, dict]:
    counts: dict[str, dict[str, int]] = {}
    for (kind, status), n in sorted(kinds.items()):
        counts.setdefault(kind or "unrecognised", {})[status] = n
    total = sum(kinds.values())
    n_err = sum(n for (_, s), n in kinds.items() if s == "error")
    report: dict = {
        "catalog": str(path), "rows": total, "ok": total - n_err, "errors": n_err,
        "by_kind": counts, "error_reasons": dict(errors.most_common(10)),
        "options": {"merger_threshold": opts.merger_threshold,
                    "lens_threshold": opts.lens_threshold, "vote_threshold": opts.vote_threshold,
                    "confidence": opts.confidence, "top": opts.top},
        "truth_files": {task: str(t.path) for task, t in truths.items()},
        "notes": [f"{t.path}: {t.n_duplicates} duplicate IDs (first kept)"
                  for t in truths.values() if t.n_duplicates],
    }
    return report, {}


def _answers_meta() -> dict[str, dict]:
    return {a.catalog_column: {"kaggle_column": a.kaggle_column, "question": a.question,
                               "question_text": a.question_text, "answer_text": a.answer_text}
            for a in galaxy_zoo2().answers}


def _morphology(g: _Morph, opts: SummaryOptions, mtruth: truth_mod.Truth | None,
                notes: list[str]) -> tuple[dict, dict]:
    tree = galaxy_zoo2()
    cols, n = g.cols, g.moments.n
    mean = g.moments.mean
    meta = _answers_meta()
    q1 = [c for c in Q1 if c in cols]
    out: dict = {
        "n": n,
        "mean_vote_fraction": {c: float(mean[cols.index(c)]) for c in q1},
        "share_by_largest_q1_answer": {c: float(g.q1_wins[j] / n) for j, c in enumerate(q1)},
        "vote_threshold": opts.vote_threshold,
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
        g.pred_matched, g.truth_row = [], []  # the parts die here, not at return
        t_idx = [tree.index(c) for c in cols]
        tv = mtruth.values[np.ix_(trows, t_idx)]  # one copy, float32
        matched = (pred, tv)
        out["truth"], tdata = _morph_truth(pred, tv, cols, opts, mtruth, g.n_without_truth)
        for row, extra in zip(out["answers"], tdata.pop("per_answer"), strict=True):
            row.update(extra)
        data.update(tdata)
    elif mtruth is not None:
        notes.append(f"no galaxy in the catalog has an entry in {mtruth.path} "
                     "(joined on GalaxyID == object_id)")
    out["correlation"] = {"columns": [meta[c]["kaggle_column"] for c in cols],
                          "predicted": _matrix(data["corr_pred"])}
    if "corr_true" in data:
        out["correlation"]["truth"] = _matrix(data["corr_true"])
    if merger is not None:
        out["merger"], data["merger"] = _merger(merger, matched, cols, opts)
    return out, data


def _matrix(a: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 4) for x in row] for row in a]


def _morph_truth(pred: np.ndarray, tv: np.ndarray, cols: list[str], opts: SummaryOptions,
                 mtruth: truth_mod.Truth, n_without: int) -> tuple[dict, dict]:
    """RMSE (Kaggle's, over all answers) against the mean-prediction baseline; ROC AUC per
    answer with the truth binarised at the vote threshold (seed 002 Table I)."""
    n, m = pred.shape
    sq = np.zeros(m)
    tm = Moments(m)
    for a in range(0, n, 65_536):  # chunks: no float64 copy of a million-row matrix
        p, t = pred[a:a + 65_536].astype(np.float64), tv[a:a + 65_536].astype(np.float64)
        sq += ((p - t) ** 2).sum(axis=0)
        tm.update(t)
    tmean = tm.mean
    base = np.clip(np.diag(tm.xx) / n - tmean ** 2, 0, None)  # MSE of predicting the mean
    zeros = np.diag(tm.xx) / n
    per = []
    aucs = np.full(m, np.nan)
    for j in range(m):
        pos = tv[:, j] >= opts.vote_threshold
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
        "auc_positive_rule": f"truth vote fraction >= {opts.vote_threshold}",
        "auc_defined": int(good.sum()),
        "auc_median": float(np.median(aucs[good])) if good.any() else float("nan"),
        "auc_at_least_0_9": int((aucs[good] >= 0.9).sum()),
    }
    return summary, {"per_answer": per, "corr_true": tm.corr(), "truth_mean": tmean,
                     "truth_hist": np.stack([np.histogram(tv[:, j], HIST_BINS, (0, 1))[0]
                                             for j in range(m)]),
                     "rmse": np.array([p["rmse"] for p in per]),
                     "rmse_baseline": np.array([p["rmse_baseline"] for p in per]), "auc": aucs}


def _merger(m: np.ndarray, matched: tuple | None, cols: list[str],
            opts: SummaryOptions) -> tuple[dict, dict]:
    """Merger fraction at the threshold with its Beta interval (Cameron 2011), and how it
    moves with the threshold; with truth, the true fraction of the same galaxies."""
    tree = galaxy_zoo2()
    thr = opts.merger_threshold

    def frac(values: np.ndarray, t: float) -> stats.Fraction:
        return stats.beta_fraction(int((values >= t).sum()), len(values), opts.confidence)

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
        tf = stats.beta_fraction(int((truth_m >= thr).sum()), len(truth_m), opts.confidence)
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


def _redshift(zp: np.ndarray, zt: np.ndarray, truth: str | None) -> tuple[dict, dict]:
    q = np.percentile(zp, [5, 16, 50, 84, 95])
    out: dict = {"n": len(zp), "z_pred_mean": float(np.mean(zp, dtype=np.float64)),
                 "z_pred_std": float(np.std(zp, dtype=np.float64)),
                 "z_pred_percentiles": dict(zip(["p5", "p16", "p50", "p84", "p95"],
                                                map(float, q), strict=True))}
    has = np.isfinite(zt)
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
    return out, data


def _lens(p: np.ndarray, keys: np.ndarray | None, cands: TopK, n_cands: int,
          opts: SummaryOptions, ltruth: truth_mod.Truth | None,
          notes: list[str]) -> tuple[dict, dict]:
    cand = [{"object_id": c["object_id"], "p_lens": c["score"]} for c in cands.column(0)]
    out: dict = {"n": len(p), "threshold": opts.lens_threshold, "n_candidates": n_cands,
                 "candidates": cand,
                 "p_lens_percentiles": dict(zip(["p5", "p50", "p95"],
                                                map(float, np.percentile(p, [5, 50, 95]))
                                                if len(p) else [math.nan] * 3, strict=True))}
    data: dict = {"p": p, "labels": None, "threshold": opts.lens_threshold,
                  "candidates": cands.column(0)}
    if ltruth is None:
        return out, data
    rows = ltruth.lookup(keys)
    hit = rows >= 0
    if not hit.any():
        notes.append(f"no lens cut-out in the catalog has an entry in {ltruth.path} "
                     "(joined on the trailing integer of object_id)")
        return out, data
    s, y = p[hit], ltruth.column("is_lens")[rows[hit]] > 0.5
    lm = stats.lens_metrics(s, y)
    lookup = ltruth.lookup(truth_mod.object_keys(pa.array([c["object_id"] for c in cand],
                                                          pa.string()), truth_mod.LENS))
    for c, d, r in zip(cand, data["candidates"], lookup, strict=True):
        c["is_lens"] = d["is_lens"] = None if r < 0 else bool(ltruth.column("is_lens")[r] > 0.5)
    tpr, tnr = stats.rates_by_threshold(s, y, np.array(LENS_RATE_THRESHOLDS))
    out["truth"] = {
        "file": str(ltruth.path), "n_matched": int(hit.sum()),
        "n_catalog_without_truth": int((~hit).sum()),
        "n_lenses": lm.n_lenses, "n_nonlenses": lm.n_nonlenses,
        "auroc": lm.auroc, "tpr0": lm.tpr0, "tpr10": lm.tpr10,
        "confusion": stats.confusion(s, y, opts.lens_threshold),
        "rates_by_threshold": [{"threshold": t, "tpr": float(a), "tnr": float(b)}
                               for t, a, b in zip(LENS_RATE_THRESHOLDS, tpr, tnr, strict=True)],
    }
    data.update(p=s, p_all=p, labels=y, metrics=out["truth"])
    return out, data


def _param_metrics(pred: np.ndarray, true: np.ndarray, centre: float) -> dict:
    err, berr = pred.astype(float) - true, centre - true.astype(float)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "bias": float(err.mean()),
            "baseline": centre, "rmse_baseline": float(np.sqrt(np.mean(berr ** 2))),
            "bias_baseline": float(berr.mean())}


def _cosmology(c: np.ndarray, keys: np.ndarray | None, fields: list[dict],
               ctruth: truth_mod.Truth | None, notes: list[str]) -> tuple[dict, dict]:
    cf = c.astype(np.float64)
    out: dict = {
        "n": len(c),
        "omega_m_mean": float(cf[:, 0].mean()), "omega_m_std": float(cf[:, 0].std()),
        "sigma_8_mean": float(cf[:, 1].mean()), "sigma_8_std": float(cf[:, 1].std()),
        "fields": fields, "fields_listed": len(fields),
    }
    data: dict = {"pred": c, "true": None}
    if ctruth is None:
        return out, data
    rows = ctruth.lookup(keys)
    hit = rows >= 0
    if not hit.any():
        notes.append(f"no density field in the catalog has an entry in {ctruth.path} "
                     "(joined on the trailing integer of object_id)")
        return out, data
    true = ctruth.values[rows[hit]].astype(np.float64)
    pred = cf[hit]
    out["truth"] = {
        "file": str(ctruth.path), "n_matched": int(hit.sum()),
        "n_catalog_without_truth": int((~hit).sum()),
        "baseline_note": "predicting the centre of the Quijote Latin-hypercube prior",
        "omega_m": _param_metrics(pred[:, 0], true[:, 0], PRIOR_CENTRE["omega_m"]),
        "sigma_8": _param_metrics(pred[:, 1], true[:, 1], PRIOR_CENTRE["sigma_8"]),
    }
    fkeys = truth_mod.object_keys(pa.array([f["object_id"] for f in fields], pa.string()),
                                  truth_mod.COSMOLOGY)
    for f, r in zip(fields, ctruth.lookup(fkeys), strict=True):
        if r >= 0:
            f["omega_m_true"] = float(ctruth.values[r, 0])
            f["sigma_8_true"] = float(ctruth.values[r, 1])
    data.update(pred=c[hit], true=true, pred_all=c)
    return out, data


# --------------------------------------------------------------------------- output


def _clean(o):
    """JSON-safe: NaN/inf -> null (standard JSON has no NaN), numpy scalars -> Python."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def to_json(report: dict) -> str:
    return json.dumps(_clean(report), indent=2)
