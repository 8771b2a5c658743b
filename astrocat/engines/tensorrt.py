"""TensorRT on NVIDIA GPUs: ONNX -> serialized engine plan (cached), then inference.

Written against NVIDIA's documented TensorRT 10 Python API (named I/O tensors,
``execute_async_v3``) and cuda-python's runtime bindings. UNVERIFIED ON HARDWARE: no GPU
was available where astrocat was built; the tests skip without one.

Plans are cached under a key of everything that makes a plan invalid elsewhere: model
sha256, TensorRT version, GPU name and compute capability, precision and batch profile.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:32]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "astrocat" / "tensorrt"


def plan_key(card: ModelCard, precision: str, max_batch: int, device: int = 0) -> PlanKey:
    import tensorrt as trt

    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return PlanKey(card.fingerprint, trt.__version__, name.strip("\x00"),
                   f"{props.major}.{props.minor}", precision, max_batch)


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


def cached_plan(card: ModelCard, precision: str, max_batch: int, device: int = 0) -> Path:
    key = plan_key(card, precision, max_batch, device)
    path = cache_dir() / f"{card.name}-{key.digest()}.plan"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_bytes(build_plan(card, precision, max_batch))
        os.replace(tmp, path)
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
        self._output = next(n for n in names
                            if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self._max_batch = max_batch
        self._n_out = len(card.outputs)
        self._stream = _check(self._cudart.cudaStreamCreate())
        item = int(np.prod(card.input.shape))
        self._d_in = _check(self._cudart.cudaMalloc(max_batch * item * 4))
        self._d_out = _check(self._cudart.cudaMalloc(max_batch * self._n_out * 4))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        outs = []
        for start in range(0, len(batch), self._max_batch):
            x = np.ascontiguousarray(batch[start : start + self._max_batch], np.float32)
            y = np.empty((len(x), self._n_out), np.float32)
            kind_h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            kind_d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            _check(cudart.cudaMemcpyAsync(self._d_in, x.ctypes.data, x.nbytes, kind_h2d,
                                          self._stream))
            self._context.set_input_shape(self._input, x.shape)
            self._context.set_tensor_address(self._input, int(self._d_in))
            self._context.set_tensor_address(self._output, int(self._d_out))
            if not self._context.execute_async_v3(self._stream):
                raise AstrocatError("TensorRT execution failed")
            _check(cudart.cudaMemcpyAsync(y.ctypes.data, self._d_out, y.nbytes, kind_d2h,
                                          self._stream))
            _check(cudart.cudaStreamSynchronize(self._stream))
            outs.append(y)
        return np.concatenate(outs) if outs else np.empty((0, self._n_out), np.float32)
