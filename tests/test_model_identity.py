"""Issue 31 "Safe by default": a trained model is the user's own (name, version, recipe),
a held-out score no better than its trivial baseline is said aloud and kept in the card,
and wrong arguments get one line a person can act on (exit 2) before TensorFlow loads."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from onnx_graphs import linear_image_graph

from astrocat import __version__
from astrocat.cli import main
from astrocat.errors import AstrocatError, CardError
from astrocat.models.card import load_card
from astrocat.models.zoo import bundled


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


@pytest.fixture
def no_tensorflow(monkeypatch):
    """Fail the test if training gets as far as importing TensorFlow."""
    from astrocat.models import train

    def refuse():
        raise AssertionError("TensorFlow imported before the arguments were checked")

    monkeypatch.setattr(train, "import_tensorflow", refuse)


# ------------------------------------------------------------- the card's warnings field


def test_bundled_cards_load_unchanged_with_no_warnings():
    cards = bundled()
    assert {"gz2-cnn", "redshift-cnn1d", "lens-lastro", "cosmo-cnn"} <= set(cards)
    for card in cards.values():
        assert card.warnings == [] and isinstance(card.warnings, list)


def _copy_card(tmp_path: Path, name: str = "cosmo-cnn") -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundled()[name].directory, dst)
    return dst / "card.toml"


def test_training_warnings_load_and_models_show_repeats_them(tmp_path):
    card = _copy_card(tmp_path)
    text = card.read_text()
    text = text.replace("[training]\n", '[training]\nwarnings = ["held-out rmse_omega_m '
                        '0.2 is worse than the prior-centre baseline 0.1"]\n', 1)
    card.write_text(text)
    loaded = load_card(card)
    assert loaded.warnings == ["held-out rmse_omega_m 0.2 is worse than the prior-centre "
                               "baseline 0.1"]
    r = CliRunner().invoke(main, ["models", "show", str(card)])
    assert r.exit_code == 0, r.output
    assert "warning: held-out rmse_omega_m 0.2 is worse" in r.stderr
    assert "warning:" not in r.stdout  # the card itself goes to stdout, the warnings to stderr


def test_a_malformed_warnings_field_is_a_card_error(tmp_path):
    card = _copy_card(tmp_path)
    card.write_text(card.read_text().replace("[training]\n", '[training]\nwarnings = "x"\n', 1))
    with pytest.raises(CardError, match="warnings should be a list of strings"):
        load_card(card)


# ------------------------------------------------------------------ baseline warnings


def test_a_score_worse_than_its_baseline_is_a_warning():
    from astrocat.models.train import baseline_warnings

    got = baseline_warnings("morphology", {"rmse": 0.211, "baseline_rmse_training_mean": 0.178})
    assert len(got) == 1
    assert got[0].startswith("held-out rmse 0.211 is worse than the mean-prediction "
                             "baseline 0.178")
    assert baseline_warnings("morphology", {"rmse": 0.1, "baseline_rmse_training_mean": 0.178}
                             ) == []
    # redshift: mae against the median; lens: higher is better; cosmology: each parameter
    assert "mae 0.3" in baseline_warnings("redshift", {"mae": 0.3, "baseline_mae_median": 0.2})[0]
    assert baseline_warnings("lens", {"auroc": 0.93, "baseline_auroc": 0.5}) == []
    lens = baseline_warnings("lens", {"auroc": 0.42, "baseline_auroc": 0.5})
    assert len(lens) == 1 and "auroc 0.42 is worse than the chance baseline 0.5" in lens[0]
    assert "no better than" in baseline_warnings("lens", {"auroc": 0.5, "baseline_auroc": 0.5})[0]
    cosmo = baseline_warnings("cosmology", {
        "rmse_omega_m": 0.2, "baseline_rmse_omega_m": 0.1,
        "rmse_sigma_8": 0.05, "baseline_rmse_sigma_8": 0.1})
    assert len(cosmo) == 1 and "rmse_omega_m 0.2" in cosmo[0]
    # too few test items to measure (no lens among them): said, not passed silently
    nan = baseline_warnings("lens", {"auroc": math.nan, "baseline_auroc": 0.5, "n_test": 4})
    assert len(nan) == 1 and "could not be measured" in nan[0]
    # close numbers get the digits that tell them apart
    close = baseline_warnings("morphology", {"rmse": 0.21112,
                                             "baseline_rmse_training_mean": 0.21101})
    assert "rmse 0.2111 is" in close[0] and "baseline 0.2110 (" in close[0]


# ------------------------------------------------------------------------ model names


def test_a_trained_model_is_named_after_its_folder_or_name(tmp_path):
    from astrocat.models.train import model_name

    assert model_name(tmp_path / "mym") == "mym"
    assert model_name(tmp_path / "My Gz2 run (v2)") == "My-Gz2-run-v2"
    assert model_name(tmp_path / "x", "gz2-mine") == "gz2-mine"
    with pytest.raises(AstrocatError, match="--name 'my model'"):
        model_name(tmp_path / "x", "my model")
    with pytest.raises(AstrocatError, match="'gz2-cnn' is the name of a bundled model"):
        model_name(tmp_path / "gz2-cnn")
    with pytest.raises(AstrocatError, match="bundled model"):
        model_name(tmp_path / "x", "lens-lastro")
    # rebuilding the zoo (scripts/build_zoo.sh) trains into the bundled folder itself
    assert model_name(bundled()["gz2-cnn"].directory) == "gz2-cnn"


# ------------------------------------------------- argument errors before TensorFlow


def test_redshift_training_on_a_directory_says_which_file_to_pass(tmp_path, no_tensorflow):
    spectra = tmp_path / "spectra"
    spectra.mkdir()
    (spectra / "spectra.csv").write_text("z,flux_0,flux_1\n0.1,1,2\n0.2,3,4\n")
    code, output = _run("train", "redshift", "--data", str(spectra), "--out",
                        str(tmp_path / "m"))
    assert code == 2, output
    assert "Errno" not in output
    assert "redshift training reads a spectra table file" in output
    assert f"{spectra} is a directory" in output and f"e.g. {spectra / 'spectra.csv'}" in output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("recipe,make,phrase", [
    ("redshift", lambda d: _file(d / "a.jpg", b"\xff\xd8\xff\xe0junk"), "is a JPEG image"),
    ("lens", lambda d: _file(d / "labels.csv", b"ID,is_lens\n1,0\n"),
     "is a file — pass the data set's directory, e.g."),
    ("cosmology", lambda d: _file(d / "f.parquet", b"PAR1...."), "is a file"),
    ("morphology", lambda d: d, "has no training_solutions_rev1.csv"),
    ("lens", lambda d: d, "has no CSV with columns ID, is_lens"),
    ("cosmology", lambda d: d, "has no CSV with columns ID, omega_m, sigma_8"),
])
def test_a_wrong_data_layout_is_one_line_before_tensorflow(recipe, make, phrase, tmp_path,
                                                           no_tensorflow):
    data = make(tmp_path)
    code, output = _run("train", recipe, "--data", str(data), "--out", str(tmp_path / "m"))
    assert code == 2, output
    assert output.startswith(f"error: {recipe} training reads ") and phrase in output, output
    assert output.count("\n") == 1


def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_a_bad_name_or_version_is_refused_before_tensorflow(sample_dir, tmp_path,
                                                            no_tensorflow):
    galaxies = str(sample_dir / "galaxies")
    code, output = _run("train", "morphology", "--data", galaxies, "--out",
                        str(tmp_path / "gz2-cnn"))
    assert code == 2 and "pass --name" in output, output
    code, output = _run("train", "morphology", "--data", galaxies, "--out",
                        str(tmp_path / "m"), "--model-version", "one point oh")
    assert code == 2 and "--model-version 'one point oh'" in output, output


def test_tensorflow_imports_without_start_up_noise():
    pytest.importorskip("tensorflow")
    code = ("import os; from astrocat.models.train import import_tensorflow; "
            "keras, tf = import_tensorflow(); tf.constant(1.0) + 1; "
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("ASTROCAT_DEBUG", "TF_CPP_MIN_LOG_LEVEL")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
    assert r.stderr == "", r.stderr  # no absl preamble, no CUDA probe, no cuInit error


# ------------------------------------------------------------------ compile --precision


def test_compile_fp16_without_a_gpu_exits_2_having_written_nothing(tmp_path, monkeypatch):
    import astrocat.engines.base as base

    monkeypatch.setattr(base, "gpu_available", lambda: False)
    out = tmp_path / "compiled"
    code, output = _run("compile", "cosmo-cnn", "--precision", "fp16", "--out", str(out))
    assert code == 2, output
    assert "fp16 needs a TensorRT engine on an NVIDIA GPU" in output
    assert not out.exists()
    code, output = _run("compile", "cosmo-cnn", "--precision", "fp16", "--no-tensorrt",
                        "--out", str(out))
    assert code == 2 and "--no-tensorrt" in output, output


# ---------------------------------------------------------------- models check starter


def test_models_check_warns_on_an_unedited_starter_card(tmp_path):
    model = tmp_path / "mine" / "model.onnx"
    model.parent.mkdir()
    linear_image_graph(model, 16, 3)
    code, output = _run("models", "init", str(model))
    assert code == 0, output
    card = model.parent / "card.toml"
    code, output = _run("models", "check", str(card))
    assert code == 1, output
    assert "warning:" in output and "out_0, out_1, out_2 still have the starter names" in output
    assert "name each [[outputs]] in the card" in output
    # named: the check passes
    card.write_text(card.read_text().replace('name = "out_', 'name = "score_'))
    code, output = _run("models", "check", str(card))
    assert code == 0, output
    assert "warning:" not in output


# ---------------------------------------------------------- training end to end (~20 s)


def test_a_trained_model_has_its_own_identity_and_its_baseline_warning(tmp_path,
                                                                       monkeypatch):
    pytest.importorskip("tensorflow")
    from astrocat.models import train
    from astrocat.simulate import simulate

    real = train.evaluate

    def worse_than_baseline(*args):  # the numbers, whatever one epoch gives
        return {**real(*args), "rmse": 0.211, "baseline_rmse_training_mean": 0.178}

    monkeypatch.setattr(train, "evaluate", worse_than_baseline)
    data = tmp_path / "galaxies"
    simulate("galaxies", 30, data, seed=7, progress=False, workers=1)
    out = tmp_path / "my gz run"
    r = CliRunner().invoke(main, ["train", "morphology", "--data", str(data), "--out", str(out),
                                  "--epochs", "1", "--batch-size", "8",
                                  "--model-version", "2.1.0"])
    assert r.exit_code == 0, r.output
    card = load_card(out)
    card.verify()
    assert card.name == "my-gz-run" and card.version == "2.1.0"
    assert card.training["recipe"] == "morphology" and card.training["parent"] == ""
    assert card.training["astrocat_version"] == __version__
    assert card.metrics["rmse"] == 0.211
    assert len(card.warnings) == 1
    assert card.warnings[0].startswith("held-out rmse 0.211 is worse than the mean-prediction "
                                       "baseline 0.178")
    lines = r.stderr.splitlines()
    assert lines[-1] == f"warning: {card.warnings[0]}"  # last, where it is seen
    assert "gz2-cnn" not in (out / "card.toml").read_text().split("[input]")[0]
