"""TensorRT on NVIDIA GPUs: ONNX -> serialized engine plan (cached), then inference.

Written against NVIDIA's documented TensorRT 10 Python API (named I/O tensors,
``execute_async_v3``) and cuda-python's runtime bindings. UNVERIFIED ON HARDWARE: no GPU
was available where astrocat was built; the tests skip without one.

Plans are cached under a key of everything that makes a plan invalid elsewhere: model
sha256, TensorRT version, GPU name and compute capability, precision and batch profile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrocat.cache import cache_dir, write_atomically
from astrocat.engines.protocol import Heads, heads_of
from astrocat.errors import AstrocatError
from astrocat.models.card import ModelCard


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise AstrocatError(f"CUDA call failed with error {err}")
    return rest[0] if len(rest) == 1 else rest


@dataclass(frozen=True)
class PlanKey:
    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    max_batch: int
    heads: tuple[str, ...] = ()  # extra outputs marked (features, logits)

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:32]


def plan_key(card: ModelCard, precision: str, max_batch: int, device: int = 0) -> PlanKey:
    import tensorrt as trt

    from astrocat.models.graph import heads

    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return PlanKey(card.fingerprint, trt.__version__, name.strip("\x00"),
                   f"{props.major}.{props.minor}", precision, max_batch, tuple(heads(card)))


def build_plan(card: ModelCard, precision: str = "fp32", max_batch: int = 256) -> bytes:
    """Parse the card's ONNX graph and build an engine for batches 1..max_batch."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(card.weights("onnx").read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise AstrocatError(f"TensorRT could not parse {card.name}'s ONNX graph: {errors}")
    _mark_heads(network, card)
    config = builder.create_builder_config()
    if precision == "fp16":
        # TensorRT 10 has the FP16 builder flag; TensorRT 11 removed it (reduced precision
        # must then come from the ONNX graph itself, e.g. NVIDIA ModelOpt autocast).
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise AstrocatError(
                "this TensorRT has no FP16 builder flag (TensorRT >= 11): export an FP16 "
                "ONNX graph (e.g. with NVIDIA ModelOpt autocast) or use --precision fp32"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    tensor = network.get_input(0)
    item = tuple(card.input.shape)
    profile.set_shape(tensor.name, (1, *item), (max(1, max_batch // 2), *item),
                      (max_batch, *item))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise AstrocatError(f"TensorRT failed to build an engine for {card.name}")
    return bytes(plan)


def _mark_heads(network, card: ModelCard) -> None:
    """Make the card's extra heads (features, logits) network outputs, after its own."""
    from astrocat.models.graph import heads

    wanted = heads(card)
    if not wanted:
        return
    found = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            t = layer.get_output(j)
            if t.name in wanted:
                found[t.name] = t
    for name in wanted:
        if name not in found:
            raise AstrocatError(f"TensorRT's network for {card.name} has no tensor {name} "
                                "(the card's features or logit)")
        network.mark_output(found[name])


def cached_plan(card: ModelCard, precision: str, max_batch: int, device: int = 0) -> Path:
    key = plan_key(card, precision, max_batch, device)
    path = cache_dir("tensorrt") / f"{card.name}-{key.digest()}.plan"
    if not path.is_file():
        write_atomically(path, build_plan(card, precision, max_batch))
    return path


class TensorRTEngine:
    name = "tensorrt"

    def __init__(self, card: ModelCard, device: int = 0, precision: str = "fp32",
                 max_batch: int = 256) -> None:
        import tensorrt as trt

        self._cudart = _cudart()
        _check(self._cudart.cudaSetDevice(device))
        plan = cached_plan(card, precision, max_batch, device).read_bytes()
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._input = next(n for n in names
                           if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        # outputs in the order they were marked: the graph's own, then the extra heads
        self._outputs = [n for n in names
                         if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._width = [int(np.prod([d for d in self._engine.get_tensor_shape(n)[1:]]))
                       for n in self._outputs]
        self._max_batch = max_batch
        self._card = card
        self._stream = _check(self._cudart.cudaStreamCreate())
        item = int(np.prod(card.input.shape))
        self._d_in = _check(self._cudart.cudaMalloc(max_batch * item * 4))
        self._d_out = [_check(self._cudart.cudaMalloc(max_batch * w * 4)) for w in self._width]

    def run(self, batch: np.ndarray) -> Heads:
        cudart = self._cudart
        chunks: list[list[np.ndarray]] = [[] for _ in self._outputs]
        for start in range(0, len(batch), self._max_batch):
            x = np.ascontiguousarray(batch[start : start + self._max_batch], np.float32)
            ys = [np.empty((len(x), w), np.float32) for w in self._width]
            kind_h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            kind_d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            _check(cudart.cudaMemcpyAsync(self._d_in, x.ctypes.data, x.nbytes, kind_h2d,
                                          self._stream))
            self._context.set_input_shape(self._input, x.shape)
            self._context.set_tensor_address(self._input, int(self._d_in))
            for name, d_out in zip(self._outputs, self._d_out, strict=True):
                self._context.set_tensor_address(name, int(d_out))
            if not self._context.execute_async_v3(self._stream):
                raise AstrocatError("TensorRT execution failed")
            for y, d_out, chunk in zip(ys, self._d_out, chunks, strict=True):
                _check(cudart.cudaMemcpyAsync(y.ctypes.data, d_out, y.nbytes, kind_d2h,
                                              self._stream))
                chunk.append(y)
            _check(cudart.cudaStreamSynchronize(self._stream))
        arrays = [np.concatenate(c) if c else np.empty((0, w), np.float32)
                  for c, w in zip(chunks, self._width, strict=True)]
        return heads_of(arrays, len(batch), self._card)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch).values
