"""JPEGs decoded and prepared on the GPU: nvJPEG through ``torchvision.io.decode_jpeg``
(a whole batch per call, straight into device memory), then the card's crop, resize and
scaling as batched tensor operations, so a batch reaches the torch engine without
visiting the host.

It reproduces ``sources/images.read_rgb`` followed by ``kernels/preprocess.prepare``:

* the crop: ``crop_fraction`` of the shorter side, then its central ``1 / zoom``, as the
  same fractional box and whole-pixel window (``images._window``);
* the resampling: Pillow's (``Image.resize`` with a box) re-implemented exactly -- its
  filters, its support widened by the downscale factor, its 22-bit fixed-point
  coefficients, the horizontal pass rounded to 8 bits before the vertical one -- as two
  matrix products in float64, which hold Pillow's integer sums exactly; or, with
  ``antialias = false``, ``images._sample``'s weights;
* the scaling and layout: ``prepare``'s float32 operations, in the same order.

What it cannot reproduce is the decoding itself. On a CPU astrocat decodes a JPEG that
is much larger than the network input at a reduced DCT scale (Pillow's ``draft``:
libjpeg-turbo's scaled inverse DCT, 1/2, 1/4 or 1/8); nvJPEG decodes at full size only.
``draft = "pool"`` (the default) averages s x s blocks of the full decode in its place,
then rounds to 8 bits; ``draft = "none"`` resamples the full decode directly (a box s
times larger, the same region). Neither is libjpeg's scaled IDCT, and nvJPEG's own IDCT
and chroma upsampling differ from libjpeg-turbo's: the GPU batch is close to the CPU's,
not equal. ``benchmarks.gpu_check`` measures by how much, and what that does to a
model's outputs; ``tests/test_torch_engine.py`` measures it on the CPU, where
``decode_jpeg`` is libjpeg-turbo (where the resampling alone is exact).

Needs torch and torchvision (``astrocat[torch]``); imported by nothing else in astrocat.
Greyscale JPEGs come out as three equal channels, as on the CPU. Only baseline and
progressive JPEGs: PNGs and CMYK JPEGs stay with the CPU path.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import numpy as np

from astrocat.kernels.preprocess import InputSpecLike
from astrocat.sources import images
from astrocat.sources.common import library_message

#: Pillow's resampling arithmetic (libImaging/Resample.c): coefficients in fixed point.
PRECISION_BITS = 32 - 8 - 2
DRAFTS = ("pool", "none")


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


def _box(x: float) -> float:
    return 1.0 if -0.5 <= x < 0.5 else 0.0


def _hamming(x: float) -> float:
    x = abs(x)
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x *= math.pi
    return math.sin(x) / x * (0.54 + 0.46 * math.cos(x))


#: Pillow's filters (Resample.c): support and kernel.
PIL_FILTERS = {"bilinear": (1.0, _bilinear), "bicubic": (2.0, _bicubic),
               "lanczos": (3.0, _lanczos), "box": (0.5, _box), "hamming": (1.0, _hamming)}


@functools.lru_cache(maxsize=256)
def pillow_coefficients(in_size: int, in0: float, in1: float, out_size: int,
                        resize_filter: str) -> np.ndarray:
    """(out_size, in_size) float64 matrix of Pillow's fixed-point coefficients (integers,
    in units of 2**-PRECISION_BITS) for resampling [in0, in1) of ``in_size`` pixels to
    ``out_size``: ``precompute_coeffs`` and ``normalize_coeffs_8bpc``, line for line."""
    support, kernel = PIL_FILTERS[resize_filter]
    in0, in1 = np.float32(in0), np.float32(in1)  # Pillow reads the box as C floats
    scale = float(np.float32(in1 - in0)) / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    out = np.zeros((out_size, in_size), np.float64)
    for xx in range(out_size):
        center = float(in0) + (xx + 0.5) * scale
        xmin = max(0, math.trunc(center - support + 0.5))
        xmax = min(in_size, math.trunc(center + support + 0.5)) - xmin
        w = np.array([kernel((x + xmin - center + 0.5) / filterscale) for x in range(xmax)])
        total = w.sum()
        if total != 0.0:
            w = w / total
        fixed = np.where(w < 0, np.trunc(-0.5 + w * (1 << PRECISION_BITS)),
                         np.trunc(0.5 + w * (1 << PRECISION_BITS)))
        out[xx, xmin:xmin + xmax] = fixed
    return out


@functools.lru_cache(maxsize=256)
def sample_weights(in_size: int, lo: float, hi: float, out_size: int,
                   resize_filter: str) -> np.ndarray:
    """``images._sample``'s weights (no antialiasing)."""
    return images._weights(in_size, lo, hi, out_size, resize_filter)  # noqa: SLF001


def plan(width: int, height: int, spec: InputSpecLike, draft: str = "pool"
         ) -> tuple[int, tuple[int, int, int, int], tuple[float, float, float, float]]:
    """What ``read_rgb`` does to a ``width`` x ``height`` JPEG, in the decoded image's
    pixels: the DCT scale it decodes at (1 when not emulated), the whole-pixel window it
    cuts (left, top, right, bottom) and the fractional box inside that window."""
    size = spec.image_size[0]
    fraction = spec.crop_fraction / spec.zoom
    side = fraction * min(width, height)
    s = images._draft_scale(width, height, size, side, spec.antialias)  # noqa: SLF001
    if draft == "none" or s == 1:
        window, box = images._window(width, height, side)  # noqa: SLF001
        return 1, window, box
    w, h = -(-width // s), -(-height // s)
    window, box = images._window(w, h, side / s)  # noqa: SLF001
    return s, window, box


def _torch():
    import torch

    return torch


def decode(datas: Sequence[bytes], device="cuda") -> list:
    """JPEG bytes -> (3, H, W) uint8 tensors on ``device``: one ``decode_jpeg`` call for
    the batch (nvJPEG on a CUDA device, libjpeg-turbo on the CPU)."""
    torch = _torch()
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    if not tensors:
        return []
    return decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)


def _pool(x, s: int):
    """(n, 3, H, W) uint8 -> the s x s block means, rounded to uint8 (the stand-in for
    libjpeg's scaled IDCT); partial blocks at the edges average what they hold."""
    torch = _torch()
    # float32 is exact here: at most 64 values of 8 bits summed, divided by a power of 2
    y = torch.nn.functional.avg_pool2d(x.to(torch.float32), s, ceil_mode=True)
    return torch.round(y).clamp_(0, 255).to(torch.float64)


def resample(x, box: tuple[float, float, float, float], size: int, resize_filter: str,
             antialias: bool):
    """(n, C, h, w) pixels (float64 holding integers) of one window -> (n, C, size, size)
    float64 holding uint8 values, as ``images._resample`` gives them."""
    torch = _torch()
    n, c, h, w = x.shape
    x0, y0, x1, y1 = box
    dev = x.device
    if not antialias:
        wy = torch.from_numpy(sample_weights(h, y0, y1, size, resize_filter)).to(dev)
        wx = torch.from_numpy(sample_weights(w, x0, x1, size, resize_filter)).to(dev)
        return torch.round(wy @ x @ wx.T).clamp_(0, 255)
    if resize_filter not in PIL_FILTERS:
        raise ValueError(f"resize_filter {resize_filter!r} is not reproduced on the GPU")
    one = float(1 << PRECISION_BITS)
    half = float(1 << (PRECISION_BITS - 1))
    need_h = size != w or x0 != 0 or x1 != size
    need_v = size != h or y0 != 0 or y1 != size
    if need_h:
        kx = torch.from_numpy(pillow_coefficients(w, x0, x1, size, resize_filter)).to(dev)
        x = torch.floor((x @ kx.T + half) / one).clamp_(0, 255)
    if need_v:
        ky = torch.from_numpy(pillow_coefficients(h, y0, y1, size, resize_filter)).to(dev)
        x = torch.floor((ky @ x + half) / one).clamp_(0, 255)
    return x


def scale(x, spec: InputSpecLike):
    """``kernels.preprocess.prepare`` for images: (n, H, W, C) float32 holding uint8
    values -> network input (n, *spec.shape), the same float32 operations in order."""
    torch = _torch()
    mean = torch.as_tensor(np.asarray(spec.mean, np.float32), device=x.device)
    std = torch.as_tensor(np.asarray(spec.std, np.float32), device=x.device)
    match spec.preprocessing:
        case "scale_255":
            x = x * np.float32(1.0 / 255.0)
        case "scale_255_standardize":
            x = (x * np.float32(1.0 / 255.0) - mean) / std
        case "standardize":
            x = (x - mean) / std
        case other:
            raise ValueError(f"preprocessing {other!r} is not done on the GPU")
    if spec.layout == "NCHW":
        x = x.permute(0, 3, 1, 2)
    return x.contiguous().reshape((len(x), *spec.shape))


def prepare_images(decoded: Sequence, spec: InputSpecLike, draft: str = "pool"):
    """Decoded (3, H, W) uint8 tensors (any mix of sizes, on one device) -> the float32
    network input (n, *spec.shape) on that device, in their order."""
    torch = _torch()
    if draft not in DRAFTS:
        raise ValueError(f"draft must be one of {', '.join(DRAFTS)}")
    if spec.channels != 3:
        raise ValueError("GPU decoding makes RGB images; this card wants "
                         f"{spec.channels} channel(s)")
    size = spec.image_size[0]
    if not decoded:
        return torch.empty((0, *spec.shape), dtype=torch.float32)
    out = torch.empty((len(decoded), 3, size, size), dtype=torch.float64,
                      device=decoded[0].device)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(decoded):
        groups.setdefault((int(img.shape[-1]), int(img.shape[-2])), []).append(i)
    for (width, height), idx in groups.items():
        s, (left, top, right, bottom), box = plan(width, height, spec, draft)
        x = torch.stack([decoded[i] for i in idx])
        x = _pool(x, s) if s > 1 else x.to(torch.float64)
        x = x[:, :, top:bottom, left:right]
        out[idx] = resample(x, box, size, spec.resize_filter, spec.antialias)
    return scale(out.permute(0, 2, 3, 1).to(torch.float32), spec)


def decode_and_prepare(datas: Sequence[bytes], spec: InputSpecLike, device="cuda",
                       draft: str = "pool"):
    """JPEG bytes -> network input (n, *spec.shape) float32 on ``device``."""
    return prepare_images(decode(datas, device), spec, draft)


def decode_and_prepare_each(datas: Sequence[bytes], spec: InputSpecLike, device="cuda",
                            draft: str = "pool") -> tuple[object, list[int], dict[int, str]]:
    """:func:`decode_and_prepare`, where a JPEG the decoder refuses costs only itself: the
    batch in one call, and if that fails each JPEG alone, to find the bad ones. Returns
    the network input of those that decoded (None where none did), their positions in
    ``datas``, and for each of the others the decoder's words. A failure that is not the
    decoding's (the preparation, the device) is raised."""
    try:
        return decode_and_prepare(datas, spec, device, draft), list(range(len(datas))), {}
    except Exception:  # noqa: BLE001 - found below, one JPEG at a time
        pass
    decoded, ok, errors = [], [], {}
    for k, data in enumerate(datas):
        try:
            decoded.extend(decode([data], device))
        except Exception as exc:  # noqa: BLE001 - nvJPEG and libjpeg raise RuntimeError
            errors[k] = f"JPEG data is truncated or corrupt ({_decoder_words(exc)})"
        else:
            ok.append(k)
    return (prepare_images(decoded, spec, draft) if decoded else None), ok, errors


def _decoder_words(exc: BaseException) -> str:
    """The decoder's message without torchvision's source location ("decode_jpeg,
    .../decode_jpeg.cpp:171, Image is incomplete or truncated" -> the last part)."""
    return re.sub(r"^\w+, \S+:\d+, ", "", library_message(exc))


def unsupported(spec: InputSpecLike) -> str | None:
    """Why a card's image preprocessing is not reproduced here (None: it is). Imports
    nothing: the driver asks before any worker opens torch."""
    from astrocat.kinds import Kind

    if spec.kind != Kind.RGB_IMAGE:
        return f"its inputs are {spec.kind.value}, not JPEG images"
    if spec.channels != 3:
        return f"it takes {spec.channels} channel(s), GPU decoding makes RGB"
    if spec.preprocessing not in ("scale_255", "scale_255_standardize", "standardize"):
        return f"its preprocessing {spec.preprocessing!r} is not done on the GPU"
    filters = PIL_FILTERS if spec.antialias else images._KERNELS  # noqa: SLF001
    if spec.resize_filter not in filters:
        return f"its resize_filter {spec.resize_filter!r} is not reproduced on the GPU"
    return None
