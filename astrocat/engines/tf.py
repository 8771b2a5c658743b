"""TensorFlow/Keras: the reference engine, the one the models were trained in."""

from __future__ import annotations

import os

import numpy as np

from astrocat.models.card import ModelCard


def load_keras(path, threads: int | None = None):
    """Load a ``.keras`` model in safe mode (no arbitrary code from the file)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import astrocat.models.architectures as arch

    arch.galaxy_zoo_tree_layer()  # register astrocat's custom layers before loading
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process
    return keras.models.load_model(path, safe_mode=True, compile=False)


class TensorFlowEngine:
    name = "tensorflow"

    def __init__(self, card: ModelCard, threads: int = 1) -> None:
        self._model = load_keras(card.weights("keras"), threads)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        out = self._model(np.asarray(batch, np.float32), training=False)
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)
