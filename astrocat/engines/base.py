"""Engine selection. Each engine module imports its runtime lazily, so choosing ONNX
Runtime never imports TensorFlow, and choosing either never imports TensorRT or PyTorch.
The engine modules import what they share with this one (``Heads``, ``heads_of``, the
``Engine`` protocol) from :mod:`astrocat.engines.protocol`, never from here.
"""

from __future__ import annotations

import importlib.util
import shutil

from astrocat.engines.protocol import Engine
from astrocat.engines.protocol import Heads as Heads  # re-exported: engines.base.Heads
from astrocat.engines.protocol import heads_of as heads_of
from astrocat.errors import AstrocatError
from astrocat.models.card import ModelCard

ENGINES = ("auto", "onnxruntime", "tensorflow", "tensorrt", "torch")


def gpu_available() -> bool:
    """An NVIDIA GPU visible to the driver and TensorRT importable."""
    return shutil.which("nvidia-smi") is not None and (
        importlib.util.find_spec("tensorrt") is not None
    )


def wants_gpu(engine: str) -> bool:
    """Whether a run on ``engine`` should get one worker per GPU: TensorRT always, PyTorch
    where ``nvidia-smi`` is (else it runs on the CPU, placed like ONNX Runtime)."""
    return engine == "tensorrt" or (engine == "torch" and shutil.which("nvidia-smi") is not None)


def choose_engine(requested: str, card: ModelCard) -> str:
    """Resolve ``auto``: TensorRT on a GPU, else ONNX Runtime, else TensorFlow (keras-only).
    ``torch`` is used only when asked for."""
    if requested not in ENGINES:
        raise AstrocatError(f"unknown engine '{requested}' (choose from {', '.join(ENGINES)})")
    if requested != "auto":
        need = {"onnxruntime": "onnx", "tensorrt": "onnx", "torch": "onnx",
                "tensorflow": "keras"}[requested]
        if need not in card.files:
            raise AstrocatError(
                f"engine {requested} needs {need} weights but model '{card.name}' has only "
                f"{', '.join(card.files)}"
            )
        if requested == "tensorflow" and importlib.util.find_spec("tensorflow") is None:
            raise AstrocatError(
                "engine tensorflow needs TensorFlow: pip install 'astrocat[train]'"
            )
        if requested == "tensorrt" and not gpu_available():
            raise AstrocatError("engine tensorrt needs an NVIDIA GPU and the tensorrt package")
        if requested == "torch":
            _check_torch(card)
        return requested
    if "onnx" in card.files:
        return "tensorrt" if gpu_available() else "onnxruntime"
    return "tensorflow"


def _check_torch(card: ModelCard) -> None:
    """Refuse ``--engine torch`` before any input is read: PyTorch, onnx2torch and
    torchvision installed (looked up, not imported), and an FP32 card."""
    missing = [m for m in ("torch", "onnx2torch", "torchvision")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise AstrocatError(f"engine torch needs {', '.join(missing)}: pip install "
                            "'astrocat[torch]'")
    from astrocat.engines.torch import refuse_quantised

    refuse_quantised(card)


def open_engine(card: ModelCard, engine: str, threads: int = 1, device: int = 0) -> Engine:
    """Load ``card``'s weights into the named (already resolved) engine."""
    if engine == "onnxruntime":
        from astrocat.engines.onnx import OnnxRuntimeEngine

        return OnnxRuntimeEngine(card, threads)
    if engine == "tensorflow":
        from astrocat.engines.tf import TensorFlowEngine

        return TensorFlowEngine(card, threads)
    if engine == "tensorrt":
        from astrocat.engines.tensorrt import TensorRTEngine

        return TensorRTEngine(card, device)
    if engine == "torch":
        from astrocat.engines.torch import TorchEngine

        return TorchEngine(card, threads, device)
    raise AstrocatError(f"unknown engine '{engine}'")
