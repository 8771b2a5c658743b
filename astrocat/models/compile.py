"""``astrocat compile``: Keras -> ONNX, ONNX -> TensorRT where a GPU exists, and
``--precision int8``: a static INT8 variant for ONNX Runtime (``models.quantize``).

Every compiled artefact is checked against the reference (Keras for ONNX, ONNX Runtime
for TensorRT, the FP32 model's science figures for INT8); one beyond tolerance is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from astrocat.errors import AstrocatError
from astrocat.models.card import sha256_file, write_card
from astrocat.models.export import ONNX_TOLERANCE, export_onnx
from astrocat.models.zoo import resolve

#: TensorRT vs ONNX Runtime tolerance per precision.
TRT_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}


def validation_batch(shape: tuple[int, ...], n: int = 16, seed: int = 0) -> np.ndarray:
    """Inputs in the range the networks see after preprocessing."""
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def compile_model(model: str, out: Path | None, tensorrt: bool | None, precision: str,
                  max_batch: int) -> Iterator[str]:
    """Progress lines of the compile; raises ``AstrocatError`` when a result is refused."""
    if precision == "int8":
        if tensorrt:
            raise AstrocatError("--precision int8 makes an ONNX Runtime variant "
                                "(<model>-int8); TensorRT INT8 is not built here")
        from astrocat.models.quantize import quantize_steps

        yield from quantize_steps(model, out)
        return
    from astrocat.engines.base import gpu_available

    if precision == "fp16":  # only TensorRT builds FP16: refuse before any work
        if tensorrt is False:
            raise AstrocatError("--precision fp16 builds a TensorRT engine; it cannot be "
                                "combined with --no-tensorrt")
        if not gpu_available():
            raise AstrocatError("--precision fp16 needs a TensorRT engine on an NVIDIA GPU "
                                "(nvidia-smi and the tensorrt package); there is none here, "
                                "so nothing was compiled. On a CPU use --precision fp32 "
                                "(ONNX) or --precision int8 (an ONNX Runtime INT8 variant)")
    card = resolve(model)
    card.verify()
    x = validation_batch(card.input.shape)
    if "keras" in card.files:
        from astrocat.engines.tf import load_keras

        target = Path(out) if out else card.directory
        target.mkdir(parents=True, exist_ok=True)
        deviation = export_onnx(load_keras(card.weights("keras")), target / "model.onnx", x)
        yield f"ONNX: {target / 'model.onnx'} (max |ONNX - Keras| = {deviation:.2e}, " \
              f"tolerance {ONNX_TOLERANCE:.0e})"
        raw = dict(card.raw)
        raw["files"] = {**card.files, "onnx": "model.onnx"}
        if target != card.directory:
            import shutil

            for fmt, name in card.files.items():
                if fmt != "onnx":
                    shutil.copy2(card.directory / name, target / name)
            if card.reference is not None:  # the same graph tensors: the same statistics
                shutil.copy2(card.reference_path, target / card.reference.file)
        if target == card.directory and sha256_file(target / "model.onnx") == card.sha256.get(
                "onnx"):
            yield "ONNX graph unchanged; card kept"
        else:
            write_card(raw, target)
            yield f"card: {target / 'card.toml'}"
        card = resolve(str(target))
    if tensorrt is None:
        tensorrt = gpu_available()
    if not tensorrt:
        yield "TensorRT: skipped (no NVIDIA GPU with TensorRT here)"
        return
    if not gpu_available():
        raise AstrocatError("--tensorrt needs an NVIDIA GPU and the tensorrt package")
    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.engines.tensorrt import TensorRTEngine, cached_plan

    plan = cached_plan(card, precision, max_batch)
    got = TensorRTEngine(card, precision=precision, max_batch=max_batch).predict(x)
    ref = OnnxRuntimeEngine(card).predict(x)
    deviation = float(np.max(np.abs(got - ref)))
    if deviation > TRT_TOLERANCE[precision]:
        plan.unlink(missing_ok=True)
        raise AstrocatError(f"TensorRT {precision} engine deviates by {deviation:.2e} "
                            f"(> {TRT_TOLERANCE[precision]:.0e}); refused")
    yield f"TensorRT: {plan} (max |TRT - ONNX Runtime| = {deviation:.2e})"
