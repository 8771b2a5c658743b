"""A user's own model: strict cards checked against the graph before any work, results
keyed by everything that changes them, failed work retried, and preprocessing that can
express third-party pipelines (per-channel normalisation, NCHW, fractional crops, zoom,
named resize filters with antialiasing)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from onnx_graphs import linear_image_graph
from PIL import Image
from preprocess_reference import crop_box, preprocess

from astrocat.cli import main
from astrocat.errors import CardError
from astrocat.models.card import load_card
from astrocat.models.zoo import bundled

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def _copy_gz2(tmp: Path) -> Path:
    dst = tmp / "my-gz"
    shutil.copytree(bundled()["gz2-cnn"].directory, dst)
    return dst / "card.toml"


def _edit(card: Path, old: str, new: str) -> None:
    text = card.read_text()
    assert old in text, old
    card.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def galaxies(sample_dir, tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("gal") / "galaxies"
    src.mkdir()
    for p in sorted((sample_dir / "galaxies").glob("*.jpg"))[:12]:
        shutil.copy(p, src / p.name)
    return src


# ----------------------------------------------------------------- finding 1: stale results


def test_a_changed_crop_recomputes_and_equals_a_fresh_run(galaxies, tmp_path):
    card = _copy_gz2(tmp_path)
    out = tmp_path / "c.parquet"
    code, _ = _run("infer", "-q", "--input", str(galaxies), "--out", str(out),
                   "--model", str(card))
    assert code == 0
    first = pq.read_table(out).column("gz_smooth").to_numpy()
    _edit(card, "crop_fraction = 0.5", "crop_fraction = 0.3")
    code, output = _run("infer", "--input", str(galaxies), "--out", str(out),
                        "--model", str(card))
    assert code == 0, output
    assert "(0 reused)" in output
    again = pq.read_table(out).column("gz_smooth").to_numpy()
    fresh_out = tmp_path / "fresh.parquet"
    assert _run("infer", "-q", "--input", str(galaxies), "--out", str(fresh_out),
                "--model", str(card))[0] == 0
    fresh = pq.read_table(fresh_out).column("gz_smooth").to_numpy()
    assert np.array_equal(again, fresh)
    assert np.abs(again - first).max() > 1e-3  # the crop really changed what the model saw


def test_a_description_change_reuses_results(galaxies, tmp_path):
    card = _copy_gz2(tmp_path)
    out = tmp_path / "c.parquet"
    assert _run("infer", "-q", "--input", str(galaxies), "--out", str(out),
                "--model", str(card))[0] == 0
    _edit(card, 'description = "', 'description = "(edited) ')
    code, output = _run("infer", "--input", str(galaxies), "--out", str(out),
                        "--model", str(card))
    assert code == 0 and re.search(r"(\d+) parts \(\1 reused\)|parts all reused", output), output


# ----------------------------------------------------------------- finding 2: failures cached


def test_a_failed_partition_is_retried_and_then_succeeds(galaxies, tmp_path, monkeypatch):
    """A task that fails (here: the engine raises in the worker) leaves error rows whose
    advice is to re-run; the re-run recomputes them instead of reusing the failed part."""
    from astrocat.pipeline import feed

    out = tmp_path / "c.parquet"
    real = feed.open_engine

    def broken(*args, **kwargs):
        raise RuntimeError("simulated: the GPU fell off the bus")

    monkeypatch.setattr(feed, "open_engine", broken)
    feed.reset()
    code, output = _run("infer", "--input", str(galaxies), "--out", str(out))
    assert code == 1, output
    assert "Traceback" not in output
    t = pq.read_table(out)
    assert set(t.column("status").to_pylist()) == {"error"}
    msg = t.column("error").to_pylist()[0]
    assert "simulated: the GPU fell off the bus" in msg and "re-run" in msg
    assert "errors.log" in output  # details go to a log the message names
    monkeypatch.setattr(feed, "open_engine", real)
    code, output = _run("infer", "--input", str(galaxies), "--out", str(out))
    assert code == 0, output
    assert "(0 reused)" in output
    assert set(pq.read_table(out).column("status").to_pylist()) == {"ok"}


# ----------------------------------------------------------------- findings 3-7: strict cards


@pytest.fixture(scope="module")
def nchw_model(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    d = tmp_path_factory.mktemp("nchw")
    w, b = linear_image_graph(d / "model.onnx", 48, 30, layout="NCHW")
    return d, w, b


def _card_text(onnx: Path, *, layout: str = "NCHW", shape: str = "[3, 48, 48]",
               outputs: list[str] | None = None, extra_input: str = "") -> str:
    from astrocat.models.card import sha256_file

    outputs = outputs if outputs is not None else [f"score_{i}" for i in range(30)]
    outs = "".join(f'\n[[outputs]]\nname = "{n}"\n' for n in outputs)
    return f'''name = "third-party"
version = "1.0"
task = "morphology"
[input]
kind = "rgb_image"
layout = "{layout}"
shape = {shape}
preprocessing = "scale_255_standardize"
mean = {IMAGENET_MEAN}
std = {IMAGENET_STD}
crop_fraction = 0.75
{extra_input}
[files]
onnx = "{onnx.name}"
[sha256]
onnx = "{sha256_file(onnx)}"
{outs}'''


@pytest.mark.parametrize("change, phrases", [
    ({"layout": "NHWC", "shape": "[48, 48, 3]"}, ["layout", "NCHW", "[3, 48, 48]"]),
    ({"layout": "NHWC", "shape": "[3, 48, 48]"}, ["layout", "NCHW"]),
    ({"shape": "[3, 64, 64]"}, ["shape", "[3, 48, 48]"]),
    ({"outputs": [f"s{i}" for i in range(29)]}, ["outputs", "30", "29"]),
    ({"outputs": [f"s{i}" for i in range(31)]}, ["outputs", "30", "31"]),
    ({"outputs": ["s"] * 30}, ["outputs", "'s'", "more than once"]),
    ({"outputs": ["status"] + [f"s{i}" for i in range(29)]}, ["status", "catalog column"]),
    ({"outputs": ["object_id"] + [f"s{i}" for i in range(29)]}, ["object_id"]),
    ({"extra_input": "crop_fracton = 0.83"}, ["crop_fracton", "crop_fraction"]),
    ({"extra_input": "zoom = 0.5"}, ["zoom", ">= 1"]),
    ({"extra_input": 'resize_filter = "bilinaer"'}, ["resize_filter", "bilinear"]),
])
def test_a_mismatched_card_exits_2_naming_the_field_before_reading_inputs(
        nchw_model, tmp_path, change, phrases):
    d, _, _ = nchw_model
    card = d / f"card-{abs(hash(str(change)))}.toml"
    card.write_text(_card_text(d / "model.onnx", **change))
    # the input does not even exist: the card must be refused first
    code, output = _run("infer", "--input", str(tmp_path / "no-such-dir"), "--out",
                        str(tmp_path / "c.parquet"), "--model", str(card))
    assert code == 2, output
    assert "Traceback" not in output
    for p in phrases:
        assert p in output, (p, output)


def test_unknown_top_level_and_output_keys_and_types(nchw_model):
    d, _, _ = nchw_model
    card = d / "typo.toml"
    card.write_text(_card_text(d / "model.onnx").replace('task = "morphology"',
                                                         'task = "morphology"\ndefualt_for = []'))
    with pytest.raises(CardError, match="defualt_for.*default_for"):
        load_card(card)
    card.write_text(_card_text(d / "model.onnx").replace('name = "score_0"',
                                                         'name = "score_0"\nunits = "mag"'))
    with pytest.raises(CardError, match="units.*unit"):
        load_card(card)
    card.write_text(_card_text(d / "model.onnx").replace("crop_fraction = 0.75",
                                                         'crop_fraction = "most"'))
    with pytest.raises(CardError, match="crop_fraction"):
        load_card(card)
    card.write_text(_card_text(d / "model.onnx").replace(f"mean = {IMAGENET_MEAN}",
                                                         "mean = [0.5, 0.5]"))
    with pytest.raises(CardError, match="mean.*3"):
        load_card(card)


# ----------------------------------------------------------------- findings 6, 8, 9


def _galaxy_png(path: Path, side: int = 150, seed: int = 1, noise: float = 12) -> np.ndarray:
    """Smooth structure plus pixel noise (``noise`` 255: every pixel independent)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    img = np.stack([128 + 90 * np.sin(xx / (5 + 3 * c) + yy / (7 + c)) for c in range(3)], -1)
    img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def test_third_party_graph_from_models_init_matches_a_numpy_reference(nchw_model, tmp_path):
    d, w, b = nchw_model
    model = tmp_path / "tp" / "model.onnx"
    model.parent.mkdir()
    shutil.copy(d / "model.onnx", model)
    code, output = _run("models", "init", str(model))
    assert code == 0, output
    card = model.parent / "card.toml"
    text = card.read_text()
    assert 'layout = "NCHW"' in text and "shape = [3, 48, 48]" in text  # read from the graph
    assert text.count("[[outputs]]") == 30
    # the user edits the starter card: output names (an unedited one fails the check),
    # normalisation, crop, zoom, task
    text = (text.replace('name = "out_', 'name = "score_')
            .replace('preprocessing = "scale_255"', 'preprocessing = "scale_255_standardize"')
            .replace("mean = 0.0", f"mean = {IMAGENET_MEAN}")
            .replace("std = 1.0", f"std = {IMAGENET_STD}")
            .replace("crop_fraction = 1.0", "crop_fraction = 0.75")
            .replace("zoom = 1.0", "zoom = 1.2"))
    card.write_text(text)
    code, output = _run("models", "check", str(card))
    assert code == 0, output
    assert "score_0" in output or "out_0" in output

    images = tmp_path / "imgs"
    images.mkdir()
    # sharp pixel noise: a quarter-pixel error in the crop moves every output
    pixels = [_galaxy_png(images / f"{i}.png", seed=i, noise=80) for i in range(3)]
    out = tmp_path / "c.parquet"
    code, output = _run("infer", "-q", "--input", str(images), "--out", str(out),
                        "--model", str(card))
    assert code == 0, output
    t = pq.read_table(out)
    names = [f.name for f in t.schema if f.name.startswith(("out_", "score_"))]
    assert len(names) == 30
    got = np.column_stack([t.column(n).to_numpy() for n in names])
    order = [int(s) for s in t.column("object_id").to_pylist()]

    def reference(img: np.ndarray, crop: float = 0.75) -> np.ndarray:
        x = preprocess(img, 48, crop, 1.2, "bilinear", True) / 255.0
        x = (x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        return x.transpose(2, 0, 1).reshape(-1) @ w + b  # NCHW

    ref = np.stack([reference(pixels[i]) for i in order])
    err = np.abs(got - ref).max()
    assert err < 0.03, err
    # a negative control: a crop rounded to whole pixels is measurably different
    rounded = round(0.75 * 150 / 1.2) / 150 * 1.2  # 94 px instead of 93.75
    off = np.stack([reference(pixels[i], rounded) for i in order])
    assert np.abs(off - ref).max() > 3 * err


@pytest.mark.parametrize("name, antialias", [("bilinear", True), ("bicubic", True),
                                             ("lanczos", True), ("box", True),
                                             ("bilinear", False), ("bicubic", False)])
@pytest.mark.parametrize("crop, zoom, size", [(0.75, 1.2, 48), (0.5, 1.0, 64),
                                              (1.0, 1.0, 200), (0.61, 1.0, 37)])
def test_crop_zoom_and_resize_filters_match_the_reference(tmp_path, name, antialias, crop,
                                                          zoom, size):
    from astrocat.sources.readers import read_rgb

    img = _galaxy_png(tmp_path / "g.png", side=150)
    got = read_rgb(str(tmp_path / "g.png"), size, crop, zoom=zoom, resize_filter=name,
                   antialias=antialias).astype(float)
    ref = np.clip(preprocess(img, size, crop, zoom, name, antialias), 0, 255)
    # Pillow resamples 8-bit images in two 8-bit passes: one level of rounding each
    assert np.abs(got - ref).max() <= 2.0, np.abs(got - ref).max()
    assert np.abs(got - ref).mean() < 0.6


def test_fractional_crop_box_is_centred():
    assert crop_box(424, 424, 1 / 1.2) == pytest.approx((35.33333, 35.33333, 388.66667,
                                                        388.66667), abs=1e-4)


def test_per_channel_normalisation_and_layouts():
    from astrocat.kernels.preprocess import prepare
    from astrocat.kinds import Kind
    from astrocat.models.card import InputSpec

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    nhwc = InputSpec(Kind.RGB_IMAGE, (4, 4, 3), "scale_255_standardize",
                     mean=tuple(IMAGENET_MEAN), std=tuple(IMAGENET_STD))
    want = (raw / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(prepare(raw, nhwc), want, atol=1e-5)
    nchw = InputSpec(Kind.RGB_IMAGE, (3, 4, 4), "scale_255_standardize", layout="NCHW",
                     mean=tuple(IMAGENET_MEAN), std=tuple(IMAGENET_STD))
    assert np.allclose(prepare(raw, nchw), want.transpose(0, 3, 1, 2), atol=1e-5)
    per = InputSpec(Kind.RGB_IMAGE, (4, 4, 3), "standardize", mean=(10.0, 20.0, 30.0),
                    std=(2.0, 4.0, 8.0))
    assert np.allclose(prepare(raw, per), (raw - [10, 20, 30]) / np.array([2, 4, 8]))


def test_models_check_reports_the_output_range_of_a_bundled_model(sample_dir):
    code, output = _run("models", "check", "gz2-cnn", "--input", str(sample_dir / "galaxies"))
    assert code == 0, output
    assert "gz_smooth" in output and "min" in output and "max" in output


def test_a_transient_read_error_is_retried_but_a_corrupt_file_is_kept(galaxies, tmp_path,
                                                                      deny_reading):
    src = tmp_path / "survey"
    shutil.copytree(galaxies, src)
    good = sorted(src.glob("*.jpg"))
    data = good[1].read_bytes()
    (src / "corrupt.jpg").write_bytes(data[: len(data) // 3])  # a truncated download
    deny_reading(good[0])
    out = tmp_path / "c.parquet"
    code, output = _run("infer", "--input", str(src), "--out", str(out))
    assert code == 1, output
    t = pq.read_table(out).to_pydict()
    err = {s: e for s, e, st in zip(t["source"], t["error"], t["status"], strict=True)
           if st == "error"}
    assert set(err) == {good[0].name, "corrupt.jpg"}
    assert "permission denied" in err[good[0].name] and "retried" in err[good[0].name]
    assert "truncated or corrupt" in err["corrupt.jpg"]

    deny_reading(None)  # permissions fixed
    code, output = _run("infer", "--input", str(src), "--out", str(out))
    assert code == 1 and "(0 reused)" in output, output
    t = pq.read_table(out).to_pydict()
    assert [s for s, st in zip(t["source"], t["status"], strict=True) if st == "error"] == [
        "corrupt.jpg"]
    code, output = _run("infer", "--input", str(src), "--out", str(out))
    assert code == 1 and re.search(r"(\d+) parts \(\1 reused\)|parts all reused",
                                   output), output  # kept
