"""``astrocat summarize``: science numbers from a catalog, read in bounded memory.

The catalog is streamed in record batches with column projection; only the few
per-object numbers a statistic needs (never the whole table) are kept.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from astrocat.catalog import stats
from astrocat.errors import AstrocatError
from astrocat.kernels.gz_tree import galaxy_zoo2

TRUE_Z_COLUMNS = ("z", "z_true", "redshift")
MERGER_COLUMN = "gz_odd_merger"  # Class8.6: already carries the factor Class6.1
MERGER_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class SummaryOptions:
    merger_threshold: float = 0.3
    lens_threshold: float = 0.5
    truth_column: str | None = None
    top: int = 20
    confidence: float = 0.683


@dataclass
class _Collected:
    kinds: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    gz: list = field(default_factory=list)
    z: list = field(default_factory=list)
    lens: list = field(default_factory=list)
    cosmo: list = field(default_factory=list)


def _columns(path: Path) -> list[str]:
    try:
        return pq.read_schema(path).names
    except (OSError, pq.lib.ArrowInvalid) as exc:
        raise AstrocatError(f"{path} is not a readable Parquet catalog ({exc})") from exc


def summarize(path: Path, opts: SummaryOptions | None = None) -> dict:
    opts = opts or SummaryOptions()
    path = Path(path)
    if not path.is_file():
        raise AstrocatError(f"no catalog at {path}")
    names = set(_columns(path))
    if not {"kind", "status"} <= names:
        raise AstrocatError(f"{path} is not an astrocat catalog (no kind/status columns)")
    tree = galaxy_zoo2()
    gz_cols = [c for c in tree.catalog_columns if c in names]
    truth = opts.truth_column or next((c for c in TRUE_Z_COLUMNS if c in names), None)
    if opts.truth_column and opts.truth_column not in names:
        raise AstrocatError(f"--truth-column {opts.truth_column} is not in the catalog")
    want = ["kind", "status", "error", "object_id"] + gz_cols + [
        c for c in ("z_pred", "p_lens", "omega_m_pred", "sigma_8_pred") if c in names
    ] + ([truth] if truth and "z_pred" in names else [])
    got = _Collected()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=want):
        kind = np.asarray(batch.column("kind").to_numpy(zero_copy_only=False))
        status = np.asarray(batch.column("status").to_numpy(zero_copy_only=False))
        ok = status == "ok"
        for k, s in zip(*np.unique(np.char.add(np.char.add(kind.astype(str), "|"),
                                               status.astype(str)), return_counts=True),
                        strict=True):
            kk, ss = k.split("|")
            got.kinds[(kk, ss)] += int(s)
        if (~ok).any():
            for msg in np.asarray(batch.column("error").to_numpy(zero_copy_only=False))[~ok]:
                got.errors[str(msg).split(":")[0][:80]] += 1
        if gz_cols:
            sel = ok & (kind == "rgb_image")
            if sel.any():
                got.gz.append(np.column_stack([
                    batch.column(c).to_numpy(zero_copy_only=False)[sel] for c in gz_cols
                ]).astype(np.float32))
        if "z_pred" in want:
            sel = ok & (kind == "spectrum")
            zp = batch.column("z_pred").to_numpy(zero_copy_only=False)[sel]
            zt = (batch.column(truth).to_numpy(zero_copy_only=False)[sel].astype(float)
                  if truth and truth in want else np.full(len(zp), np.nan))
            got.z.append(np.column_stack([zp, zt]))
        if "p_lens" in want:
            sel = ok & np.isfinite(batch.column("p_lens").to_numpy(zero_copy_only=False))
            ids = batch.column("object_id").to_numpy(zero_copy_only=False)[sel]
            got.lens.append((ids, batch.column("p_lens").to_numpy(zero_copy_only=False)[sel]))
        if "omega_m_pred" in want:
            sel = ok & np.isfinite(batch.column("omega_m_pred").to_numpy(zero_copy_only=False))
            got.cosmo.append(np.column_stack([
                batch.column(c).to_numpy(zero_copy_only=False)[sel]
                for c in ("omega_m_pred", "sigma_8_pred")]))
    return _report(path, got, gz_cols, truth, opts)


def _report(path: Path, got: _Collected, gz_cols: list[str], truth, opts) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for (kind, status), n in sorted(got.kinds.items()):
        counts.setdefault(kind or "unrecognised", {})[status] = n
    total = sum(got.kinds.values())
    n_err = sum(n for (_, s), n in got.kinds.items() if s == "error")
    report: dict = {"catalog": str(path), "rows": total, "ok": total - n_err, "errors": n_err,
                    "by_kind": counts, "error_reasons": dict(got.errors.most_common(10))}
    if got.gz:
        report["morphology"] = _morphology(np.concatenate(got.gz), gz_cols, opts)
    if got.z:
        report["redshift"] = _redshift(np.concatenate(got.z), truth)
    if got.lens:
        ids = np.concatenate([i for i, _ in got.lens])
        p = np.concatenate([s for _, s in got.lens]).astype(float)
        order = np.argsort(-p, kind="mergesort")
        sel = order[p[order] >= opts.lens_threshold]
        report["lens"] = {
            "n": len(p), "threshold": opts.lens_threshold, "n_candidates": len(sel),
            "candidates": [{"object_id": str(ids[i]), "p_lens": float(p[i])}
                           for i in sel[: opts.top]],
        }
    if got.cosmo:
        c = np.concatenate(got.cosmo).astype(float)
        report["cosmology"] = {
            "n": len(c),
            "omega_m_mean": float(c[:, 0].mean()), "omega_m_std": float(c[:, 0].std()),
            "sigma_8_mean": float(c[:, 1].mean()), "sigma_8_std": float(c[:, 1].std()),
        }
    return report


def _morphology(v: np.ndarray, cols: list[str], opts: SummaryOptions) -> dict:
    tree = galaxy_zoo2()
    q1 = [c for c in ("gz_smooth", "gz_features_or_disk", "gz_star_or_artifact") if c in cols]
    idx = [cols.index(c) for c in q1]
    winner = np.argmax(v[:, idx], axis=1)
    out: dict = {
        "n": len(v),
        "mean_vote_fraction": {c: float(v[:, cols.index(c)].mean()) for c in q1},
        "share_by_largest_q1_answer": {c: float(np.mean(winner == j)) for j, c in enumerate(q1)},
    }
    if MERGER_COLUMN in cols:
        m = v[:, cols.index(MERGER_COLUMN)]
        f = stats.beta_fraction(int((m >= opts.merger_threshold).sum()), len(m), opts.confidence)
        out["merger"] = {
            "column": MERGER_COLUMN,
            "kaggle_column": tree.answers[tree.index(MERGER_COLUMN)].kaggle_column,
            "threshold": opts.merger_threshold, "k": f.k, "n": f.n, "fraction": f.value,
            "lower": f.lower, "upper": f.upper, "confidence": f.confidence,
            "by_threshold": [
                {"threshold": t, **{k: getattr(g, k) for k in ("k", "value", "lower", "upper")}}
                for t in MERGER_THRESHOLDS
                for g in [stats.beta_fraction(int((m >= t).sum()), len(m), opts.confidence)]
            ],
        }
    return out


def _redshift(zz: np.ndarray, truth: str | None) -> dict:
    zp, zt = zz[:, 0].astype(float), zz[:, 1].astype(float)
    q = np.percentile(zp, [5, 16, 50, 84, 95]) if len(zp) else [np.nan] * 5
    out: dict = {"n": len(zp), "z_pred_mean": float(np.mean(zp)) if len(zp) else float("nan"),
                 "z_pred_percentiles": dict(zip(["p5", "p16", "p50", "p84", "p95"],
                                                map(float, q), strict=True))}
    has = np.isfinite(zt)
    if truth and has.any():
        m = stats.redshift_metrics(zp[has], zt[has])
        out["truth_column"] = truth
        out["metrics"] = m.__dict__
        out["bias_table"] = stats.bias_table(zp[has], zt[has])
    return out


def to_json(report: dict) -> str:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(type(o))

    return json.dumps(report, indent=2, default=default, allow_nan=True)
