"""TensorFlow/Keras: the reference engine, the one the models were trained in."""

from __future__ import annotations

import os

import numpy as np

from astrocat.engines.protocol import Heads
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


def last_dense(model):
    """The network's last Dense layer: its input is the penultimate features, and for a
    sigmoid score its kernel and bias give the logit."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return dense[-1] if dense else None


class TensorFlowEngine:
    """Keras weights. The features are the last Dense layer's input (the ONNX graph's
    last MatMul input: the same tensor) and a logit is that layer's pre-activation."""

    name = "tensorflow"

    def __init__(self, card: ModelCard, threads: int = 1) -> None:
        import keras

        self._model = load_keras(card.weights("keras"), threads)
        self._card = card
        self._dense = last_dense(self._model) if (card.reference or card.logits) else None
        if self._dense is not None:
            self._model = keras.Model(self._model.inputs,
                                      [self._model.outputs[0], self._dense.input])

    def run(self, batch: np.ndarray) -> Heads:
        n = len(batch)
        out = self._model(np.asarray(batch, np.float32), training=False)
        if self._dense is None:
            return Heads(np.asarray(out, dtype=np.float32).reshape(n, -1))
        values, feats = (np.asarray(o, np.float32).reshape(n, -1) for o in out)
        logits = None
        if self._card.logits:
            kernel, bias = (np.asarray(w, np.float32) for w in self._dense.get_weights())
            logits = feats @ kernel + bias
        return Heads(values, feats if self._card.reference else None, logits)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch).values
