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


def _without_torch(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, then assert it succeeded and that neither it
    nor astrocat imported torch, torchvision or onnx2torch."""
    code += ("bad = [m for m in ('torch', 'torchvision', 'onnx2torch') if m in sys.modules]\n"
             "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def test_cli_and_cpu_inference_never_import_torch():
    code = (
        "import sys, numpy as np\n"
        "import astrocat.cli\n"
        "from astrocat.engines.base import choose_engine, open_engine\n"
        "from astrocat.models.zoo import bundled\n"
        "c = bundled()['gz2-cnn']\n"
        "open_engine(c, choose_engine('auto', c)).run(np.zeros((2, 64, 64, 3), np.float32))\n"
    )
    _without_torch(code)


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


# --------------------------------------------------------------------------- --decode

#: Runs the CLI in a fresh interpreter; ``hide_torch`` makes torch look uninstalled (as
#: ``importlib.util.find_spec`` reports it, which is what ``choose_engine`` asks).
_CLI = ("import importlib.util as u, sys\n"
        "real = u.find_spec\n"
        "if {hide!r}:\n"
        "    u.find_spec = lambda n, *a: None if n == 'torch' else real(n, *a)\n"
        "from astrocat.cli import main\n"
        "sys.argv = ['astrocat', *{args!r}]\n"
        "main()\n")


def _cli(args: list[str], hide_torch: bool = False, env: dict | None = None):
    import os

    code = _CLI.format(hide=hide_torch, args=[str(a) for a in args])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def _one_line_error(r, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_engine_torch_without_pytorch_is_one_clear_line(tmp_path):
    r = _cli(["infer", "-q", "--input", SAMPLE, "--out", tmp_path / "c.parquet",
              "--engine", "torch"], hide_torch=True)
    _one_line_error(r, "engine torch needs torch", "pip install 'astrocat[torch]'")
    r = _cli(["models", "check", "gz2-cnn", "--engine", "torch"], hide_torch=True)
    _one_line_error(r, "engine torch needs torch")


def test_cli_decode_gpu_needs_the_torch_engine(tmp_path):
    for engine in ("onnxruntime", "auto"):
        r = _cli(["infer", "-q", "--input", SAMPLE, "--out", tmp_path / "c.parquet",
                  "--engine", engine, "--decode", "gpu"])
        _one_line_error(r, "--decode gpu", "--engine torch")
    assert not (tmp_path / "c.parquet").exists()


def test_decode_resolution_never_imports_torch_unasked():
    """``--decode`` is decided in the driver; without the torch engine it needs no torch,
    and ``cpu`` never decodes on the GPU."""
    code = (
        "import sys\n"
        "from astrocat.errors import AstrocatError\n"
        "from astrocat.models.zoo import bundled\n"
        "from astrocat.pipeline.feed import gpu_decoded\n"
        "cards = {n: bundled()[n] for n in ('gz2-cnn', 'redshift-cnn1d')}\n"
        "ort = dict.fromkeys(cards, 'onnxruntime')\n"
        "assert gpu_decoded('auto', cards, ort) == ()\n"
        "assert gpu_decoded('cpu', cards, dict.fromkeys(cards, 'torch')) == ()\n"
        "for bad in ('gpu', 'nvjpeg'):\n"
        "    try:\n"
        "        gpu_decoded(bad, cards, ort)\n"
        "    except AstrocatError as exc:\n"
        "        print(exc)\n"
        "    else:\n"
        "        raise SystemExit('no error for ' + bad)\n"
    )
    r = _without_torch(code)
    assert "add --engine torch" in r.stdout and "unknown --decode 'nvjpeg'" in r.stdout


def test_decode_gpu_refuses_a_torch_engine_without_cuda(monkeypatch):
    torch = _torch()
    from astrocat.pipeline.feed import gpu_decoded

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("ASTROCAT_TORCH_DEVICE", raising=False)
    cards = {"gz2-cnn": bundled()["gz2-cnn"]}
    with pytest.raises(AstrocatError, match="needs the torch engine on a CUDA GPU.*"
                                            "ASTROCAT_TORCH_DEVICE=cpu"):
        gpu_decoded("gpu", cards, {"gz2-cnn": "torch"})
    assert gpu_decoded("auto", cards, {"gz2-cnn": "torch"}) == ()
    monkeypatch.setenv("ASTROCAT_TORCH_DEVICE", "cpu")  # the same path, on the CPU
    assert gpu_decoded("gpu", cards, {"gz2-cnn": "torch"}) == ("gz2-cnn",)
    assert gpu_decoded("auto", cards, {"gz2-cnn": "torch"}) == ()
    # a card whose preprocessing the GPU path does not reproduce is refused, not run
    odd = dataclasses.replace(cards["gz2-cnn"], input=dataclasses.replace(
        cards["gz2-cnn"].input, resize_filter="nearest"))
    with pytest.raises(AstrocatError, match="resize_filter 'nearest'"):
        gpu_decoded("gpu", {"gz2-cnn": odd}, {"gz2-cnn": "torch"})
    monkeypatch.setenv("ASTROCAT_TORCH_DEVICE", "tpu")
    with pytest.raises(AstrocatError, match="give cpu or cuda"):
        gpu_decoded("gpu", cards, {"gz2-cnn": "torch"})


def test_tta_views_of_a_device_tensor_are_numpy_s():
    torch = _torch()
    from astrocat.kernels.views import _D4, make_views

    x = np.random.default_rng(1).random((3, 5, 5, 2), dtype=np.float32)
    for layout, batch in (("NHWC", x), ("NCHW", x.transpose(0, 3, 1, 2))):
        got = make_views(torch.from_numpy(np.ascontiguousarray(batch)), _D4, layout)
        assert isinstance(got, torch.Tensor)
        assert np.array_equal(got.numpy(), make_views(batch, _D4, layout))


def _device_env(torch) -> dict[str, str]:
    """Where PyTorch sees CUDA the GPU path runs there (nvJPEG: the check a GPU machine
    makes; its bounds are measured on the CPU only); elsewhere on the CPU."""
    return {} if torch.cuda.is_available() else {"ASTROCAT_TORCH_DEVICE": "cpu"}


#: gz2-cnn on the 150 sample galaxies, GPU-decoding path (on this CPU: decode_jpeg is
#: libjpeg-turbo, the 1/2 DCT draft stood in by 2x2 pooling) against the CPU path
#: through ONNX Runtime, measured here (torch 2.14 CPU): vote fractions max 0.030, mean
#: 0.0017 (the decode alone: torch on the same GPU-decoded batch is within 6e-7 of ONNX
#: Runtime); ood_distance max 1.76 (mean 0.07; threshold 5.29, no ood_flag changed): the
#: input statistics' high-frequency power feels the pooling most. With --tta 4: means
#: max 0.027, <name>_std max 0.025, the calibrated intervals (<name>_lo, _hi, which
#: magnify the spread) max 0.157, mean 0.004; torch's views of the device tensor are
#: within 7e-6 of numpy's through ONNX Runtime.
DECODE_OUTPUT_MAX, DECODE_OOD_MAX, DECODE_INTERVAL_MAX = OUTPUT_MAX, 2.5, 0.25


def _compare(a, b) -> None:
    a, b = a.sort_by("source"), b.sort_by("source")
    assert a["source"].to_pylist() == b["source"].to_pylist()
    ok = np.array([s == "ok" for s in a["status"].to_pylist()])
    assert ok.tolist() == [s == "ok" for s in b["status"].to_pylist()]
    for col in [c for c in a.column_names if c.startswith("gz_")]:
        d = np.abs(a[col].to_numpy()[ok] - b[col].to_numpy()[ok]).max()
        bound = DECODE_INTERVAL_MAX if col.endswith(("_lo", "_hi")) else DECODE_OUTPUT_MAX
        assert d <= bound, (col, d)
    d = np.abs(a["ood_distance"].to_numpy()[ok] - b["ood_distance"].to_numpy()[ok]).max()
    assert d <= DECODE_OOD_MAX, d


def test_cli_infer_decode_gpu_matches_the_cpu_path(tmp_path):
    """``astrocat infer --engine torch --decode gpu`` on the sample galaxies: one row per
    input, each close to ONNX Runtime's on CPU-decoded pixels; the provenance says which
    models' JPEGs were GPU-decoded."""
    torch = _torch()
    import json

    import pyarrow.parquet as pq

    n = len(list(SAMPLE.glob("*.jpg")))
    gpu, cpu = tmp_path / "gpu.parquet", tmp_path / "cpu.parquet"
    r = _cli(["infer", "-q", "--input", SAMPLE, "--out", gpu, "--model", "gz2-cnn",
              "--engine", "torch", "--decode", "gpu"], env=_device_env(torch))
    assert r.returncode == 0, r.stderr
    r = _cli(["infer", "-q", "--input", SAMPLE, "--out", cpu, "--model", "gz2-cnn",
              "--engine", "onnxruntime"])
    assert r.returncode == 0, r.stderr
    a, b = pq.read_table(cpu), pq.read_table(gpu)
    assert a.num_rows == b.num_rows == n and b["status"].to_pylist() == ["ok"] * n
    _compare(a, b)
    prov = json.loads(pq.read_metadata(gpu).metadata[b"astrocat"])
    assert prov["gpu_decode"] == ["gz2-cnn"] and prov["models"]["gz2-cnn"]["engine"] == "torch"


def test_gpu_decoded_batches_reach_the_engine_as_device_tensors(tmp_path, monkeypatch):
    """In-process: every batch the torch engine runs is a tensor on its device (no host
    round trip of the pixels), TTA views included; a truncated JPEG is that item's error
    row, with the decoder's words, and every other input is a result."""
    torch = _torch()
    import pyarrow.parquet as pq

    import astrocat
    from astrocat.engines.torch import TorchEngine

    for k, v in _device_env(torch).items():
        monkeypatch.setenv(k, v)
    src = tmp_path / "g"
    src.mkdir()
    paths = sorted(SAMPLE.glob("*.jpg"))[:20]
    for p in paths:
        (src / p.name).write_bytes(p.read_bytes())
    bad = src / paths[7].name
    bad.write_bytes(bad.read_bytes()[:5000])  # a whole header, half the scan: truncated
    seen = []
    real = TorchEngine.run

    def run(self, batch):
        seen.append((type(batch), getattr(batch, "device", None), self.device))
        return real(self, batch)

    monkeypatch.setattr(TorchEngine, "run", run)
    tables = {}
    for engine, decode in (("torch", "gpu"), ("onnxruntime", "cpu")):
        out = tmp_path / f"{engine}.parquet"
        r = astrocat.infer(src, out, engine=engine, decode=decode, model="gz2-cnn", tta=4,
                           batch_size=8, progress=False)
        assert r.n_rows == 20 and r.n_errors == 1, r
        tables[engine] = pq.read_table(out)
    assert seen and all(t is torch.Tensor and d == e for t, d, e in seen), seen
    errors = {s: e for s, e, st in zip(*(tables["torch"][c].to_pylist() for c in
                                        ("source", "error", "status")), strict=True)
              if st == "error"}
    assert errors == {bad.name: "JPEG data is truncated or corrupt (Image is incomplete or "
                                "truncated)"} or (
        torch.cuda.is_available() and list(errors) == [bad.name]), errors
    _compare(tables["onnxruntime"], tables["torch"])
