"""``astrocat models check CARD``: is this card right, and what does its model give?

The card is parsed strictly, its weights verified and compared with the ONNX graph (as
``infer`` does before any work), then one batch runs: the user's own inputs through the
real worker path when ``--input`` is given, else a synthetic batch of the card's kind.
The report is each output's range, so a scale mistake (outputs in 0-255, all NaN, all
one value) shows before a survey is run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrocat.engines.base import choose_engine, open_engine
from astrocat.errors import AstrocatError
from astrocat.kernels.preprocess import prepare
from astrocat.kinds import Kind
from astrocat.models import zoo
from astrocat.models.card import ModelCard
from astrocat.models.graph import check_graph
from astrocat.models.starter import starter_output_name

BATCH = 16


@dataclass(frozen=True)
class OutputRange:
    name: str
    n: int
    n_finite: int
    min: float
    max: float
    mean: float


def _synthetic(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    """Raw items of the card's kind, channels-last as the readers give them."""
    rng = np.random.default_rng(seed)
    spec = card.input
    if spec.kind == Kind.RGB_IMAGE:
        return rng.integers(0, 256, (n, *spec.image_size, 3)).astype(np.uint8)
    if spec.kind == Kind.SPECTRUM:
        return (rng.random((n, int(np.prod(spec.shape)))) + 0.5).astype(np.float32)
    return (np.abs(rng.normal(1.0, 0.5, (n, *spec.image_size))) + 1e-3).astype(np.float32)


def _from_inputs(card: ModelCard, engine: str, spec: str) -> np.ndarray:
    """Outputs for the first inputs under ``spec`` that the model takes, computed by the
    same worker code as ``infer``."""
    import itertools

    import pyarrow.parquet as pq

    from astrocat.pipeline.plan import plan_partitions, result_key
    from astrocat.pipeline.worker import Job, run_partition
    from astrocat.sources.describe import describe
    from astrocat.sources.discover import resolve_inputs

    root, files = resolve_inputs(spec)
    routing = {k: card for k in Kind if zoo.accepts(card, k)}
    units = itertools.islice((u for u in (describe(p, root) for p in files)
                              if u.kind in routing), BATCH)
    keys = {card.name: result_key(card, engine)}
    parts = list(plan_partitions(units, routing, BATCH, keys))
    if not parts:
        raise AstrocatError(f"no input under {spec} is one model '{card.name}' takes "
                            f"({card.input.kind.value})")
    with tempfile.TemporaryDirectory() as tmp:
        job = Job(cards={card.name: card}, engines={card.name: engine}, parts_dir=tmp,
                  output_order=(card.name,))
        tables = []
        for part in parts:
            run_partition(part, job)
            tables.append(pq.read_table(Path(tmp) / f"part-{part.key}.parquet"))
    rows = [t.slice(0, BATCH) for t in tables]
    ok = [t.filter(np.asarray(t.column("status").to_pylist()) == "ok") for t in rows]
    if not sum(t.num_rows for t in ok):
        raise AstrocatError("none of the inputs could be used: "
                            + "; ".join({e for t in rows for e in t.column("error").to_pylist()}))
    return np.concatenate([np.column_stack([t.column(o).to_numpy() for o in card.output_names])
                           for t in ok if t.num_rows])


def card_warnings(card: ModelCard) -> list[str]:
    """What is wrong with a card that parses: outputs still named as ``models init`` wrote
    them (``out_<i>`` at position i: catalog columns nobody can read), and what training
    found wrong with the model (``[training] warnings``)."""
    unnamed = [o.name for i, o in enumerate(card.outputs) if o.name == starter_output_name(i)]
    problems = []
    if unnamed:
        shown = ", ".join(unnamed[:3]) + (f", ... ({len(unnamed)} in all)"
                                          if len(unnamed) > 3 else "")
        problems.append(f"{card.source or card.name}: output(s) {shown} still have the "
                        "starter names `astrocat models init` gave them; name each "
                        "[[outputs]] in the card (name, unit, description): they become "
                        "the catalog's columns")
    return problems + card.warnings


def check_model(model: str, inputs: str | None = None, engine: str = "auto"
                ) -> tuple[ModelCard, str, list[OutputRange]]:
    """Validate the card against its weights and graph, run one batch, range each output."""
    card = zoo.resolve(model)
    card.verify()
    check_graph(card)
    engine = choose_engine(engine, card)
    if inputs:
        y = _from_inputs(card, engine, inputs)
    else:
        y = open_engine(card, engine).predict(prepare(_synthetic(card, BATCH), card.input))
    ranges = []
    for j, name in enumerate(card.output_names):
        v = y[:, j].astype(np.float64)
        fin = v[np.isfinite(v)]
        ranges.append(OutputRange(name, len(v), len(fin),
                                  *(map(float, (fin.min(), fin.max(), fin.mean())) if len(fin)
                                    else (np.nan,) * 3)))
    return card, engine, ranges
