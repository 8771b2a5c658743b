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
