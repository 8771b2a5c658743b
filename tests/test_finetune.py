"""Fine-tuning (issue 27, item 2): ``astrocat train finetune --from MODEL`` gives a
bundled model a new head for the user's own labels (a folder per class, or a CSV of
class names or vote fractions) and writes a model ``infer`` and ``summarize`` use.

One fine-tune per data layout, made once for the module on tiny simulated galaxies (a
few epochs: the pipeline, not the science, is under test); the mistakes are refused
before TensorFlow loads.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import astrocat
from astrocat.cli import main
from astrocat.models.card import load_card, sha256_file
from astrocat.models.zoo import bundled
from astrocat.simulate.galaxies import simulate

pytest.importorskip("tensorflow")

N_GALAXIES = 90
#: A spiral: at least 0.3 of the weighted votes say it has spiral arms (GZ2 Class4.1).
SPIRAL_ARMS = 0.3


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def galaxies(tmp_path_factory) -> Path:
    """Simulated galaxies in the Kaggle layout (<GalaxyID>.jpg + the vote fractions)."""
    out = tmp_path_factory.mktemp("galaxies") / "kaggle"
    simulate(N_GALAXIES, out, seed=5, progress=False, workers=1)
    return out


@pytest.fixture(scope="module")
def classes(galaxies, tmp_path_factory) -> Path:
    """The same galaxies as a folder per class: spirals/ and others/."""
    out = tmp_path_factory.mktemp("classes") / "labelled"
    for row in csv.DictReader(open(galaxies / "training_solutions_rev1.csv")):
        label = "spirals" if float(row["Class4.1"]) >= SPIRAL_ARMS else "others"
        (out / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(galaxies / f"{row['GalaxyID']}.jpg", out / label)
    assert min(len(list((out / c).iterdir())) for c in ("spirals", "others")) >= 15
    return out


@pytest.fixture(scope="module")
def finetuned(classes, tmp_path_factory) -> tuple[Path, str]:
    """gz2-cnn fine-tuned on the class folders, from the command line."""
    out = tmp_path_factory.mktemp("models") / "spiral-finder"
    code, said = _cli("train", "finetune", "--from", "gz2-cnn", "--data", classes,
                      "--out", out, "--head-epochs", 8, "--epochs", 2, "--batch-size", 16)
    assert code == 0, said
    return out, said


@pytest.fixture(scope="module")
def fractions(galaxies, tmp_path_factory):
    """gz2-cnn fine-tuned from Python on two vote-fraction columns of the Kaggle CSV."""
    out = tmp_path_factory.mktemp("models") / "smooth-or-disk"
    lines: list[str] = []
    card = astrocat.train("finetune", data=galaxies / "training_solutions_rev1.csv",
                          out=out, from_model="gz2-cnn", label_columns="Class1.1,Class1.2",
                          head_epochs=1, epochs=1, log=lines.append)
    return card, lines


def test_the_class_folders_make_a_model_with_a_strict_card(finetuned, classes):
    out, said = finetuned
    card = load_card(out)
    assert card.output_names == ["p_others", "p_spirals"]  # classes sorted by folder
    assert all(o.ucd.startswith("stat.probability") and o.description for o in card.outputs)
    parent = bundled()["gz2-cnn"]
    assert card.training["recipe"] == "finetune"
    digest = parent.sha256["onnx"][:12]
    assert card.training["parent"] == f"gz2-cnn {parent.version} sha256:{digest}"
    assert card.task == "morphology" and card.default_for == ()
    assert card.invariances == parent.invariances and card.input == parent.input
    t = card.training
    assert t["n_train"] + t["n_validation"] + t["n_test"] == N_GALAXIES
    assert t["n_test"] == card.metrics["n_test"] >= 2
    assert 1 <= t["epochs_head"] <= 8 and 1 <= t["epochs_full"] <= 2
    assert str(classes) in t["data"] and t["command"]
    assert t["onnx_max_deviation_from_keras"] < 1e-4
    assert {"accuracy", "baseline_accuracy_majority", "auroc_p_spirals",
            "baseline_auroc"} <= set(card.metrics)
    assert card.metrics["auroc_p_spirals"] > 0.6  # the parent's features know spiral arms
    assert "finetune: head epoch 1/8" in said and "Traceback" not in said
    # the out-of-domain reference describes the user's images, not the parent's
    assert card.reference is not None and card.reference_path.is_file()
    assert sha256_file(card.reference_path) != sha256_file(parent.reference_path)
    assert str(classes) in card.reference.record["data"]
    code, checked = _cli("models", "check", out)
    assert "card and graph agree" in checked
    assert code == (1 if card.warnings else 0), checked  # 1 only for baseline warnings


def test_the_new_model_runs_in_infer_and_summarize(finetuned, classes, tmp_path):
    out, _ = finetuned
    catalog = tmp_path / "X.parquet"
    code, said = _cli("infer", "--quiet", "--input", classes / "spirals", "--out", catalog,
                      "--model", out)
    assert code == 0, said
    t = pq.read_table(catalog).to_pandas()
    assert len(t) == len(list((classes / "spirals").iterdir()))
    assert set(t["model"]) == {"spiral-finder"} and set(t["status"]) == {"ok"}
    assert np.allclose(t["p_spirals"] + t["p_others"], 1, atol=1e-5)
    assert np.isfinite(t["ood_distance"]).all()
    code, said = _cli("summarize", catalog)
    assert code == 0 and "Traceback" not in said, said
    # its own reference: the run's drift is tested against the user's held-out images
    drift = astrocat.open_catalog(catalog).provenance["models"]["spiral-finder"]["drift"]
    assert drift["n"] == len(t) and "reference" in drift


def test_the_new_model_runs_in_a_job_file(finetuned, classes, tmp_path):
    """A nightly job names the fine-tuned model by its card path, like any user model."""
    out, _ = finetuned
    job = tmp_path / "job.toml"
    job.write_text(f"""[job]
name = "spirals"
input = ["{classes}"]
out = "{tmp_path / 'store'}"
layout = "dataset"
models = ["{out / 'card.toml'}"]
""")
    code, said = _cli("run", job)
    assert code == 0, said
    cat = astrocat.open_catalog(tmp_path / "store")
    t = cat.to_pandas()
    assert set(t["model"]) == {"spiral-finder"} and len(t) == sum(
        1 for _ in classes.rglob("*.jpg"))
    assert cat.provenance["models"]["spiral-finder"]["drift"]["verdict"] in (
        "in_domain", "untested")
    code, said = _cli("summarize", tmp_path / "store")
    assert code == 0 and "Traceback" not in said, said


def test_vote_fractions_from_a_csv_fine_tune_from_python(fractions):
    card, lines = fractions
    assert card.output_names == ["class1_1", "class1_2"]
    assert card.training["parent"].startswith("gz2-cnn ")
    assert card.training["epochs_head"] == card.training["epochs_full"] == 1
    assert card.training["loss"] == "binary_crossentropy"
    assert {"rmse", "baseline_rmse_training_mean"} <= set(card.metrics)
    assert "Class1.1, Class1.2" in card.training["labels"]
    assert card.training["command"].startswith("astrocat.train('finetune'")
    assert card.reference is not None and card.reference_path.is_file()
    assert any(line.startswith("finetune: held-out metrics") for line in lines)
    assert card.warnings == [w[len("warning: "):] for w in lines if w.startswith("warning:")]


def test_from_scratch_is_the_parents_architecture_with_random_weights(classes, tmp_path):
    """The control a fine-tune is measured against (benchmarks/finetune.py)."""
    from astrocat.engines.tf import load_keras
    from astrocat.models.finetune import finetune

    out = tmp_path / "scratch"
    finetune(classes, out, from_model="gz2-cnn", from_scratch=True, head_epochs=1,
             epochs=1, progress=False, log=lambda m: None)
    card = load_card(out)
    t = card.training
    assert t["recipe"] == "finetune" and t["parent"] == ""
    assert t["initialisation"] == "random" and t["architecture_of"].startswith("gz2-cnn ")
    assert t["epochs_head"] == 0 and 1 <= t["epochs_full"] <= t["epochs_budget"] == 2
    assert t["learning_rate_full"] == 1e-3 and "learning_rate_head" not in t
    assert "from scratch" in card.description and card.output_names == ["p_others",
                                                                        "p_spirals"]
    assert card.input == bundled()["gz2-cnn"].input  # the parent's preprocessing
    first = [load_keras(path).get_layer(index=1).get_weights()[0] for path in
             (bundled()["gz2-cnn"].weights("keras"), out / "model.keras")]
    assert first[0].shape == first[1].shape and not np.allclose(first[0], first[1], atol=0.01)


# --------------------------------------------------------------------------- mistakes


def test_a_parent_without_keras_weights_is_refused(classes, tmp_path):
    code, said = _cli("train", "finetune", "--from", "gz2-cnn-int8", "--data", classes,
                      "--out", tmp_path / "m")
    assert code == 2 and "Traceback" not in said
    assert "gz2-cnn-int8" in said and "no Keras weights" in said and "'gz2-cnn'" in said
    assert not (tmp_path / "m").exists()


def test_one_class_folder_is_refused(classes, tmp_path):
    data = tmp_path / "one"
    shutil.copytree(classes / "spirals", data / "spirals")
    code, said = _cli("train", "finetune", "--from", "gz2-cnn", "--data", data,
                      "--out", tmp_path / "m")
    assert code == 2 and "one class folder (spirals/" in said and "at least two" in said


def test_a_csv_whose_ids_match_no_image_is_refused(galaxies, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("GalaxyID,Class1.1\n1,0.5\n2,0.7\n")
    code, said = _cli("train", "finetune", "--from", "gz2-cnn", "--data", labels,
                      "--out", tmp_path / "m")
    assert code == 2 and "matches an image" in said and "'1'" in said


def test_from_goes_with_finetune_only(galaxies, tmp_path):
    code, said = _cli("train", "finetune", "--data", galaxies, "--out", tmp_path / "m")
    assert code == 2 and "starts from a trained model" in said
    code, said = _cli("train", "morphology", "--from", "gz2-cnn", "--data", galaxies,
                      "--out", tmp_path / "m")
    assert code == 2 and "for the finetune recipe only" in said
    with pytest.raises(astrocat.AstrocatError, match="unknown recipe 'fine-tune'"):
        astrocat.train("fine-tune", galaxies, tmp_path / "m", from_model="gz2-cnn")


def test_labels_read_from_a_csv_of_class_names_or_fractions(galaxies, tmp_path):
    from astrocat.kinds import Kind
    from astrocat.models.datasets import finetune_labels

    ids = sorted(p.stem for p in galaxies.glob("*.jpg"))[:6]
    names = tmp_path / "names.csv"  # Zoobot-style: a file column and class names
    names.write_text("file_loc,Morphology\n" + "".join(
        f"{galaxies / f'{i}.jpg'},{'Barred spiral' if k % 2 else 'elliptical'}\n"
        for k, i in enumerate(ids)) + "/nowhere/0.jpg,elliptical\n")
    got = finetune_labels(names, Kind.RGB_IMAGE)
    assert got.kind == "classes" and got.outputs == ["p_barred_spiral", "p_elliptical"]
    assert len(got.files) == 6 and got.y.sum(axis=0).tolist() == [3, 3]
    assert got.skipped and "1 of 7 rows" in got.skipped[0]
    bad = tmp_path / "counts.csv"
    bad.write_text("file_loc,smooth_count\n" + "".join(f"{galaxies / f'{i}.jpg'},{k + 3}\n"
                                                      for k, i in enumerate(ids)))
    with pytest.raises(astrocat.AstrocatError, match="outside \\[0, 1\\].*--label-columns"):
        finetune_labels(bad, Kind.RGB_IMAGE)
    with pytest.raises(astrocat.AstrocatError, match="did you mean 'Class1.1'"):
        finetune_labels(galaxies, Kind.RGB_IMAGE, ["Class1,1"])


def test_the_progress_bar_follows_the_batches():
    from astrocat.models.finetune import _progress
    from astrocat.models.train import import_tensorflow

    keras, _ = import_tensorflow()
    lines: list[str] = []
    bar = _progress(keras, "head", 2, 3, lines.append, bar=True)
    bar.on_train_begin()
    for epoch in range(2):
        for batch in range(3):
            bar.on_train_batch_end(batch)
        bar.on_epoch_end(epoch, {"loss": 0.5, "val_loss": 0.25})
    assert bar.progress.tasks[0].completed == 6
    bar.on_train_end()
    assert lines == ["finetune: head epoch 1/2: loss 0.5  val_loss 0.25",
                     "finetune: head epoch 2/2: loss 0.5  val_loss 0.25"]


def test_train_help_does_not_import_tensorflow():
    code = ("import sys\nfrom astrocat.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip().endswith("[]"), done.stdout + done.stderr
