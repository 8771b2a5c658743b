"""``astrocat train RECIPE``: the studies' training recipes on data in the real layouts.

Each recipe loads its data (``datasets``), fits the preprocessing on the training split,
trains the study's architecture with its loss/optimiser, rotation/flip augmentation for
images, early stopping and ReduceLROnPlateau, then reports held-out metrics against the
trivial baselines and writes weights (.keras + .onnx) and a card.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from astrocat._version import __version__
from astrocat.errors import AstrocatError
from astrocat.kernels.gz_tree import galaxy_zoo2
from astrocat.kernels.preprocess import prepare
from astrocat.kinds import Kind
from astrocat.models import datasets
from astrocat.models.card import INVARIANCES, InputSpec, write_card


@dataclass(frozen=True)
class Recipe:
    name: str
    model_name: str  # the bundled model this recipe trained (never a new model's name)
    task: str
    architecture: str
    spec: InputSpec
    loss: str
    optimizer: str
    learning_rate: float
    epochs: int
    batch_size: int
    split: tuple[float, float, float]  # train, validation, test
    augment: bool
    default_for: tuple[Kind, ...]
    description: str


RECIPES: dict[str, Recipe] = {
    "morphology": Recipe(
        "morphology", "gz2-cnn", "morphology", "gz_custom_cnn",
        InputSpec(Kind.RGB_IMAGE, (64, 64, 3), "scale_255", crop_fraction=0.5),
        loss="mse", optimizer="adam", learning_rate=1e-3, epochs=60, batch_size=128,
        split=(0.72, 0.08, 0.20), augment=True, default_for=(Kind.RGB_IMAGE,),
        description="Galaxy Zoo 2 morphology: seed 001's custom CNN on 64x64 (central "
        "212x212 of 424x424) with the GZ2 decision tree enforced in its output layer",
    ),
    "redshift": Recipe(
        "redshift", "redshift-cnn1d", "redshift", "redshift_cnn1d",
        InputSpec(Kind.SPECTRUM, (186, 1), "minmax"),
        loss="huber", optimizer="adamax", learning_rate=1e-3, epochs=20, batch_size=16,
        split=(0.63, 0.27, 0.10), augment=False, default_for=(Kind.SPECTRUM,),
        description="Galaxy redshift from 186-sample Gaia BP/RP-like spectra: seed 003's 1-D CNN",
    ),
    "lens": Recipe(
        "lens", "lens-lastro", "lens", "lens_lastro_cnn",
        # 0.1"/px: the Bologna Lens Finding Challenge's space (Euclid-like) set and
        # astrocat's simulated one; stamps at other scales are resampled to it
        InputSpec(Kind.MONO_IMAGE, (101, 101, 1), "standardize", pixel_scale=0.1),
        loss="binary_crossentropy", optimizer="adam", learning_rate=1e-3, epochs=30,
        batch_size=64, split=(0.70, 0.10, 0.20), augment=True, default_for=(Kind.MONO_IMAGE,),
        description="Strong-lens finding in single-band 101x101 cut-outs: seed 004's "
        "LASTRO-style CNN; p_lens is the sigmoid of the logit",
    ),
    "cosmology": Recipe(
        "cosmology", "cosmo-cnn", "cosmology", "cosmo_cnn",
        InputSpec(Kind.DENSITY_FIELD, (64, 64, 1), "log_standardize"),
        loss="mse", optimizer="adam", learning_rate=1e-3, epochs=40, batch_size=32,
        split=(0.70, 0.10, 0.20), augment=True, default_for=(Kind.DENSITY_FIELD,),
        description="Omega_m and sigma_8 from 2-D projected density maps (seed 004's "
        "original plan; CAMELS-style CNN)",
    ),
}


def outputs_for(task: str) -> list[dict[str, str]]:
    if task == "morphology":
        return [
            {"name": a.catalog_column, "unit": "",
             "description": f"GZ2 {a.kaggle_column}: {a.question_text} -> {a.answer_text} "
             "(weighted vote fraction)", "ucd": "stat.probability;src.morph"}
            for a in galaxy_zoo2().answers
        ]
    return {
        "redshift": [{"name": "z_pred", "unit": "", "description": "Predicted redshift",
                      "ucd": "src.redshift"}],
        "lens": [{"name": "p_lens", "unit": "",
                  "description": "Score that the cut-out holds a strong lens (0..1)",
                  "ucd": "stat.probability;src.class"}],
        "cosmology": [
            {"name": "omega_m_pred", "unit": "", "description": "Predicted matter density Omega_m",
             "ucd": "stat.fit.param"},
            {"name": "sigma_8_pred", "unit": "",
             "description": "Predicted amplitude of fluctuations sigma_8",
             "ucd": "stat.fit.param"},
        ],
    }[task]


def _fit_spec(recipe: Recipe, x_train: np.ndarray) -> InputSpec:
    """Preprocessing constants come from the training split only."""
    spec = recipe.spec
    if spec.preprocessing == "standardize":
        return replace(spec, mean=float(x_train.mean()), std=float(x_train.std()))
    if spec.preprocessing == "log_standardize":
        logged = np.log10(np.maximum(x_train, 1e-6))
        return replace(spec, mean=float(logged.mean()), std=float(logged.std()))
    return spec


def evaluate(task: str, pred: np.ndarray, truth: np.ndarray, train_truth: np.ndarray) -> dict:
    """Held-out metrics and the trivial baseline each must beat (SCIENCE.md)."""
    from astrocat.science import stats  # scipy: not paid by an argument error

    if task == "morphology":
        mean = train_truth.mean(axis=0, keepdims=True)
        return {"rmse": stats.rmse(pred, truth),
                "baseline_rmse_training_mean": stats.rmse(
                    np.broadcast_to(mean, truth.shape), truth),
                "max_tree_violation": float(galaxy_zoo2().violations(pred).max())}
    if task == "redshift":
        m = stats.redshift_metrics(pred[:, 0], truth[:, 0])
        base = stats.redshift_metrics(np.full(len(truth), np.median(train_truth)), truth[:, 0])
        return {"mae": m.mae, "bias": m.bias, "sigma_nmad": m.sigma_nmad,
                "outlier_fraction": m.outlier_fraction, "baseline_mae_median": base.mae,
                "baseline_sigma_nmad_median": base.sigma_nmad}
    if task == "lens":
        m = stats.lens_metrics(pred[:, 0], truth[:, 0])
        return {"auroc": m.auroc, "tpr0": m.tpr0, "tpr10": m.tpr10,
                "n_lenses": m.n_lenses, "n_nonlenses": m.n_nonlenses, "baseline_auroc": 0.5}
    centre = np.array([[0.3, 0.8]])  # prior centre: Omega_m in [0.1, 0.5], sigma_8 in [0.6, 1.0]
    return {"rmse_omega_m": stats.rmse(pred[:, 0], truth[:, 0]),
            "rmse_sigma_8": stats.rmse(pred[:, 1], truth[:, 1]),
            "baseline_rmse_omega_m": stats.rmse(np.full(len(truth), centre[0, 0]), truth[:, 0]),
            "baseline_rmse_sigma_8": stats.rmse(np.full(len(truth), centre[0, 1]), truth[:, 1])}


#: Per task, each held-out metric and the trivial baseline ``evaluate`` scores beside it:
#: (metric, baseline metric, the baseline's name, what it predicts, higher is better).
BASELINES: dict[str, tuple[tuple[str, str, str, str, bool], ...]] = {
    "morphology": (("rmse", "baseline_rmse_training_mean", "the mean-prediction baseline",
                    "the training split's mean vote fractions for every galaxy", False),),
    "redshift": (("mae", "baseline_mae_median", "the median-prediction baseline",
                  "the training split's median redshift for every spectrum", False),),
    "lens": (("auroc", "baseline_auroc", "the chance baseline", "random scores", True),),
    "cosmology": tuple(
        (f"rmse_{p}", f"baseline_rmse_{p}", "the prior-centre baseline",
         f"{label} = {centre} for every map", False)
        for p, label, centre in (("omega_m", "Omega_m", 0.3), ("sigma_8", "sigma_8", 0.8))),
}


def _distinct(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with the fewest significant digits (3 to 6) that tell them apart."""
    for digits in range(3, 7):
        form = f".{digits}g" if digits == 3 else f"#.{digits}g"  # past 3: keep the 0s
        sa, sb = format(a, form), format(b, form)
        if sa != sb:
            break
    return sa, sb


def baseline_warnings(task: str, metrics: dict[str, Any],
                      checks: Sequence[tuple[str, str, str, str, bool]] | None = None
                      ) -> list[str]:
    """One line per held-out metric that does not beat its trivial baseline (or could not
    be measured): the model has not learned what it is for. ``checks``: the metrics and
    baselines to compare, as ``BASELINES`` holds them (default: ``task``'s)."""
    advice = ("the model has not learned the task: train longer (--epochs), on more data, "
              "or check the data and labels")
    out = []
    for metric, base, name, predicts, higher in (BASELINES.get(task, ()) if checks is None
                                                 else checks):
        if metric not in metrics or base not in metrics:
            continue
        value, baseline = float(metrics[metric]), float(metrics[base])
        if not math.isfinite(value):
            out.append(f"held-out {metric} could not be measured ({value} on "
                       f"{metrics.get('n_test', '?')} test items): nothing shows the model "
                       f"beats {name} {baseline:.3g} ({predicts}); train on more data")
            continue
        if (value > baseline) if higher else (value < baseline):
            continue
        sv, sb = _distinct(value, baseline)
        worse = "no better than" if value == baseline else "worse than"
        out.append(f"held-out {metric} {sv} is {worse} {name} {sb} ({predicts}): {advice}")
    return out


#: A new model's name: it becomes the catalog's `model` value and part of cache file names.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MODEL_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
DEFAULT_MODEL_VERSION = "1.0.0"


def model_name(out: Path, name: str | None = None) -> str:
    """The name of a model trained into ``out``: ``name``, else ``out``'s folder name made
    a valid one (runs of other characters become "-"). A bundled model's name is refused
    (a catalog would credit the bundled model), except when ``out`` is that model's own
    folder (rebuilding the zoo)."""
    from astrocat.models.zoo import bundled

    out = Path(out)
    if name is not None:
        if not MODEL_NAME.fullmatch(name):
            raise AstrocatError(f"--name {name!r}: a model name is letters, digits, '.', '_' "
                                "and '-', starting with a letter or digit (e.g. 'my-gz2')")
    else:
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", out.resolve().name).strip("-._")
        if not name:
            raise AstrocatError(f"cannot make a model name from --out {out}; pass --name")
    own = bundled().get(name)
    if own is not None and own.directory.resolve() != out.resolve():
        raise AstrocatError(f"'{name}' is the name of a bundled model: a catalog made with "
                            f"yours would say it came from that one; pass --name (e.g. "
                            f"--name {name}-mine)")
    return name


def check_model_version(version: str) -> None:
    """Refuse a version that is not a plain one (it goes into catalogs and file names)."""
    if not MODEL_VERSION.fullmatch(version or ""):
        raise AstrocatError(f"--model-version {version!r}: a version is letters, digits "
                            "and '.', '+', '_', '-' (e.g. '1.0.0')")


@contextlib.contextmanager
def _native_stderr_hidden():
    """Hide what C/C++ code writes to file descriptor 2 meanwhile; replay it if the
    body raises (an import that fails keeps its explanation)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """``(keras, tensorflow)``, imported without their start-up noise: TensorFlow's C++
    log (TF_CPP_MIN_LOG_LEVEL=3: errors too, e.g. cuInit failing on a machine without a
    GPU) and what its libraries print while loading (absl's "All log messages before
    absl::InitializeLog()", the CUDA driver probe), which no setting reaches.
    ASTROCAT_DEBUG=1 keeps all of it."""
    if not os.environ.get("ASTROCAT_DEBUG"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        if "tensorflow" not in sys.modules:
            with _native_stderr_hidden():
                import keras  # noqa: F401
                import tensorflow  # noqa: F401
    import keras
    import tensorflow as tf

    return keras, tf


def _dataset(tf, x: np.ndarray, y: np.ndarray, batch: int, augment: bool | Sequence[str],
             seed: int, shuffle: bool):
    """Batches of (x, y), shuffled for training; ``augment``: the invariances to draw
    random views from (``card.INVARIANCES`` names; True: all of them, channels last)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(min(len(x), 10_000), seed=seed, reshuffle_each_iteration=True)
    views = set(INVARIANCES if augment is True else augment or ())
    if views:  # the sky has no up: 90-degree rotations and flips (never shear)
        def aug(img, label):
            if "rot90" in views:
                k = tf.random.uniform((), 0, 4, dtype=tf.int32, seed=seed)
                img = tf.image.rot90(img, k)
            if "flip" in views:
                img = tf.image.random_flip_left_right(img, seed=seed)
            return img, label
        ds = ds.map(aug, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def train(
    recipe_name: str,
    data: Path,
    out: Path,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    architecture: str | None = None,
    name: str | None = None,
    model_version: str = DEFAULT_MODEL_VERSION,
    patience: int = 5,
    command: str = "",
    log: Callable[[str], None] = print,
    verbose: int = 2,
) -> dict[str, Any]:
    """Train one recipe end to end; returns the card's metrics.

    The model is the user's own: named ``name`` (default: ``out``'s folder name), version
    ``model_version``, its recipe recorded in ``[training]``. A held-out metric that does
    not beat its trivial baseline is logged as a ``warning:`` line at the end and kept in
    ``[training] warnings``. ``verbose``: Keras' own line per epoch (2) or nothing (0).
    """
    if recipe_name not in RECIPES:
        raise AstrocatError(f"unknown recipe '{recipe_name}' (choose from {', '.join(RECIPES)})")
    recipe = RECIPES[recipe_name]
    from astrocat.models.architectures import ARCHITECTURES

    arch = architecture or recipe.architecture
    if arch not in ARCHITECTURES:
        raise AstrocatError(
            f"unknown architecture '{arch}' (choose from {', '.join(ARCHITECTURES)})"
        )
    check_model_version(model_version)
    name = model_name(Path(out), name)
    datasets.check_data(recipe.task, Path(data))  # a wrong layout says so before TF loads
    keras, tf = import_tensorflow()

    from astrocat.models.export import export_onnx, save_for_inference

    keras.utils.set_random_seed(seed)
    t0 = time.time()
    x, y = datasets.load_task(recipe.task, recipe.spec, Path(data), limit, seed)
    n = len(x)
    if n < 10:
        raise AstrocatError(f"only {n} training examples found in {data}")
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(recipe.split[0] * n), max(1, int(recipe.split[1] * n))
    tr, va, te = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    spec = _fit_spec(recipe, x[tr])
    if arch == "gz_vgg6":
        spec = replace(spec, shape=(128, 128, 3))
        x, y = datasets.load_task(recipe.task, spec, Path(data), limit, seed)
    xp = prepare(x, spec)
    del x
    log(f"{recipe.name}: {n} examples ({len(tr)} train / {len(va)} val / {len(te)} test), "
        f"loaded in {time.time() - t0:.0f}s")

    model = ARCHITECTURES[arch](input_shape=spec.shape) if arch != "redshift_cnn1d" else (
        ARCHITECTURES[arch](input_length=spec.shape[0]))
    optimizer = {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax}[
        recipe.optimizer](learning_rate=recipe.learning_rate)
    model.compile(optimizer=optimizer, loss=recipe.loss)
    bs = batch_size or recipe.batch_size
    callbacks = [
        keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, patience // 2)),
    ]
    history = model.fit(
        _dataset(tf, xp[tr], y[tr], bs, recipe.augment, seed, shuffle=True),
        validation_data=_dataset(tf, xp[va], y[va], 256, False, seed, shuffle=False),
        epochs=epochs or recipe.epochs, callbacks=callbacks, verbose=verbose,
        shuffle=False,  # the dataset shuffles itself (Keras warns that it ignores True)
    )
    test_idx = te if len(te) else va
    pred = np.asarray(model.predict(xp[test_idx], batch_size=256, verbose=0), dtype=np.float32)
    metrics = evaluate(recipe.task, pred, y[test_idx], y[tr])
    metrics["n_test"] = len(test_idx)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_for_inference(model, out / "model.keras")
    with warnings.catch_warnings():  # tf2onnx's own FutureWarning on np.object
        warnings.simplefilter("ignore", FutureWarning)
        deviation = export_onnx(model, out / "model.onnx", xp[test_idx[:32]])
    provenance = datasets.provenance(Path(data))
    rounded = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
    found = baseline_warnings(recipe.task, rounded)
    card = {
        "name": name,
        "version": model_version,
        "task": recipe.task,
        "architecture": arch,
        "description": recipe.description,
        "default_for": [k.value for k in recipe.default_for],
        "input": {k: v for k, v in {
            "kind": spec.kind.value, "shape": list(spec.shape),
            "preprocessing": spec.preprocessing, "crop_fraction": spec.crop_fraction,
            "mean": spec.mean, "std": spec.std, "pixel_scale": spec.pixel_scale}.items()
            if v is not None},
        "outputs": outputs_for(recipe.task),
        "files": {"keras": "model.keras", "onnx": "model.onnx"},
        "training": {
            # how it was made: astrocat's recipe, from scratch ("" parent: no weights
            # started from), by this astrocat
            "recipe": recipe.name, "parent": "", "astrocat_version": __version__,
            "data": provenance, "command": command, "seed": seed,
            "epochs_run": len(history.history["loss"]), "batch_size": bs,
            "loss": recipe.loss, "optimizer": recipe.optimizer,
            "n_train": len(tr), "n_validation": len(va), "n_test": len(te),
            "final_val_loss": float(history.history["val_loss"][-1]),
            "onnx_max_deviation_from_keras": deviation,
            "seconds": round(time.time() - t0, 1),
            "warnings": found,
        },
        "metrics": rounded,
    }
    if recipe.augment:  # trained for rotations and flips: the task is invariant to them
        card = {**card, "invariances": ["rot90", "flip"]}
    if recipe.task == "lens":  # p_lens is a sigmoid: keep its logit, which ranks strictly
        card["outputs"] = [{**o, "logit": True} for o in card["outputs"]]
    write_card(card, out)
    log(f"{recipe.name}: held-out metrics {json.dumps(card['metrics'])}")
    _write_reference(out, xp, y, np.concatenate([va, te]), seed, data, command, log)
    for warning in found:  # last, where they are seen
        log(f"warning: {warning}")
    return card["metrics"]


def _write_reference(out: Path, xp: np.ndarray, y: np.ndarray, held_out: np.ndarray,
                     seed: int, data: Path, command: str, log) -> None:
    """The new model's reference statistics, from inputs it was not trained on (at most
    ``REFERENCE_LIMIT``), as ``astrocat models reference`` would compute them."""
    from astrocat.models import reference
    from astrocat.models.card import load_card

    which = "held-out split"
    if len(held_out) < REFERENCE_MIN_HELD_OUT:  # tiny data: every input, said in the card
        held_out, which = np.arange(len(xp)), "all inputs: too few held out"
    idx = np.random.default_rng(seed).permutation(held_out)[:REFERENCE_LIMIT]
    card = load_card(out)
    ref, record = reference.fit(card, xp[idx], y[idx], seed=seed, log=log)
    reference.write(card, ref, record, f"{datasets.provenance(Path(data))} ({which})", command)


#: Held-out inputs the reference statistics of a new model are computed from (fewer held
#: out than the minimum: every input, which the card's [reference] data says).
REFERENCE_LIMIT = 3000
REFERENCE_MIN_HELD_OUT = 200

