"""A model's reference statistics: what its training inputs look like, for the
out-of-domain flag, and how far its test-time-augmentation spread is from its errors, for
calibrated intervals.

``astrocat models reference MODEL --data DIR`` (and ``astrocat train`` at its end) reads
a sample of the model's training data in the layouts ``train`` reads, splits it into a
fit and a calibration part, and writes ``reference.npz`` beside the card with a
``[reference]`` table naming it:

* two Gaussians (mean, Ledoit-Wolf precision) fitted on the fit part: one of the
  prepared inputs' summary statistics, one of the network's penultimate features
  (``kernels.ood``); each distance is divided by its median on the fit part;
* ``threshold``: the ``quantile`` (0.995) of the row distance (the larger of the two)
  over the calibration part, so about 0.5 % of inputs like the training inputs are
  flagged;
* ``held_out_distance``: every row distance of the calibration part, sorted: what a
  run's whole distribution is compared with (its drift, ``kernels.drift``);
* for cards that declare invariances, per number of views N and per estimate output,
  the factor ``k`` of a normalised split-conformal interval (Papadopoulos et al. 2008;
  Lei et al. 2018): mean +- k (spread + eps) covers the truth in ``interval_coverage``
  (90 %) of calibration inputs, eps being the spread's median there.

What a run reads back (:class:`Reference`, ``load``, ``of``) is
:mod:`astrocat.models.reference_stats`, re-exported here: fitting runs the model, so this
module sits above the engines, while the pipeline's trust columns need only those.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from astrocat.errors import AstrocatError
from astrocat.kernels import ood
from astrocat.kernels.views import available, make_views, reduce_views
from astrocat.models.card import REFERENCE_FILENAME, ModelCard, ReferenceSpec, sha256_file
from astrocat.models.reference_stats import Reference
from astrocat.models.reference_stats import load as load  # re-exported: reference.load
from astrocat.models.reference_stats import of as of

QUANTILE = 0.995
#: Fewest inputs a reference is fitted from (a few thousand give a stable threshold).
MIN_INPUTS = 20
COVERAGE = 0.9
METHOD = ("mahalanobis: input summary statistics and penultimate features, Ledoit-Wolf "
          "covariance, each over its median, the larger of the two")


# --------------------------------------------------------------------------- fitting


def _gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    x = np.asarray(x, np.float64)
    keep = x.std(axis=0) > 0  # constant statistics/features (dead units) carry nothing
    lw = LedoitWolf().fit(x[:, keep])
    mean = x.mean(axis=0)
    precision = np.zeros((x.shape[1], x.shape[1]))
    precision[np.ix_(keep, keep)] = lw.precision_
    return mean, precision


def _conformal(views_y: np.ndarray, y: np.ndarray, card: ModelCard, coverage: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """k and eps per N (2..G) and output from the calibration part's views (G, n, k)."""
    g, n, k = views_y.shape
    ks = np.full((g - 1, k), np.nan)
    eps = np.full((g - 1, k), np.nan)
    level = min(1.0, math.ceil((n + 1) * coverage) / n)  # split conformal's finite-n rank
    estimate = np.array([not o.logit for o in card.outputs])
    for m in range(2, g + 1):
        mean, spread = reduce_views(views_y[:m].reshape(m * n, k), m)
        e = np.median(spread, axis=0) + 1e-6
        score = np.abs(y - mean) / (spread + e)
        ks[m - 2] = np.where(estimate, np.quantile(score, level, axis=0), np.nan)
        eps[m - 2] = e
    return ks, eps


def fit(card: ModelCard, prepared: np.ndarray, truth: np.ndarray | None, *, seed: int = 0,
        quantile: float = QUANTILE, coverage: float = COVERAGE, engine: str = "onnxruntime",
        log=print) -> tuple[Reference, dict]:
    """Reference statistics of ``card``'s model from prepared training inputs (and their
    truth, for the intervals); returns them and the card's ``[reference]`` record."""
    from astrocat.engines.base import open_engine
    from astrocat.models.graph import feature_tensor

    t0 = time.time()
    n = len(prepared)
    if n < MIN_INPUTS:
        raise AstrocatError(f"{n} reference inputs: at least {MIN_INPUTS} are needed (a few "
                            "thousand is better)")
    features = feature_tensor(card.weights("onnx"))
    probe = _with(card, ReferenceSpec("", "0" * 64, features, 1.0))
    model = open_engine(probe, engine)
    order = np.random.default_rng(seed).permutation(n)
    part_fit, part_cal = order[: 2 * n // 3], order[2 * n // 3:]
    views = available(card.invariances)
    batch = 128

    def run(idx: np.ndarray, all_views: bool):
        stats, feats, ys = [], [], []
        for a in range(0, len(idx), batch):
            x = prepared[idx[a:a + batch]]
            stats.append(ood.input_statistics(x, card.input.layout))
            use = views if all_views else views[:1]
            h = model.run(make_views(x, use, card.input.layout))
            feats.append(h.features[: len(x)])
            ys.append(h.values.reshape(len(use), len(x), -1))
        return np.concatenate(stats), np.concatenate(feats), np.concatenate(ys, axis=1)

    s_fit, f_fit, _ = run(part_fit, False)
    s_cal, f_cal, y_cal = run(part_cal, truth is not None and len(views) > 1)
    in_mean, in_prec = _gaussian(s_fit)
    f_mean, f_prec = _gaussian(f_fit)
    in_scale = float(np.median(ood.mahalanobis(s_fit, in_mean, in_prec)))
    f_scale = float(np.median(ood.mahalanobis(f_fit, f_mean, f_prec)))
    ks = eps = np.full((0, len(card.outputs)), np.nan)
    lo = hi = np.full(len(card.outputs), np.nan)
    if y_cal.shape[0] > 1:
        ks, eps = _conformal(y_cal, truth[part_cal], card, coverage)
        lo, hi = truth.min(axis=0), truth.max(axis=0)
    ref = Reference(in_mean, in_prec, in_scale, f_mean, f_prec, f_scale, ks, eps, lo, hi)
    d_cal = ref.distance(s_cal, f_cal)
    ref = dataclasses.replace(ref, held_out_distance=np.sort(d_cal).astype(np.float32))
    threshold = float(np.quantile(d_cal, quantile))
    record = {"method": METHOD, "features": features, "threshold": round(threshold, 6),
              "quantile": quantile, "n_fit": len(part_fit), "n_calibration": len(part_cal),
              "in_domain_flagged": round(float((d_cal > threshold).mean()), 6),
              "seconds": round(time.time() - t0, 1), "engine": engine}
    if len(ks) and np.isfinite(ks).any():
        record["interval_coverage"] = coverage
    log(f"{card.name}: reference from {n} inputs ({len(part_fit)} fit, {len(part_cal)} "
        f"calibration); threshold {threshold:.3g}"
        + (f"; {coverage:.0%} intervals for up to {len(views)} views"
           if "interval_coverage" in record else ""))
    return ref, record


def _with(card: ModelCard, spec: ReferenceSpec | None) -> ModelCard:
    return dataclasses.replace(card, reference=spec, tta=1)


def write(card: ModelCard, ref: Reference, record: dict, data: str, command: str) -> Path:
    """Save ``reference.npz`` beside the card and its ``[reference]`` table in the card."""
    import tomllib

    from astrocat.models.card import CARD_FILENAME, write_card

    path = card.directory / REFERENCE_FILENAME
    tmp = path.with_name(f".{path.name}.tmp.npz")
    ref.save(tmp)
    tmp.replace(path)
    raw = tomllib.loads((card.directory / CARD_FILENAME).read_text())
    raw["reference"] = {"file": REFERENCE_FILENAME, "sha256": sha256_file(path), **record,
                        "data": data, "command": command}
    return write_card(raw, card.directory)


def compute(model: str, data: Path, *, limit: int | None = 3000, seed: int = 0,
            command: str = "", log=print) -> Path:
    """``astrocat models reference``: load a sample of the model's training data in the
    layouts ``train`` reads, fit, and write the reference beside the card."""
    from astrocat.kernels.preprocess import prepare
    from astrocat.models import datasets
    from astrocat.models.zoo import resolve

    card = resolve(model)
    if "onnx" not in card.files:
        raise AstrocatError(f"model '{card.name}' has no ONNX graph: reference statistics "
                            "are computed with ONNX Runtime (export it first)")
    x, y = datasets.load_task(card.task, card.input, Path(data), limit, seed)
    ref, record = fit(card, prepare(x, card.input), y, seed=seed, log=log)
    return write(card, ref, record, datasets.provenance(Path(data)), command)
