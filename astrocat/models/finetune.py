"""``astrocat train finetune --from MODEL``: a trained network adapted to the user's own
labels, as Zoobot fine-tunes (Walmsley et al. 2022, 2024).

The parent's penultimate features (the input of its last Dense layer: the tensor
``engines.tf.last_dense`` finds in Keras and ``graph.feature_tensor`` in ONNX; for
``gz2-cnn`` its 64-unit Dense layer, below the output layer that enforces the GZ2 tree)
get a new head: a softmax over the classes of a folder-per-class set or of a labels
column, or one sigmoid per vote-fraction column (binary cross-entropy on the soft
labels). The head is trained alone first (the body frozen, learning rate 1e-3), then
everything but the batch-normalisation statistics at a tenth of that rate; each stage
stops early on a validation split and keeps its best weights, and the second stage's
are kept only if they beat the first's. The parent's preprocessing (its card's
``[input]``) and invariances (the rotations and flips drawn while training) are kept.
Metrics come from a held-out test split, each beside its trivial baseline; the
reference statistics of the out-of-domain flag from the user's own held-out images, so
they describe the new domain.

``from_scratch=True`` is the control a fine-tune is measured against: the parent's
architecture built afresh (random initialisation, none of its weights) with the same
head, data, splits, preprocessing and invariances, every layer trained in one stage at
the head's learning rate for at most the fine-tune's whole budget of epochs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astrocat._version import __version__
from astrocat.errors import AstrocatError
from astrocat.kernels.preprocess import prepare
from astrocat.models import datasets
from astrocat.models.card import ModelCard, write_card
from astrocat.models.train import (
    DEFAULT_MODEL_VERSION,
    _dataset,
    _write_reference,
    baseline_warnings,
    check_model_version,
    import_tensorflow,
    model_name,
)

RECIPE = "finetune"
HEAD_LEARNING_RATE = 1e-3
FULL_LEARNING_RATE = HEAD_LEARNING_RATE / 10
#: Default epochs of each stage (early stopping usually ends the second sooner).
HEAD_EPOCHS = 10
EPOCHS = 30
BATCH_SIZE = 32
SPLIT = (0.70, 0.15, 0.15)  # train, validation, test (per class for class labels)
#: Fewest images of one class: one each for training, validation and test.
MIN_PER_CLASS = 3
MIN_ITEMS = 10
HEAD_LAYER = "finetune_head"


def parent_model(model: str | Path) -> ModelCard:
    """The model to start from: a bundled name or a model directory/card, with Keras
    weights (what is trained) that match its card."""
    from astrocat.models.zoo import resolve

    card = resolve(str(model))
    if "keras" not in card.files:
        source = card.raw.get("quantization", {}).get("source_model")
        hint = (f"; start from '{source}', the model it was made from" if source else
                "; start from a model directory with card.toml and model.keras")
        raise AstrocatError(f"model '{card.name}' has no Keras weights (its card lists "
                            f"{', '.join(card.files)} only): fine-tuning trains the Keras "
                            f"network{hint}")
    if card.input.kind not in datasets.IMAGE_SUFFIXES:
        raise AstrocatError(f"model '{card.name}' takes {card.input.kind.value} inputs: "
                            "fine-tuning reads images (rgb_image, mono_image, "
                            "density_field models)")
    card.verify()
    return card


def parent_identity(card: ModelCard) -> str:
    """``[training] parent``: the name, version and weights digest of the model started
    from ("" for a model trained from scratch)."""
    return f"{card.name} {card.version} sha256:{card.fingerprint[:12]}"


def split(labels: datasets.Labels, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training, validation and test indices (``SPLIT``), stratified by class for class
    labels so every class is in every split."""
    n = len(labels.y)
    if n < MIN_ITEMS:
        raise AstrocatError(f"only {n} labelled images: fine-tuning needs at least "
                            f"{MIN_ITEMS} (a few hundred is better)")
    if labels.kind == "classes":
        groups = [np.flatnonzero(labels.y[:, j] > 0.5) for j in range(labels.y.shape[1])]
        small = [(c, len(g)) for c, g in zip(labels.sources, groups, strict=True)
                 if len(g) < MIN_PER_CLASS]
        if small:
            raise AstrocatError(
                "too few images of class " + ", ".join(f"'{c}' ({k})" for c, k in small)
                + f": each class needs at least {MIN_PER_CLASS} (one each for training, "
                "validation and test; a few dozen is better)")
    else:
        groups = [np.arange(n)]
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for g in groups:
        g = rng.permutation(g)
        n_val = max(1, round(SPLIT[1] * len(g)))
        n_test = max(1, round(SPLIT[2] * len(g)))
        parts[2].extend(g[:n_test])
        parts[1].extend(g[n_test:n_test + n_val])
        parts[0].extend(g[n_test + n_val:])
    return tuple(rng.permutation(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def evaluate(labels: datasets.Labels, pred: np.ndarray, truth: np.ndarray,
             train_truth: np.ndarray) -> tuple[dict[str, Any], tuple]:
    """Held-out metrics and the baselines ``baseline_warnings`` compares them with:
    accuracy against the majority class and AUROC per class against chance (class
    labels); RMSE against the training split's mean (fractions)."""
    from astrocat.science import stats

    if labels.kind == "classes":
        majority = int(train_truth.sum(axis=0).argmax())
        metrics: dict[str, Any] = {
            "accuracy": float((pred.argmax(axis=1) == truth.argmax(axis=1)).mean()),
            "baseline_accuracy_majority": float((truth.argmax(axis=1) == majority).mean())}
        for j, name in enumerate(labels.outputs):
            metrics[f"auroc_{name}"] = stats.roc_auc(pred[:, j], truth[:, j] > 0.5)
        metrics["baseline_auroc"] = 0.5
        checks = (("accuracy", "baseline_accuracy_majority", "the majority-class baseline",
                   f"class '{labels.sources[majority]}' for every image", True),
                  *((f"auroc_{name}", "baseline_auroc", "the chance baseline",
                     "random scores", True) for name in labels.outputs))
        return metrics, checks
    mean = np.broadcast_to(train_truth.mean(axis=0, keepdims=True), truth.shape)
    metrics = {"rmse": stats.rmse(pred, truth),
               "baseline_rmse_training_mean": stats.rmse(mean, truth)}
    checks = (("rmse", "baseline_rmse_training_mean", "the mean-prediction baseline",
               "the training split's mean of each column for every image", False),)
    return metrics, checks


def _outputs(labels: datasets.Labels, parent: ModelCard,
             from_scratch: bool = False) -> list[dict[str, str]]:
    how = (f"trained from scratch with {parent.name}'s architecture" if from_scratch
           else f"fine-tuned from {parent.name}")
    if labels.kind == "classes":
        every = ", ".join(labels.sources[:6]) + (", ..." if len(labels.sources) > 6 else "")
        return [{"name": o, "unit": "",
                 "description": f"Probability of class '{c}' (softmax over {every}; "
                 f"{how})", "ucd": "stat.probability;src.class"}
                for o, c in zip(labels.outputs, labels.sources, strict=True)]
    ucd = "stat.probability" + (";src.morph" if parent.task == "morphology" else "")
    return [{"name": o, "unit": "",
             "description": f"{c} (vote fraction; sigmoid, {how})",
             "ucd": ucd}
            for o, c in zip(labels.outputs, labels.sources, strict=True)]


def _with_new_head(keras, body, labels: datasets.Labels, parent: ModelCard,
                   train_truth: np.ndarray):
    """The parent's network up to its penultimate features, with a new Dense head that
    starts as the trivial baseline: zero weights, and as bias the training split's log
    class frequencies (softmax) or the logits of its mean fractions (sigmoid)."""
    from astrocat.engines.tf import last_dense

    dense = last_dense(body)
    if dense is None:
        raise AstrocatError(f"model '{parent.name}': its Keras network has no Dense layer "
                            "whose input could serve as the penultimate features")
    try:
        features, inputs = dense.input, body.inputs
    except (AttributeError, ValueError) as exc:
        raise AstrocatError(f"model '{parent.name}': its Keras network is not a functional "
                            f"or Sequential model, whose layers can be cut ({exc})") from exc
    activation = "softmax" if labels.kind == "classes" else "sigmoid"
    layer = keras.layers.Dense(len(labels.outputs), activation=activation, name=HEAD_LAYER)
    model = keras.Model(inputs, layer(features), name=f"{body.name}_finetuned")
    mean = np.clip(train_truth.mean(axis=0), 1e-3, 1 - 1e-3)
    bias = np.log(mean) if labels.kind == "classes" else np.log(mean / (1 - mean))
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), bias.astype(kernel.dtype)])
    return model, int(features.shape[-1])


def _progress(keras, stage: str, epochs: int, steps: int, log: Callable[[str], None],
              bar: bool):
    """A Keras callback: one line per epoch through ``log``, and a rich progress bar over
    the stage's batches on stderr when ``bar``."""

    class StageProgress(keras.callbacks.Callback):
        progress: Any = None

        def on_train_begin(self, logs=None):
            if bar:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self.progress = Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[losses]}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
                self.progress.start()
                self.task = self.progress.add_task(f"{stage} epoch 1/{epochs}",
                                                   total=epochs * steps, losses="")

        def on_train_batch_end(self, batch, logs=None):
            if self.progress is not None:
                self.progress.advance(self.task)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            losses = "  ".join(f"{k} {float(logs[k]):.4g}" for k in ("loss", "val_loss")
                               if k in logs)
            if self.progress is not None:
                self.progress.update(self.task, completed=(epoch + 1) * steps, losses=losses,
                                     description=f"{stage} epoch {min(epoch + 2, epochs)}/"
                                                 f"{epochs}")
            log(f"{RECIPE}: {stage} epoch {epoch + 1}/{epochs}: {losses}")

        def on_train_end(self, logs=None):
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return StageProgress()


def _fit(keras, tf, model, loss: str, train, validation, steps: int, patience: int,
         log: Callable[[str], None], bar: bool, stage: str, learning_rate: float,
         epochs: int) -> dict[str, list[float]]:
    """One stage: Adam at ``learning_rate``, stopped early on the validation loss with the
    best weights restored; its history."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss)
    history = model.fit(
        train, validation_data=validation, epochs=epochs, verbose=0,
        shuffle=False,  # the dataset shuffles itself (Keras warns that it ignores True)
        callbacks=[keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True),
                   _progress(keras, stage, epochs, steps, log, bar)])
    return history.history


@contextlib.contextmanager
def _tensorflow_quiet(tf):
    """TensorFlow's Python log at errors only meanwhile (its retracing advice: the two
    stages compile the model twice)."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _two_stages(keras, model, fit, head_epochs: int | None, epochs: int | None,
                log: Callable[[str], None]) -> tuple[dict, dict, str]:
    """Zoobot's two stages on ``model``; the histories and which weights were kept."""
    # 1: the new head alone on the parent's features
    for layer in model.layers:
        layer.trainable = layer.name == HEAD_LAYER
    head = fit("head", HEAD_LEARNING_RATE, head_epochs or HEAD_EPOCHS)
    # 2: everything at a lower rate; batch normalisation keeps the parent's statistics
    # (a small set would drag them away from what the body was trained with)
    for layer in model.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    after_head = model.get_weights()
    full = fit("full", FULL_LEARNING_RATE, epochs or EPOCHS)
    kept = "full"
    if min(full["val_loss"]) > min(head["val_loss"]):  # unfreezing did not help
        model.set_weights(after_head)
        kept = "head"
        log(f"{RECIPE}: the full stage did not lower the validation loss; kept the "
            "head-only weights")
    return head, full, kept


def finetune(
    data: Path,
    out: Path,
    *,
    from_model: str | Path,
    label_columns: Sequence[str] | None = None,
    epochs: int | None = None,
    head_epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    name: str | None = None,
    model_version: str = DEFAULT_MODEL_VERSION,
    patience: int = 5,
    command: str = "",
    log: Callable[[str], None] = print,
    progress: bool = True,
    from_scratch: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``from_model`` on the labelled images ``data`` (a folder per class, or a
    labels CSV: ``datasets.finetune_labels``) into the model directory ``out``; returns
    the card's held-out metrics.

    ``head_epochs`` (default ``HEAD_EPOCHS``) and ``epochs`` (default ``EPOCHS``) bound
    the two stages; ``patience`` is each stage's early stopping. ``progress``: a
    progress bar on stderr when it is a terminal. A held-out metric that does not beat
    its trivial baseline is logged as a ``warning:`` line and kept in ``[training]
    warnings``.

    ``from_scratch``: the control, not a fine-tune: ``from_model``'s architecture
    (``models.architectures``) randomly initialised, the same new head, everything
    (batch normalisation too) trained in one stage at ``HEAD_LEARNING_RATE`` for at most
    ``head_epochs + epochs`` epochs; the card's ``[training]`` says ``parent = ""`` and
    ``initialisation = "random"``.
    """
    t0 = time.time()
    check_model_version(model_version)
    out = Path(out)
    name = model_name(out, name)
    parent = parent_model(from_model)
    if from_scratch:
        from astrocat.models.architectures import ARCHITECTURES

        if parent.architecture not in ARCHITECTURES:
            raise AstrocatError(f"model '{parent.name}': its architecture "
                                f"'{parent.architecture}' is not one astrocat can build "
                                f"afresh (one of {', '.join(ARCHITECTURES)})")
    labels = datasets.finetune_labels(Path(data), parent.input.kind, label_columns, limit,
                                      seed)
    tr, va, te = split(labels, seed)  # every mistake above is said before TensorFlow loads
    for line in labels.skipped:
        log(f"{RECIPE}: left out {line}")
    keras, tf = import_tensorflow()
    from astrocat.engines.tf import load_keras
    from astrocat.models.export import export_onnx, save_for_inference

    keras.utils.set_random_seed(seed)
    spec, t_load = parent.input, time.time()
    xp = prepare(datasets.load_images(labels.files, spec), spec)  # the parent's scaling
    y = labels.y
    log(f"{RECIPE}: {len(y)} images ({labels.described}): {len(tr)} train / {len(va)} "
        f"val / {len(te)} test, read in {time.time() - t_load:.1f}s")
    if from_scratch:  # the parent's architecture, randomly initialised
        body = ARCHITECTURES[parent.architecture](input_shape=spec.shape)
    else:
        body = load_keras(parent.weights("keras"))
    model, n_features = _with_new_head(keras, body, labels, parent, y[tr])
    loss = "categorical_crossentropy" if labels.kind == "classes" else "binary_crossentropy"
    bs = batch_size or BATCH_SIZE
    views = parent.invariances if spec.layout == "NHWC" else ()
    fit = functools.partial(
        _fit, keras, tf, model, loss, _dataset(tf, xp[tr], y[tr], bs, views, seed, shuffle=True),
        _dataset(tf, xp[va], y[va], 256, False, seed, shuffle=False), math.ceil(len(tr) / bs),
        patience, log, progress and sys.stderr.isatty())
    with _tensorflow_quiet(tf):
        if from_scratch:  # one stage: everything, from random weights
            budget = (head_epochs or HEAD_EPOCHS) + (epochs or EPOCHS)
            head = {"loss": [], "val_loss": [math.inf]}
            full = fit("scratch", HEAD_LEARNING_RATE, budget)
            kept = "full"
        else:
            head, full, kept = _two_stages(keras, model, fit, head_epochs, epochs, log)
        pred = np.asarray(model.predict(xp[te], batch_size=256, verbose=0), dtype=np.float32)
    metrics, checks = evaluate(labels, pred, y[te], y[tr])
    metrics["n_test"] = len(te)
    rounded = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
    found = baseline_warnings(parent.task, rounded, checks)

    out.mkdir(parents=True, exist_ok=True)
    save_for_inference(model, out / "model.keras")
    with warnings.catch_warnings():  # tf2onnx's own FutureWarning on np.object
        warnings.simplefilter("ignore", FutureWarning)
        deviation = export_onnx(model, out / "model.onnx", xp[te[:32]])
    head_kind = "softmax" if labels.kind == "classes" else "sigmoid"
    training = {
        "recipe": RECIPE, "parent": parent_identity(parent), "astrocat_version": __version__,
        "data": datasets.provenance(Path(data)), "labels": labels.described,
        "command": command, "seed": seed,
        "epochs_head": len(head["loss"]), "epochs_full": len(full["loss"]),
        "weights_kept": kept, "batch_size": bs, "loss": loss, "optimizer": "adam",
        "learning_rate_head": HEAD_LEARNING_RATE, "learning_rate_full": FULL_LEARNING_RATE,
        "head": f"Dense({len(labels.outputs)}, {head_kind}) on the parent's {n_features} "
                "penultimate features, started as the trivial baseline (zero weights, the "
                "training split's prior as bias)",
        "frozen": "head stage: every parent layer; full stage: batch normalisation only",
        "n_train": len(tr), "n_validation": len(va), "n_test": len(te),
        "final_val_loss": float(min((full if kept == "full" else head)["val_loss"])),
        "onnx_max_deviation_from_keras": deviation,
        "seconds": round(time.time() - t0, 1),
        "warnings": found,
    }
    if from_scratch:  # the control: nothing of the parent but its architecture
        training.update({
            "parent": "", "initialisation": "random",
            "architecture_of": parent_identity(parent),
            "epochs_budget": (head_epochs or HEAD_EPOCHS) + (epochs or EPOCHS),
            "learning_rate_full": HEAD_LEARNING_RATE,
            "head": training["head"].replace("the parent's", "the architecture's").replace(
                "penultimate features,", "penultimate features (random initialisation),"),
            "frozen": "nothing: one stage, every layer trained (batch normalisation too)"})
        del training["learning_rate_head"]
    if labels.skipped:
        training["left_out"] = list(labels.skipped)
    card = {
        "name": name,
        "version": model_version,
        "task": parent.task,
        "architecture": f"{parent.architecture or 'keras'}+{HEAD_LAYER}",
        "description": f"Fine-tuned from {parent.name} {parent.version}: a new {head_kind} "
                       f"head ({', '.join(labels.outputs[:6])}"
                       f"{', ...' if len(labels.outputs) > 6 else ''}) on its penultimate "
                       f"features, trained on {labels.described}",
        "default_for": [],  # used only where named (--model)
        "input": dict(parent.raw["input"]),  # the parent's preprocessing, unchanged
        "outputs": _outputs(labels, parent, from_scratch),
        "files": {"keras": "model.keras", "onnx": "model.onnx"},
        "training": training,
        "metrics": rounded,
    }
    if from_scratch:
        card["description"] = (
            f"Trained from scratch (random initialisation) with {parent.name}'s "
            f"architecture and a {head_kind} head ({', '.join(labels.outputs[:6])}"
            f"{', ...' if len(labels.outputs) > 6 else ''}), on {labels.described}")
    if parent.invariances:
        card["invariances"] = list(parent.invariances)
    write_card(card, out)
    log(f"{RECIPE}: held-out metrics {json.dumps(rounded)}")
    # the out-of-domain flag of the new model describes the user's images, not the parent's
    _write_reference(out, xp, y, np.concatenate([va, te]), seed, data, command, log)
    for warning in found:  # last, where they are seen
        log(f"warning: {warning}")
    return rounded
