"""Turn raw arrays into network inputs, as the card says.

Training and inference both call these, so a model always sees at run time exactly
the scaling it was trained with. Raw items arrive channels-last ((H, W, C) images,
(H, W) planes, (n,) spectra); the card's ``layout`` decides what the graph gets.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from astrocat.errors import InputError
from astrocat.kinds import Kind


class InputSpecLike(Protocol):
    """What preprocessing (here, ``kernels.fit`` and ``sources.gpu_decode``) reads of a
    model's input: the card's ``[input]``, ``models.card.InputSpec`` (the models layer
    sits above this one, so it is named here by the fields it must have)."""

    @property
    def kind(self) -> Kind: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def preprocessing(self) -> str: ...
    @property
    def layout(self) -> str: ...
    @property
    def crop_fraction(self) -> float: ...
    @property
    def zoom(self) -> float: ...
    @property
    def resize_filter(self) -> str: ...
    @property
    def antialias(self) -> bool: ...
    @property
    def mean(self) -> float | tuple[float, ...]: ...
    @property
    def std(self) -> float | tuple[float, ...]: ...
    @property
    def fit(self) -> str: ...
    @property
    def fill(self) -> float: ...
    @property
    def pixel_scale(self) -> float | None: ...
    @property
    def scale_mismatch(self) -> str: ...
    @property
    def image_size(self) -> tuple[int, int]: ...
    @property
    def channels(self) -> int: ...

#: The version of what astrocat does to pixels and fluxes before a model sees them
#: (crop, zoom, resize, scaling, layout). It is part of every result's identity: bump it
#: whenever a change here or in ``sources/images.py`` changes the arrays a model gets.
PREPROCESS_VERSION = "2"


def centre_crop_plane(data: np.ndarray, height: int, width: int) -> np.ndarray:
    """Cut the central ``height x width`` of a 2-D plane; refuse planes that are too small."""
    h, w = data.shape
    if h < height or w < width:
        raise InputError(
            f"image is {h}x{w} pixels but the model needs at least {height}x{width}"
        )
    top, left = (h - height) // 2, (w - width) // 2
    return data[top : top + height, left : left + width]


def prepare(batch: np.ndarray, spec: InputSpecLike) -> np.ndarray:
    """Scale a stacked batch of raw items to float32 network input of shape (n, *spec.shape).

    ``mean`` and ``std`` are one value or one per channel (the last raw axis).
    """
    x = np.asarray(batch, dtype=np.float32)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    match spec.preprocessing:
        case "scale_255":
            x = x * np.float32(1.0 / 255.0)
        case "scale_255_standardize":  # torchvision's ToTensor() then Normalize(mean, std)
            x = (x * np.float32(1.0 / 255.0) - mean) / std
        case "standardize":
            x = (x - mean) / std
        case "log_standardize":
            x = (np.log10(np.maximum(x, np.float32(1e-6))) - mean) / std
        case "minmax":
            lo = x.min(axis=1, keepdims=True)
            span = x.max(axis=1, keepdims=True) - lo
            with np.errstate(invalid="ignore", divide="ignore"):
                x = (x - lo) / span  # a flat row becomes NaN and is reported by the caller
        case other:
            raise ValueError(f"unknown preprocessing {other!r}")
    if spec.layout == "NCHW" and spec.kind != Kind.SPECTRUM and len(spec.shape) == 3:
        h, w = spec.image_size
        x = x.reshape(len(x), h, w, spec.channels).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x.reshape((len(x), *spec.shape)))
