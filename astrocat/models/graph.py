"""The card against the graph: the ONNX file's input shape, layout and output count,
read with ONNX Runtime and compared with the card before a single input is read.

A mismatch is a ``CardError`` saying what to change in the card. Keras-only cards are
checked against their card alone (reading a Keras graph would import TensorFlow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from astrocat.errors import CardError
from astrocat.kinds import Kind
from astrocat.models.card import ModelCard


@dataclass(frozen=True)
class GraphSignature:
    """What an ONNX graph takes and gives: dims are ints, or names for dynamic axes."""

    input_name: str
    input_type: str
    input_dims: tuple[int | str | None, ...]
    output_name: str
    output_dims: tuple[int | str | None, ...]
    n_inputs: int


def open_session(path: str):
    """An ONNX Runtime session for inspection only (no graph optimisation: fast to open)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own classes
        raise CardError(f"{path} is not a usable ONNX graph ({exc})") from exc


def signature(session) -> GraphSignature:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    return GraphSignature(inputs[0].name, inputs[0].type, tuple(inputs[0].shape),
                          outputs[0].name, tuple(outputs[0].shape), len(inputs))


def fmt_dims(dims) -> str:
    """[N, 3, 224, 224]: the batch axis as N, other dynamic axes as ?."""
    return "[" + ", ".join(str(d) if isinstance(d, int) else "N" if i == 0 else "?"
                           for i, d in enumerate(dims)) + "]"


def guess_layout(dims: tuple) -> str:
    """NCHW when the axis after the batch looks like channels (1 or 3) and the last does not."""
    if len(dims) == 4 and dims[1] in (1, 3) and dims[3] not in (1, 3):
        return "NCHW"
    return "NHWC"


def _suggestion(dims: tuple, card: ModelCard) -> str:
    item = [d if isinstance(d, int) else "?" for d in dims[1:]]
    if card.input.kind != Kind.SPECTRUM and len(item) == 3:
        layout = guess_layout(dims)
        if layout != card.input.layout:
            return f'set layout = "{layout}" and shape = {item}'
    return f"set shape = {item}"


def n_outputs(session, sig: GraphSignature, item: tuple[int, ...]) -> int:
    """Values per item of the first output: from its shape, or by running one item."""
    rest = sig.output_dims[1:]
    if all(isinstance(d, int) for d in rest):
        return math.prod(rest)
    x = np.zeros((1, *item), np.float32)
    return int(np.asarray(session.run(None, {sig.input_name: x})[0]).size)


def check_graph(card: ModelCard) -> GraphSignature | None:
    """Refuse a card that does not describe its ONNX graph; None for Keras-only cards."""
    if "onnx" not in card.files:
        return None
    session = open_session(str(card.weights("onnx")))
    sig = signature(session)
    where = card.source or f"model '{card.name}'"
    if sig.n_inputs != 1:
        raise CardError(f"{where}: the graph has {sig.n_inputs} inputs; astrocat feeds one "
                        "tensor (export the network with a single input)")
    if sig.input_type != "tensor(float)":
        raise CardError(f"{where}: the graph's input is {sig.input_type}; astrocat feeds "
                        "float32 (tensor(float))")
    dims, want = sig.input_dims, card.input.shape
    fits = len(dims) == len(want) + 1 and all(
        not isinstance(d, int) or d == w for d, w in zip(dims[1:], want, strict=True))
    if not fits:
        raise CardError(f"{where} [input]: shape = {list(want)} (layout = "
                        f"\"{card.input.layout}\") does not fit the graph, which takes "
                        f"{fmt_dims(dims)}: {_suggestion(dims, card)}")
    if isinstance(dims[0], int):
        raise CardError(f"{where}: the graph was exported with a fixed batch of {dims[0]}; "
                        "astrocat feeds batches: export it with a dynamic batch axis (e.g. "
                        "torch.onnx.export(..., dynamic_axes={'input': {0: 'N'}}))")
    n = n_outputs(session, sig, card.input.shape)
    if n != len(card.outputs):
        raise CardError(f"{where}: [[outputs]] lists {len(card.outputs)} outputs but the graph "
                        f"gives {n} per item ({sig.output_name} {fmt_dims(sig.output_dims)}): list "
                        f"exactly {n}, in the graph's order")
    return sig
