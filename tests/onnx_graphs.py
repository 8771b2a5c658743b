"""Small ONNX graphs built in the tests, standing in for third-party networks.

``linear_image_graph`` is y = flatten(x) @ W + b for images in either layout: every pixel
of every channel moves the outputs, so a half-pixel crop, a wrong channel order or a
wrong normalisation shows up, and the numpy reference is one matrix product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def linear_image_graph(path: Path, size: int, n_out: int, layout: str = "NHWC",
                       channels: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write the graph; return (W, b) so that y = x.reshape(n, -1) @ W + b."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    n_in = size * size * channels
    w = (rng.normal(0, 1, (n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = rng.normal(0, 0.1, n_out).astype(np.float32)
    dims = ["N", size, size, channels] if layout == "NHWC" else ["N", channels, size, size]
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "W"], ["mm"]),
         helper.make_node("Add", ["mm", "b"], ["scores"])],
        "linear_image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_out])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w, b


def conv_image_graph(path: Path, size: int, n_out: int, channels: int = 32,
                     seed: int = 0) -> None:
    """A small CNN at full resolution (NHWC input): two 3x3 convolutions of ``channels``
    filters, global average pooling, a dense layer. Its activations, not its weights,
    are what a batch costs: the memory-aware batch choice has something to bite on."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.normal(0, 0.2, (channels, 3, 3, 3))).astype(np.float32)
    w2 = (rng.normal(0, 0.05, (channels, channels, 3, 3))).astype(np.float32)
    w3 = (rng.normal(0, 0.2, (channels, n_out))).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w3"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "conv_image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_out])],
        initializer=[numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"),
                                                                 (w3, "w3"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
