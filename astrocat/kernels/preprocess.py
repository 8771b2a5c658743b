"""Turn raw arrays into network inputs, as the card says.

Training and inference both call these, so a model always sees at run time exactly
the scaling it was trained with.
"""

from __future__ import annotations

import numpy as np

from astrocat.errors import InputError
from astrocat.models.card import InputSpec


def centre_crop_plane(data: np.ndarray, height: int, width: int) -> np.ndarray:
    """Cut the central ``height x width`` of a 2-D plane; refuse planes that are too small."""
    h, w = data.shape
    if h < height or w < width:
        raise InputError(
            f"image is {h}x{w} pixels but the model needs at least {height}x{width}"
        )
    top, left = (h - height) // 2, (w - width) // 2
    return data[top : top + height, left : left + width]


def prepare(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Scale a stacked batch of raw items to float32 network input of shape (n, *spec.shape)."""
    x = np.asarray(batch, dtype=np.float32)
    match spec.preprocessing:
        case "scale_255":
            x = x * np.float32(1.0 / 255.0)
        case "standardize":
            x = (x - np.float32(spec.mean)) / np.float32(spec.std)
        case "log_standardize":
            x = (np.log10(np.maximum(x, np.float32(1e-6))) - np.float32(spec.mean)) / np.float32(
                spec.std
            )
        case "minmax":
            lo = x.min(axis=1, keepdims=True)
            span = x.max(axis=1, keepdims=True) - lo
            with np.errstate(invalid="ignore", divide="ignore"):
                x = (x - lo) / span  # a flat row becomes NaN and is reported by the caller
        case other:
            raise ValueError(f"unknown preprocessing {other!r}")
    return x.reshape((len(x), *spec.shape))
