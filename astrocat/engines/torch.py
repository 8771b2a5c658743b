"""PyTorch: the card's ONNX graph converted with onnx2torch, run on ``cuda:{device}`` when
CUDA is there, else on the CPU.

For GPU machines that have PyTorch but not TensorRT. The graph is the same file ONNX
Runtime runs (with the card's extra heads, features and logits, made outputs exactly as
for ONNX Runtime), so the catalog columns are the same network's. FP32 throughout: TF32
is switched off, since astrocat's precision is FP32 unless the card says INT8. INT8
(QDQ) graphs are refused: onnx2torch has no QuantizeLinear/DequantizeLinear converters.

``run`` also takes a ``torch.Tensor`` already on the device (a batch decoded and prepared
there by ``astrocat.sources.gpu_decode``), so such a batch never goes through the host.
``ASTROCAT_TORCH_DEVICE=cpu`` keeps the engine on the CPU where CUDA is (see
:func:`pick_device`); with it, ``--decode gpu`` runs the GPU-decoding path on the CPU.

Imported only when ``--engine torch`` is asked for: nothing else in astrocat imports
torch. Needs ``pip install 'astrocat[torch]'``. UNVERIFIED ON A GPU: where astrocat is
built there is none; on a CPU the conversion is tested against ONNX Runtime.
"""

from __future__ import annotations

import warnings

import numpy as np

from astrocat.engines.protocol import Heads, heads_of
from astrocat.errors import AstrocatError
from astrocat.models.card import ModelCard

#: ONNX operators of quantised graphs (QDQ and the older integer-operator forms), none of
#: which onnx2torch converts.
QUANTISED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                           "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})


#: onnx2torch 1.5's Slice indexes with a list, which PyTorch >= 2.5 warns about on every
#: call (a future PyTorch may read such an index differently: the parity tests against
#: ONNX Runtime would catch it). The warning alone is silenced, not the behaviour.
warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional "
                        "indexing is deprecated", category=UserWarning)


def quantised_ops(model) -> set[str]:
    """The quantisation operators an ``onnx.ModelProto`` holds (empty for FP32 graphs)."""
    return {n.op_type for n in model.graph.node} & QUANTISED_OPS


def refuse_quantised(card: ModelCard, ops: set[str] | None = None) -> None:
    """AstrocatError for an INT8 card (its ``[quantization]`` record, or ``ops`` found in
    its graph): the torch engine runs FP32 graphs only."""
    if ops or card.raw.get("quantization"):
        found = f" ({', '.join(sorted(ops))} nodes)" if ops else ""
        raise AstrocatError(
            f"engine torch cannot run model '{card.name}': its ONNX graph is INT8-quantised"
            f"{found}, which onnx2torch does not convert. Run it with --engine onnxruntime, "
            "or its FP32 model (--precision fp32) with --engine torch")


def import_torch():
    """``torch`` and ``onnx2torch.convert``, or an AstrocatError saying what to install."""
    try:
        import torch
    except ImportError as exc:
        raise AstrocatError("engine torch needs PyTorch: pip install 'astrocat[torch]'"
                            ) from exc
    try:
        from onnx2torch import convert
    except ImportError as exc:
        raise AstrocatError("engine torch needs onnx2torch (and torchvision, which it "
                            f"imports): pip install 'astrocat[torch]' ({exc})") from exc
    return torch, convert


def fp32_only(torch) -> None:
    """Convolutions and matrix products in IEEE FP32 on the GPU, not TF32 (PyTorch's
    default for cuDNN convolutions on Ampere and later): outputs within float32 rounding
    of ONNX Runtime's."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    if conv is not None:  # PyTorch >= 2.9: the precision API
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


#: Environment variable: ``cpu`` keeps the torch engine on the CPU even where CUDA is
#: (tests, and running the GPU-decoding path, ``--decode gpu``, on a CPU); ``cuda`` (or
#: unset) uses ``cuda:{device}`` where CUDA sees it, else the CPU.
DEVICE_ENV = "ASTROCAT_TORCH_DEVICE"


def device_override() -> str | None:
    """``cpu`` or ``cuda`` as ``ASTROCAT_TORCH_DEVICE`` asks (None when unset); an
    AstrocatError for anything else. Reads the environment only: imports nothing."""
    import os

    value = os.environ.get(DEVICE_ENV, "").strip().lower()
    if value in ("", "cpu", "cuda"):
        return value or None
    raise AstrocatError(f"{DEVICE_ENV}={os.environ[DEVICE_ENV]!r}: give cpu or cuda")


def pick_device(torch, device: int = 0):
    """``cuda:{device}`` when CUDA sees that device, else the CPU; always the CPU when
    ``ASTROCAT_TORCH_DEVICE=cpu``."""
    if (device_override() != "cpu" and torch.cuda.is_available()
            and 0 <= device < torch.cuda.device_count()):
        return torch.device(f"cuda:{device}")
    return torch.device("cpu")


def device_type(device: int = 0) -> str:
    """``cuda`` or ``cpu``: where the torch engine would run (imports torch)."""
    torch, _ = import_torch()
    return pick_device(torch, device).type


class TorchEngine:
    name = "torch"

    def __init__(self, card: ModelCard, threads: int = 1, device: int = 0) -> None:
        import onnx

        from astrocat.models.graph import graph_with_heads

        refuse_quantised(card)
        torch, convert = import_torch()
        path = card.weights("onnx")
        if card.reference is not None or card.logits:  # features and logits as outputs
            path, _ = graph_with_heads(card)
        model = onnx.load(str(path))
        refuse_quantised(card, quantised_ops(model))
        try:
            module = convert(model)
        except Exception as exc:  # noqa: BLE001 - onnx2torch raises plain exceptions
            raise AstrocatError(f"onnx2torch could not convert model '{card.name}' "
                                f"({type(exc).__name__}: {exc}); use --engine onnxruntime"
                                ) from exc
        self.device = pick_device(torch, device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            fp32_only(torch)
        else:
            torch.set_num_threads(max(1, threads))  # per process; one per engine on a CPU
        self._torch = torch
        self._module = module.eval().to(self.device)
        self._card = card

    def forward(self, batch):
        """The graph's outputs as tensors on the device, in ``graph.heads`` order (the
        graph's own output, then features, then logits)."""
        torch = self._torch
        if isinstance(batch, torch.Tensor):
            x = batch.to(self.device, torch.float32)  # no copy when already there
        else:
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
        with torch.inference_mode():
            out = self._module(x)
        return list(out) if isinstance(out, tuple | list) else [out]

    def run(self, batch) -> Heads:
        outs = self.forward(batch)
        arrays = [o.detach().to("cpu", self._torch.float32).numpy() for o in outs]
        return heads_of(arrays, int(batch.shape[0]), self._card)

    def predict(self, batch) -> np.ndarray:
        return self.run(batch).values
