"""ONNX Runtime on CPU: the default engine (about 2x Keras ``predict`` on seed 001's CNN)."""

from __future__ import annotations

import numpy as np

from astrocat.models.card import ModelCard


class OnnxRuntimeEngine:
    name = "onnxruntime"

    def __init__(self, card: ModelCard, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # Its feed's intra_op: on a CPU one thread per instance, an instance per core.
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        # Decoder threads share these cores: idle intra-op threads must sleep, not spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(card.weights("onnx")), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)
