"""ONNX Runtime on CPU: the default engine (about 2x Keras ``predict`` on seed 001's CNN)."""

from __future__ import annotations

import numpy as np

from astrocat.engines.protocol import Heads, heads_of
from astrocat.models.card import ModelCard


class OnnxRuntimeEngine:
    name = "onnxruntime"

    def __init__(self, card: ModelCard, threads: int = 1) -> None:
        import onnxruntime as ort

        from astrocat.models.graph import graph_with_heads

        opts = ort.SessionOptions()
        # Its feed's intra_op: on a CPU one thread per instance, an instance per core.
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        # Decoder threads share these cores: idle intra-op threads must sleep, not spin.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path, extra = card.weights("onnx"), []
        if card.reference is not None or card.logits:  # features and logits as outputs
            path, extra = graph_with_heads(card)
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = [self._session.get_outputs()[0].name, *extra]
        self._card = card

    def run(self, batch: np.ndarray) -> Heads:
        x = np.ascontiguousarray(batch, np.float32)
        return heads_of(self._session.run(self._outputs, {self._input: x}), len(batch),
                        self._card)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch).values
