"""A model's reference statistics as a run reads them: the arrays of ``reference.npz``
(:class:`Reference`), the distance and interval they give, and the file beside a card
loaded once per process. Fitting and writing them (which run the model) is
:mod:`astrocat.models.reference`, above the engines; the pipeline's trust columns need
only this part.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np

from astrocat.kernels import drift, ood
from astrocat.models.card import ModelCard


@dataclass(frozen=True)
class Reference:
    """The arrays of ``reference.npz``."""

    input_mean: np.ndarray
    input_precision: np.ndarray
    input_scale: float
    feature_mean: np.ndarray
    feature_precision: np.ndarray
    feature_scale: float
    conformal_k: np.ndarray  # (max views - 1, n_outputs): row N-2 for N views; NaN: none
    conformal_eps: np.ndarray
    truth_min: np.ndarray  # (n_outputs,): intervals are clipped to the truth's range
    truth_max: np.ndarray
    #: The row distances of the held-out (calibration) inputs, sorted: what a run's
    #: distribution is compared with (``kernels.drift``); None in references written
    #: before astrocat 0.4.
    held_out_distance: np.ndarray | None = None

    def distance(self, inputs: np.ndarray, features: np.ndarray) -> np.ndarray:
        """The row distance of prepared inputs (statistics) and their features."""
        d_in = ood.mahalanobis(inputs, self.input_mean, self.input_precision)
        d_feat = ood.mahalanobis(features, self.feature_mean, self.feature_precision)
        return np.maximum(d_in / self.input_scale, d_feat / self.feature_scale)

    def interval(self, mean: np.ndarray, spread: np.ndarray, n_views: int
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        """The calibrated interval (lo, hi), each (n, n_outputs), around the views' mean,
        inside the range the truth took (stretched to the mean where that lies outside);
        None where not calibrated for ``n_views``."""
        row = n_views - 2
        if row < 0 or row >= len(self.conformal_k):
            return None
        half = self.conformal_k[row] * (spread + self.conformal_eps[row])
        return (np.maximum(mean - half, np.minimum(self.truth_min, mean)),
                np.minimum(mean + half, np.maximum(self.truth_max, mean)))

    def baseline(self) -> drift.Baseline | None:
        """The held-out distances as the drift test needs them (None: not recorded)."""
        if self.held_out_distance is None or not len(self.held_out_distance):
            return None
        return _baseline(np.asarray(self.held_out_distance, np.float32).tobytes())

    def save(self, path: Path | IO[bytes]) -> None:
        np.savez(path, **{k: np.asarray(v) for k, v in self.__dict__.items()
                          if v is not None})


@lru_cache(maxsize=16)
def _baseline(distances: bytes) -> drift.Baseline:
    return drift.Baseline.of(np.frombuffer(distances, np.float32))


@lru_cache(maxsize=16)
def load(path: str, digest: str) -> Reference:
    """``reference.npz`` (cached per process; the card's digest is part of the key)."""
    with np.load(path) as z:
        return Reference(**{k: (float(z[k]) if z[k].ndim == 0 else z[k]) for k in z.files})


def rows_sha256(card: ModelCard) -> str | None:
    """The digest of what a row's trust columns are computed from: ``reference.npz``
    without the held-out distances (which only the run's drift reads). Equal to the file's
    sha256 for references without them, so adding them (astrocat 0.4) leaves every result
    key, and every finished part, as it was."""
    if card.reference is None:
        return None
    return _rows_sha256(str(card.reference_path), card.reference.sha256)


@lru_cache(maxsize=16)
def _rows_sha256(path: str, digest: str) -> str:
    import dataclasses
    import hashlib
    import io

    try:
        ref = load(path, digest)
    except (OSError, ValueError):  # not there (yet): verification will say so
        return digest
    if ref.held_out_distance is None:
        return digest
    buf = io.BytesIO()
    dataclasses.replace(ref, held_out_distance=None).save(buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def of(card: ModelCard) -> Reference | None:
    if card.reference is None:
        return None
    return load(str(card.reference_path), card.reference.sha256)
