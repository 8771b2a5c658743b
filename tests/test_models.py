"""Architectures, cards and the bundled zoo."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from astrocat.errors import CardError
from astrocat.kernels.gz_tree import galaxy_zoo2
from astrocat.models.card import load_card
from astrocat.models.zoo import bundled, resolve

keras = pytest.importorskip("keras")


@pytest.mark.parametrize("name,count", [("gz_custom_cnn", 1_652_453),
                                        ("redshift_cnn1d", 699_073)])
def test_published_parameter_counts(name, count):
    from astrocat.models.architectures import ARCHITECTURES, PUBLISHED_PARAMETERS

    assert PUBLISHED_PARAMETERS[name] == count
    assert ARCHITECTURES[name]().count_params() == count


def test_seed001_non_trainable_parameters():
    from astrocat.models.architectures import gz_custom_cnn

    model = gz_custom_cnn()
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert non_trainable == 64  # seed 001 Table 2: BatchNorm moving mean/variance


def test_gz_output_layer_obeys_the_tree_by_construction():
    from astrocat.models.architectures import gz_custom_cnn

    model = gz_custom_cnn()
    x = np.random.default_rng(0).random((16, 64, 64, 3), dtype=np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (16, 37)
    assert galaxy_zoo2().violations(y).max() < 1e-5


def test_bundled_zoo_has_the_four_models_with_valid_cards():
    cards = bundled()
    assert {"gz2-cnn", "redshift-cnn1d", "lens-lastro", "cosmo-cnn"} <= set(cards)
    for card in cards.values():
        card.verify()
        assert "SIMULATED" in card.training["data"]
        assert card.metrics


def test_card_errors_name_the_problem(tmp_path):
    src = bundled()["cosmo-cnn"].directory
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    text = (dst / "card.toml").read_text()

    (dst / "card.toml").write_text(text.replace('task = "cosmology"', 'task = "astrology"'))
    with pytest.raises(CardError, match="task 'astrology'"):
        load_card(dst)

    (dst / "card.toml").write_text(text.replace("[input]", "[input_]"))
    with pytest.raises(CardError, match="unknown field 'input_'; did you mean 'input'"):
        load_card(dst)

    import tomllib

    import tomli_w

    data = tomllib.loads(text)
    del data["input"]
    (dst / "card.toml").write_text(tomli_w.dumps(data))
    with pytest.raises(CardError, match="missing field 'input'"):
        load_card(dst)

    (dst / "card.toml").write_text(text)
    with (dst / "model.onnx").open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(CardError, match="sha256"):
        resolve(str(dst)).verify()

    with pytest.raises(CardError, match="unknown model"):
        resolve("definitely-not-a-model")
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"x")
    with pytest.raises(CardError, match="has no model card"):
        resolve(str(bare))


def test_users_model_by_card_path_runs(tmp_path, sample_dir):
    from click.testing import CliRunner

    from astrocat.cli import main

    dst = tmp_path / "my-model"
    shutil.copytree(bundled()["lens-lastro"].directory, dst)
    text = (dst / "card.toml").read_text().replace('name = "lens-lastro"', 'name = "my-lens"')
    (dst / "card.toml").write_text(text)
    out = tmp_path / "c.parquet"
    r = CliRunner().invoke(main, ["infer", "-q", "--input", str(sample_dir / "lenses"),
                                  "--out", str(out), "--model", str(dst / "card.toml"),
                                  "--workers", "1"])
    assert r.exit_code == 0, r.output
    import pyarrow.parquet as pq

    t = pq.read_table(out)
    assert set(t.column("model").to_pylist()) == {"my-lens"}


def test_tensorflow_engine_matches_onnxruntime():
    from astrocat.engines.base import open_engine

    card = bundled()["redshift-cnn1d"]
    x = np.random.default_rng(0).random((8, *card.input.shape), dtype=np.float32)
    a = open_engine(card, "onnxruntime").predict(x)
    b = open_engine(card, "tensorflow").predict(x)
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime():
    from astrocat.engines.base import gpu_available, open_engine

    if not gpu_available():
        pytest.skip("no NVIDIA GPU with TensorRT on this machine")
    card = bundled()["gz2-cnn"]
    x = np.random.default_rng(0).random((32, *card.input.shape), dtype=np.float32)
    a = open_engine(card, "onnxruntime").predict(x)
    b = open_engine(card, "tensorrt").predict(x)
    assert np.abs(a - b).max() < 1e-3


def test_compile_exports_checked_onnx_and_skips_tensorrt_without_gpu(tmp_path):
    from click.testing import CliRunner

    from astrocat.cli import main
    from astrocat.engines.base import gpu_available

    out = tmp_path / "compiled"
    r = CliRunner().invoke(main, ["compile", "cosmo-cnn", "--out", str(out), "--no-tensorrt"])
    assert r.exit_code == 0, r.output
    assert "max |ONNX - Keras|" in r.output
    card = load_card(out)
    card.verify()
    x = np.random.default_rng(0).random((4, 64, 64, 1), dtype=np.float32)
    from astrocat.engines.base import open_engine

    ref = open_engine(bundled()["cosmo-cnn"], "onnxruntime").predict(x)
    assert np.abs(open_engine(card, "onnxruntime").predict(x) - ref).max() < 1e-4
    if not gpu_available():
        r = CliRunner().invoke(main, ["compile", "cosmo-cnn", "--out", str(out), "--tensorrt"])
        assert r.exit_code == 2 and "needs an NVIDIA GPU" in r.output
