"""A batch's catalog columns from one model: the views in, the heads out, and what the
catalog keeps of them (outputs, logits, spread and intervals, the out-of-domain distance).

Runs in the engine's own thread, so the views, the statistics and the distances of one
batch overlap the next batch's decoding. The views multiply the network's work, not the
decoding: items are decoded and prepared once, then rotated and flipped in memory.
"""

from __future__ import annotations

import numpy as np

from astrocat.engines.base import Engine
from astrocat.kernels import ood
from astrocat.kernels.views import available, make_views, reduce_views
from astrocat.models import reference_stats
from astrocat.models.card import ModelCard


class BatchColumns:
    """``card``'s columns for prepared batches, given an open engine."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self.views = available(card.invariances)[: max(1, card.tta)]
        self.reference = reference_stats.of(card)

    def __call__(self, model: Engine, x: np.ndarray) -> dict[str, np.ndarray]:
        card, n, m = self.card, len(x), len(self.views)
        heads = model.run(make_views(x, self.views, card.input.layout) if m > 1 else x)
        values = np.asarray(heads.values, np.float32).reshape(m * n, -1)
        if values.shape[1] != len(card.outputs):
            raise RuntimeError(f"model '{card.name}' gave {values.shape[1]} values per item, "
                               f"its card lists {len(card.outputs)}")
        out: dict[str, np.ndarray] = {}
        mean, spread = reduce_views(values, m) if m > 1 else (values, None)
        for j, o in enumerate(card.outputs):
            out[o.name] = mean[:, j]
        if heads.logits is not None:
            logits = heads.logits.reshape(m, n, -1).mean(axis=0)
            for j, o in enumerate(card.outputs):
                if o.logit:
                    out[f"{o.name}_logit"] = logits[:, j]
        if spread is not None:
            for j, o in enumerate(card.outputs):
                out[f"{o.name}_std"] = spread[:, j]
            bounds = (self.reference.interval(mean, spread, m)
                      if self.reference is not None else None)
            if bounds is not None:
                for j, o in enumerate(card.outputs):
                    if not o.logit:
                        out[f"{o.name}_lo"] = bounds[0][:, j]
                        out[f"{o.name}_hi"] = bounds[1][:, j]
        if self.reference is not None and heads.features is not None:
            if not isinstance(x, np.ndarray):  # a batch prepared on the torch engine's
                x = x.cpu().numpy()  # device: the statistics are the host's (numpy)
            stats = ood.input_statistics(x, card.input.layout)
            dist = self.reference.distance(stats, heads.features[:n])
            out["ood_distance"] = dist
            out["ood_flag"] = dist > card.reference.threshold
        return {k: np.asarray(v, np.bool_ if k == "ood_flag" else np.float32)
                for k, v in out.items()}
