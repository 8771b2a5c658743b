"""What an engine is, and what one batch gives back: the types that ``base`` (which picks
and opens an engine) and every engine module share, so neither imports the other back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from astrocat.models.card import ModelCard


@dataclass(frozen=True)
class Heads:
    """What one batch gave: the outputs (n, n_outputs), and where the card asks for them
    the penultimate features (n, d) and the logits of its sigmoid scores (n, n_outputs)."""

    values: np.ndarray
    features: np.ndarray | None = None
    logits: np.ndarray | None = None


def heads_of(arrays: list, n: int, card: ModelCard) -> Heads:
    """Heads from a graph's outputs in ``graph.heads`` order (the outputs first)."""
    flat = [np.asarray(a, np.float32).reshape(n, -1) for a in arrays]
    features = flat.pop(1) if card.reference is not None else None
    logits = flat.pop(1) if card.logits else None
    return Heads(flat[0], features, logits)


class Engine(Protocol):
    """A loaded model: float32 batch (n, *input shape) in; ``run`` gives its heads,
    ``predict`` only the (n, n_outputs) float32 outputs. (The torch engine also takes a
    ``torch.Tensor`` already on its device.)"""

    name: str

    def run(self, batch: np.ndarray) -> Heads: ...

    def predict(self, batch: np.ndarray) -> np.ndarray: ...
