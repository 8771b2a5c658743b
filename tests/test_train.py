"""Each training recipe runs end to end (one short epoch, tiny simulated data in the real
layouts) and writes weights, ONNX and a valid card that `infer` can use."""

from __future__ import annotations

import pytest

from astrocat.models.card import load_card
from astrocat.simulate import simulate

pytest.importorskip("tensorflow")

CASES = {
    "morphology": ("galaxies", 40, lambda d: d),
    "redshift": ("spectra", 200, lambda d: d / "spectra.parquet"),
    "lens": ("lenses", 40, lambda d: d),
    "cosmology": ("fields", 40, lambda d: d),
}


@pytest.mark.parametrize("recipe", list(CASES))
def test_recipe_trains_and_writes_a_card(recipe, tmp_path):
    from astrocat.models.train import train

    kind, n, data_of = CASES[recipe]
    data = tmp_path / kind
    simulate(kind, n, data, seed=7, progress=False, workers=1)
    out = tmp_path / "model"
    metrics = train(recipe, data_of(data), out, epochs=1, batch_size=8, seed=1,
                    log=lambda m: None)
    card = load_card(out)
    card.verify()
    assert card.task == recipe and set(card.files) == {"keras", "onnx"}
    # the user's own model, not the bundled one the recipe made (issue 31)
    assert card.name == "model" and card.version == "1.0.0"
    assert card.training["recipe"] == recipe and card.training["parent"] == ""
    assert isinstance(card.warnings, list)
    assert card.training["epochs_run"] == 1
    assert card.training["onnx_max_deviation_from_keras"] < 1e-4
    assert metrics == card.metrics
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(card.weights("keras")) as z:  # no optimizer state shipped
        with h5py.File(io.BytesIO(z.read("model.weights.h5"))) as h5:
            assert "optimizer" not in h5, list(h5)
    expected = {"morphology": "rmse", "redshift": "sigma_nmad", "lens": "auroc",
                "cosmology": "rmse_omega_m"}[recipe]
    assert expected in metrics
    assert "user data" in card.training["data"]  # no simulation.json: honest provenance
    # the reference statistics of the out-of-domain flag come with every trained model
    assert card.reference is not None and card.reference_path.is_file()
    assert card.reference.threshold > 0 and "all inputs" in card.reference.record["data"]
    assert card.invariances == (() if recipe == "redshift" else ("rot90", "flip"))
    assert card.logits == (["p_lens"] if recipe == "lens" else [])
