"""The torch engine (ONNX graph -> onnx2torch -> PyTorch) against ONNX Runtime on the
bundled models, and GPU-style JPEG decoding (``sources.gpu_decode``) against the CPU
path, both on CPU tensors: ``torchvision.io.decode_jpeg`` is libjpeg-turbo there, and
the same code runs on ``cuda``. Skipped where PyTorch is not installed (``[torch]`` is
not part of ``[dev]``), except the checks that astrocat never imports torch unasked."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from astrocat.engines.base import choose_engine, open_engine
from astrocat.errors import AstrocatError
from astrocat.models.zoo import bundled

FP32 = ("gz2-cnn", "redshift-cnn1d", "lens-lastro", "cosmo-cnn")
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample" / "galaxies"


def _torch():
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    pytest.importorskip("onnx2torch")
    import torch

    return torch


def test_cli_and_cpu_inference_never_import_torch():
    code = (
        "import sys, numpy as np\n"
        "import astrocat.cli\n"
        "from astrocat.engines.base import choose_engine, open_engine\n"
        "from astrocat.models.zoo import bundled\n"
        "c = bundled()['gz2-cnn']\n"
        "open_engine(c, choose_engine('auto', c)).run(np.zeros((2, 64, 64, 3), np.float32))\n"
        "bad = [m for m in ('torch', 'torchvision', 'onnx2torch') if m in sys.modules]\n"
        "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_engine_torch_is_refused_clearly_without_pytorch(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(AstrocatError, match=r"engine torch needs torch.*astrocat\[torch\]"):
        choose_engine("torch", bundled()["gz2-cnn"])


@pytest.mark.parametrize("name", FP32)
def test_int8_graphs_are_refused(name):
    """onnx2torch has no QuantizeLinear/DequantizeLinear: refused by the card before any
    input is read, and by the graph itself (a card without its [quantization] record)."""
    card = bundled()[f"{name}-int8"]
    if all(importlib_ok(m) for m in ("torch", "onnx2torch", "torchvision")):
        with pytest.raises(AstrocatError, match="INT8-quantised"):
            choose_engine("torch", card)
        bare = dataclasses.replace(card, raw={k: v for k, v in card.raw.items()
                                              if k != "quantization"})
        with pytest.raises(AstrocatError, match="DequantizeLinear"):
            open_engine(bare, "torch")
    else:
        with pytest.raises(AstrocatError, match="astrocat\\[torch\\]"):
            choose_engine("torch", card)


def importlib_ok(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("name", FP32)
def test_torch_engine_matches_onnxruntime(name):
    """Outputs, penultimate features and logits (the heads the catalog keeps)."""
    torch = _torch()
    card = bundled()[name]
    assert choose_engine("torch", card) == "torch"
    x = np.random.default_rng(3).random((16, *card.input.shape), dtype=np.float32)
    ref = open_engine(card, "onnxruntime").run(x)
    engine = open_engine(card, "torch")
    got = engine.run(x)
    assert got.values.shape == ref.values.shape == (16, len(card.outputs))
    assert np.abs(got.values - ref.values).max() < 1e-5
    for a, b in ((got.features, ref.features), (got.logits, ref.logits)):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    # a tensor already on the engine's device (a GPU-decoded batch) goes straight in
    on_device = torch.from_numpy(x).to(engine.device)
    assert np.array_equal(engine.run(on_device).values, got.values)
    assert np.array_equal(engine.predict(x), got.values)


def test_infer_with_the_torch_engine_matches_onnxruntime(tmp_path):
    """``astrocat.infer(..., engine="torch")`` end to end (on this CPU): the same rows and
    values as ONNX Runtime, and the provenance names the engine."""
    _torch()
    import pyarrow.parquet as pq

    import astrocat

    src = tmp_path / "g"
    src.mkdir()
    for p in sorted(SAMPLE.glob("*.jpg"))[:12]:
        (src / p.name).write_bytes(p.read_bytes())
    tables = {}
    for engine in ("onnxruntime", "torch"):
        r = astrocat.infer(src, tmp_path / f"{engine}.parquet", engine=engine,
                           model="gz2-cnn", progress=False)
        assert r.n_rows == 12 and r.n_errors == 0 and r.by_model == {"gz2-cnn": engine}
        tables[engine] = pq.read_table(tmp_path / f"{engine}.parquet").sort_by("source")
    a, b = tables["onnxruntime"], tables["torch"]
    for col in [c for c in a.column_names if c.startswith("gz_") or c == "ood_distance"]:
        assert np.abs(a[col].to_numpy() - b[col].to_numpy()).max() < 1e-4, col


# --------------------------------------------------------------------------- GPU decode


def _cpu_reference(paths, spec):
    from astrocat.kernels.preprocess import prepare
    from astrocat.sources.images import read_rgb

    return prepare(np.stack([read_rgb(str(p), spec.image_size[0], spec.crop_fraction,
                                      spec.zoom, spec.resize_filter, spec.antialias)
                             for p in paths]), spec)


@pytest.mark.parametrize(("crop", "zoom", "resize_filter", "antialias", "preprocessing"), [
    (1.0, 1.0, "bilinear", True, "scale_255"),
    (0.77, 1.0, "bilinear", True, "scale_255_standardize"),
    (0.9, 1.1, "bicubic", True, "scale_255"),
    (0.83, 1.0, "lanczos", True, "standardize"),
    (0.8, 1.0, "box", True, "scale_255"),
    (0.6, 1.0, "hamming", True, "scale_255"),
    (0.7, 1.0, "bilinear", False, "scale_255"),
    (0.9, 1.0, "bicubic", False, "scale_255"),
])
def test_gpu_preprocessing_is_the_cpu_path_exactly_where_no_draft_applies(
        tmp_path, crop, zoom, resize_filter, antialias, preprocessing):
    """JPEGs too small for a reduced DCT scale decode to the same pixels on both paths, so
    crop, resampling (Pillow's fixed-point arithmetic, fractional boxes) and scaling must
    agree bit for bit: any difference is a bug in the GPU path, not in the decoder.
    Without antialiasing (``images._sample``: float weights, then rounding) a value that
    lands on a rounding tie may round either way with another summation order: one level
    of 255, on at most 1 value in 10,000."""
    _torch()
    from PIL import Image

    from astrocat.sources import gpu_decode

    rng = np.random.default_rng(5)
    paths = []
    for i, (h, w) in enumerate([(100, 97), (101, 99), (96, 120), (100, 97)]):
        p = tmp_path / f"{i}.jpg"
        grey = i == 3
        arr = (rng.random((h, w) if grey else (h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(p, quality=90)
        paths.append(p)
    mean, std = ((0.0, 1.0) if preprocessing == "scale_255" else
                 ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
                 if preprocessing == "scale_255_standardize" else ((120.0,), (60.0,)))
    spec = dataclasses.replace(bundled()["gz2-cnn"].input, crop_fraction=crop, zoom=zoom,
                               resize_filter=resize_filter, antialias=antialias,
                               preprocessing=preprocessing, mean=mean, std=std)
    assert all(gpu_decode.plan(w, h, spec)[0] == 1
               for h, w in [(100, 97), (101, 99), (96, 120)])
    got = gpu_decode.decode_and_prepare([p.read_bytes() for p in paths], spec, "cpu")
    assert got.dtype.is_floating_point and tuple(got.shape) == (4, *spec.shape)
    d = np.abs(got.numpy() - _cpu_reference(paths, spec))
    if antialias:
        assert d.max() == 0.0
    else:
        scale = 255.0 if preprocessing != "standardize" else 1.0 / spec.std[0]
        assert d.max() * scale <= 1.0 + 1e-4 and (d > 0).mean() <= 1e-4


def test_gpu_preprocessing_nchw_layout(tmp_path):
    _torch()
    from astrocat.sources import gpu_decode

    paths = sorted(SAMPLE.glob("*.jpg"))[:3]
    spec = dataclasses.replace(bundled()["gz2-cnn"].input, layout="NCHW", shape=(3, 64, 64))
    got = gpu_decode.decode_and_prepare([p.read_bytes() for p in paths], spec, "cpu",
                                        draft="none").numpy()
    nhwc = gpu_decode.decode_and_prepare([p.read_bytes() for p in paths],
                                         bundled()["gz2-cnn"].input, "cpu",
                                         draft="none").numpy()
    assert got.shape == (3, 3, 64, 64)
    assert np.array_equal(got, nhwc.transpose(0, 3, 1, 2))


#: Bounds for the 150 sample galaxies (424 px, which the CPU decodes at 1/2 DCT scale),
#: pooled full decode against libjpeg-turbo's scaled IDCT, measured here (torch 2.13 CPU):
#: pixels max 14/255, mean 0.27/255 (22 % of values differ); gz2-cnn's vote fractions
#: max 0.030, mean 0.0017 (for scale: +-1 level of uniform noise moves them by 0.019).
POOL_MAX, POOL_MEAN, OUTPUT_MAX = 16 / 255, 0.4 / 255, 0.05


def test_gpu_decode_of_survey_jpegs_is_close_to_the_cpu_path():
    """Survey-sized JPEGs: the CPU decodes them at a reduced DCT scale, which nvJPEG (and
    decode_jpeg) cannot; the pooled full decode stands in. Close, not equal: bounded in
    pixels and in gz2-cnn's vote fractions, with the figures in the assertion messages."""
    _torch()
    from astrocat.sources import gpu_decode

    card = bundled()["gz2-cnn"]
    paths = sorted(SAMPLE.glob("*.jpg"))
    assert len(paths) == 150 and gpu_decode.plan(424, 424, card.input)[0] == 2
    cpu = _cpu_reference(paths, card.input)
    gpu = gpu_decode.decode_and_prepare([p.read_bytes() for p in paths], card.input,
                                        "cpu").numpy()
    d = np.abs(gpu - cpu)
    assert d.max() <= POOL_MAX and d.mean() <= POOL_MEAN, (d.max() * 255, d.mean() * 255)
    ort = open_engine(card, "onnxruntime")
    out = np.abs(ort.predict(gpu) - ort.predict(cpu)).max()
    assert out <= OUTPUT_MAX, out
