"""Keras 3 networks from the source studies (see ../shared/SCIENCE.md for the numbers).

TensorFlow/Keras is imported lazily inside each builder: inference on CPU runs the
exported ONNX graph and must never pay for (or require) TensorFlow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from astrocat.kernels.gz_tree import galaxy_zoo2

#: Parameter counts the studies publish; tests assert them.
PUBLISHED_PARAMETERS = {
    "gz_custom_cnn": 1_652_453,  # seed 001, Table 2
    "redshift_cnn1d": 699_073,  # seed 003
}


def _keras():
    import keras  # noqa: PLC0415 - deliberately lazy

    return keras


def galaxy_zoo_tree_layer():
    """A Keras layer enforcing the GZ2 decision tree on 37 non-negative scores.

    Registered as serialisable so ``.keras`` files load in safe mode; exported to
    ONNX as plain arithmetic, so every engine obeys the tree by construction.
    """
    keras = _keras()
    ops = keras.ops
    tree = galaxy_zoo2()

    @keras.saving.register_keras_serializable(package="astrocat", name="GalaxyZooTree")
    class GalaxyZooTree(keras.layers.Layer):
        def call(self, x):
            x = ops.relu(x)
            out: list[Any] = [None] * len(tree.answers)
            for q in tree.questions:  # parents before children
                block = x[:, q.start : q.stop]
                block = block / (ops.sum(block, axis=1, keepdims=True) + 1e-7)
                if q.parent_index is not None:
                    block = block * out[q.parent_index]
                for j in range(q.stop - q.start):
                    out[q.start + j] = block[:, j : j + 1]
            return ops.concatenate(out, axis=1)

        def compute_output_shape(self, input_shape):
            return input_shape

    return GalaxyZooTree


def gz_custom_cnn(input_shape=(64, 64, 3), dropout: float = 0.2):
    """Seed 001's custom CNN (1,652,453 parameters) with a GZ2-tree output layer."""
    keras = _keras()
    L = keras.layers
    n_out = len(galaxy_zoo2().answers)
    tree_layer = galaxy_zoo_tree_layer()
    inputs = keras.Input(shape=input_shape, name="image")
    x = L.Conv2D(32, 3)(inputs)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Dropout(dropout)(x)
    x = L.Conv2D(64, 3, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Dropout(dropout)(x)
    x = L.Conv2D(128, 6, activation="relu")(x)
    x = L.Dropout(dropout)(x)
    x = L.Flatten()(x)
    x = L.Dense(128, activation="relu")(x)
    x = L.Dropout(dropout)(x)
    x = L.Dense(64, activation="relu")(x)
    x = L.Dropout(dropout)(x)
    x = L.Dense(n_out, activation="sigmoid")(x)
    outputs = tree_layer(name="gz2_tree")(x)
    return keras.Model(inputs, outputs, name="gz_custom_cnn")


def gz_vgg6(input_shape=(128, 128, 3), dropout: float = 0.2):
    """Seed 002's VGG6: conv 16,16,32,32 (ReLU), dense 256, 37 outputs, on 128x128 crops."""
    keras = _keras()
    L = keras.layers
    tree_layer = galaxy_zoo_tree_layer()
    inputs = keras.Input(shape=input_shape, name="image")
    x = L.Conv2D(16, 3, activation="relu")(inputs)
    x = L.Dropout(dropout)(x)
    x = L.Conv2D(16, 3, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(32, 3, activation="relu")(x)
    x = L.Conv2D(32, 3, activation="relu")(x)
    x = L.BatchNormalization()(x)
    x = L.Dropout(dropout)(x)
    x = L.MaxPooling2D(4)(x)
    x = L.Flatten()(x)
    x = L.Dense(256, activation="relu")(x)
    x = L.Dropout(dropout)(x)
    x = L.Dense(len(galaxy_zoo2().answers), activation="sigmoid")(x)
    outputs = tree_layer(name="gz2_tree")(x)
    return keras.Model(inputs, outputs, name="gz_vgg6")


def redshift_cnn1d(input_length: int = 186):
    """Seed 003's 1-D CNN after its Bayesian search (699,073 parameters)."""
    keras = _keras()
    L = keras.layers
    inputs = keras.Input(shape=(input_length, 1), name="spectrum")
    x = inputs
    for filters, kernel in ((256, 5), (256, 5), (128, 3), (64, 2)):
        x = L.Conv1D(filters, kernel, activation="relu")(x)
        x = L.MaxPooling1D(2)(x)
    x = L.Flatten()(x)
    for units in (256, 256, 128, 64):
        x = L.Dense(units, activation="relu")(x)
    outputs = L.Dense(1, name="z")(x)
    return keras.Model(inputs, outputs, name="redshift_cnn1d")


def lens_lastro_cnn(input_shape=(101, 101, 1), dropout: float = 0.2):
    """Seed 004's LASTRO-style CNN for strong-lens finding; sigmoid output = P(lens)."""
    keras = _keras()
    L = keras.layers
    # BatchNorm statistics must settle within the few hundred steps a CPU training run
    # affords; with Keras' default momentum (0.99) validation lags far behind training.
    bn = functools.partial(L.BatchNormalization, momentum=0.9)
    inputs = keras.Input(shape=input_shape, name="image")
    x = L.Conv2D(16, 4, activation="relu")(inputs)
    x = L.Conv2D(16, 3, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = bn()(x)
    for filters in (32, 64):
        x = L.Conv2D(filters, 3, activation="relu")(x)
        x = L.Conv2D(filters, 3, activation="relu")(x)
        x = L.MaxPooling2D(2)(x)
        x = bn()(x)
    x = L.Dropout(dropout)(x)
    x = L.Conv2D(128, 3, activation="relu")(x)
    x = L.Dropout(dropout)(x)
    x = L.Conv2D(128, 3, activation="relu")(x)
    x = bn()(x)
    x = L.Dropout(dropout)(x)
    x = L.Flatten()(x)
    for i in range(3):
        x = L.Dense(1024, activation="relu")(x)
        if i < 2:
            x = L.Dropout(dropout)(x)
    x = bn()(x)
    x = L.Dense(64, activation="relu")(x)
    outputs = L.Dense(1, activation="sigmoid", name="p_lens")(x)
    return keras.Model(inputs, outputs, name="lens_lastro_cnn")


def cosmo_cnn(input_shape=(64, 64, 1), dropout: float = 0.1):
    """A compact CNN regressing (Omega_m, sigma_8) from a 2-D density map.

    Seed 004's original plan; the layout follows the CAMELS multifield CNNs
    (Villaescusa-Navarro et al. 2021) scaled down to 64x64 maps.
    """
    keras = _keras()
    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="field")
    x = inputs
    for filters in (16, 32, 64):
        x = L.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = L.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = L.BatchNormalization()(x)
        x = L.MaxPooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(64, activation="relu")(x)
    x = L.Dropout(dropout)(x)
    x = L.Dense(2)(x)
    # Regress in units of the prior's half-width around its centre (Quijote Latin
    # hypercube: Omega_m in [0.1, 0.5], sigma_8 in [0.6, 1.0]), so both targets are O(1).
    outputs = L.Rescaling(scale=[0.2, 0.2], offset=[0.3, 0.8], name="cosmology")(x)
    return keras.Model(inputs, outputs, name="cosmo_cnn")


ARCHITECTURES: dict[str, Callable[..., Any]] = {
    "gz_custom_cnn": gz_custom_cnn,
    "gz_vgg6": gz_vgg6,
    "redshift_cnn1d": redshift_cnn1d,
    "lens_lastro_cnn": lens_lastro_cnn,
    "cosmo_cnn": cosmo_cnn,
}
