"""The card against the graph: the ONNX file's input shape, layout and output count,
read with ONNX Runtime and compared with the card before a single input is read.

A mismatch is a ``CardError`` saying what to change in the card. Keras-only cards are
checked against their card alone (reading a Keras graph would import TensorFlow).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astrocat.cache import cache_dir, write_atomically
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
    heads(card)  # the extra heads exist: a wrong tensor name fails here, not mid-run
    return sig


# --------------------------------------------------------------------------- extra heads
#
# The out-of-domain distance needs the network's penultimate features, and a sigmoid
# score its logit: both are tensors inside the graph. They are made graph outputs when a
# session is opened (``with_heads``), so the weights file, and its digest, never change.

#: Nodes that pass a tensor on unchanged in value (walked through to find a sigmoid).
_PASS_THROUGH = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


def _load(path) -> Any:
    import onnx

    return onnx.load(str(path))


def feature_tensor(path) -> str:
    """The penultimate features: the data input of the graph's last dense layer (its last
    MatMul or Gemm whose weights are constants). In a quantised (QDQ) graph the weights are
    a DequantizeLinear of constants and the data a DequantizeLinear of a QuantizeLinear:
    the features are the float tensor before that pair, as in the FP32 graph."""
    graph = _load(path).graph
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    consts |= {o for n in graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] in consts for o in n.output}
    dense = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1
             and n.input[1] in consts]
    if not dense:
        raise CardError(f"{path}: the graph has no dense layer whose input could serve as "
                        "its penultimate features")
    tensor = dense[-1].input[0]
    node = producer.get(tensor)
    while node is not None and node.op_type in ("DequantizeLinear", "QuantizeLinear"):
        tensor = node.input[0]
        node = producer.get(tensor)
    return tensor


def logit_tensor(path) -> str | None:
    """The input of the sigmoid that makes the graph's first output, if one does."""
    graph = _load(path).graph
    producer = {o: n for n in graph.node for o in n.output}
    node = producer.get(graph.output[0].name)
    while node is not None and node.op_type in _PASS_THROUGH:
        node = producer.get(node.input[0])
    return node.input[0] if node is not None and node.op_type == "Sigmoid" else None


def with_heads(path, names: list[str]) -> bytes:
    """The graph serialised with ``names`` added as outputs after its own."""
    import onnx

    model = _load(path)
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


def _heads(card: ModelCard) -> list[str]:
    """The extra tensors ``card``'s engine must give: features, then the logits."""
    out = []
    if card.reference is not None:
        out.append(card.reference.features)
    if card.logits:
        tensor = logit_tensor(card.weights("onnx"))
        if tensor is None:
            raise CardError(f"{card.source or card.name}: outputs marked logit = true, but "
                            "the graph's output is not made by a Sigmoid")
        out.append(tensor)
    return out


def graph_with_heads(card: ModelCard) -> tuple[Path, list[str]]:
    """``card``'s ONNX graph with its extra heads as outputs (features, then logits), and
    their names. Made once per machine and weights (importing ``onnx`` alone takes about a
    second) and cached beside the TensorRT plans; later runs open the cached file."""
    want = [card.reference.features if card.reference else None, bool(card.logits)]
    key = hashlib.sha256(json.dumps([card.fingerprint, *want]).encode()).hexdigest()[:24]
    path = cache_dir("graphs") / f"{card.name}-{key}.onnx"
    names_file = path.with_suffix(".json")
    if path.is_file() and names_file.is_file():
        return path, json.loads(names_file.read_text())
    names = _heads(card)
    known = {o for n in _load(card.weights("onnx")).graph.node for o in n.output}
    for name in names:
        if name not in known:
            raise CardError(f"{card.source or card.name} [reference]: features = \"{name}\" "
                            "is not a tensor of the graph (re-run `astrocat models reference`)")
    write_atomically(path, with_heads(card.weights("onnx"), names))
    write_atomically(names_file, json.dumps(names).encode())
    return path, names


def heads(card: ModelCard) -> list[str]:
    """The extra outputs ``card``'s engine gives (none for a card that asks for none)."""
    if card.reference is None and not card.logits:
        return []
    return graph_with_heads(card)[1]


#: ONNX Runtime's CPU arena peaks at about this many times the two largest intermediate
#: tensors of a batch (blocked-layout copies, im2col buffers): measured 2.2x for
#: lens-lastro (2.7 MiB per item against 1.2 MiB), so batches are sized with some margin.
ARENA_FACTOR = 2.5


@functools.lru_cache(maxsize=32)
def activation_bytes(path: str, sha256: str) -> int | None:
    """Peak bytes of a network's intermediate tensors per item, from the graph's shapes
    (ONNX shape inference, float32); None where the shapes cannot be known. Worked out
    once per machine and weights (importing ``onnx`` takes a second) and cached beside
    the graphs with heads."""
    cached = cache_dir("graphs") / f"activations-{sha256[:24]}.json"
    if cached.is_file():
        return json.loads(cached.read_text())["bytes_per_item"]
    import onnx

    try:
        graph = onnx.shape_inference.infer_shapes(_load(path)).graph
    except Exception:  # noqa: BLE001 - an odd graph: the caller's estimate stands
        return None
    sizes = []
    for info in graph.value_info:
        dims = info.type.tensor_type.shape.dim[1:]  # the batch axis off
        if not dims or any(d.dim_value <= 0 for d in dims):
            continue
        sizes.append(math.prod(d.dim_value for d in dims) * 4)
    estimate = int(ARENA_FACTOR * sum(sorted(sizes)[-2:])) if sizes else None
    write_atomically(cached, json.dumps({"bytes_per_item": estimate}).encode())
    return estimate
