"""Keras -> ONNX export, checked against the reference before it is accepted."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from astrocat.errors import AstrocatError

#: Largest |ONNX - Keras| accepted on a validation batch (float32 round-off is ~1e-6).
ONNX_TOLERANCE = 1e-4


def save_for_inference(model, path: Path) -> None:
    """Save weights and graph without optimizer state (a third of the size for Adam)."""
    from astrocat.engines.tf import load_keras

    path = Path(path)
    tmp = path.with_name(f".{path.name}.with-optimizer.keras")
    model.save(str(tmp))
    try:
        load_keras(tmp).save(str(path))  # compile=False: the reload carries no optimizer
    finally:
        tmp.unlink(missing_ok=True)


def export_onnx(model, onnx_path: Path, sample: np.ndarray) -> float:
    """Write ``model`` as ONNX; return the largest deviation from Keras on ``sample``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import onnxruntime as ort

    reference = np.asarray(model.predict(sample, verbose=0), dtype=np.float32)
    onnx_path = Path(onnx_path)
    model.export(str(onnx_path), format="onnx", verbose=False)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: sample.astype(np.float32)})[0]
    deviation = float(np.max(np.abs(got.reshape(reference.shape) - reference)))
    if deviation > ONNX_TOLERANCE:
        onnx_path.unlink(missing_ok=True)
        raise AstrocatError(
            f"ONNX export deviates from Keras by {deviation:.2e} (> {ONNX_TOLERANCE:.0e}); "
            "refusing it"
        )
    return deviation
