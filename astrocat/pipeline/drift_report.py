"""A run's drift per model: each part's sketch of ``ood_distance`` (written with the part,
on whichever worker made it), merged on the driver and compared with the model's
reference (``kernels.drift``). Parts of an earlier astrocat carry no sketch: theirs is
made from the part's own column, one part at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa

from astrocat.catalog.columns import to_numpy
from astrocat.kernels import drift
from astrocat.models import reference_stats
from astrocat.models.card import ModelCard

DISTANCE = "ood_distance"


def part_sketches(table: pa.Table, models: Iterable[str]) -> dict[str, dict]:
    """Per model, the sketch of its ok rows' distances in one part (JSON-able)."""
    if DISTANCE not in table.column_names:
        return {}
    model = to_numpy(table.column("model"))
    ok = to_numpy(table.column("status")) == "ok"
    distance = to_numpy(table.column(DISTANCE))
    return {m: drift.Sketch.of(distance[ok & (model == m)]).to_json() for m in models}


def merged(stats: Mapping[str, dict], part_paths: Mapping[str, Path], model: str
           ) -> drift.Sketch:
    """One model's sketch over every part (``stats`` by part key)."""
    total = drift.Sketch.empty()
    for key, s in stats.items():
        if model not in s.get("models", ()):
            continue
        if "drift" in s:
            total += drift.Sketch.from_json(s["drift"].get(model))
        else:  # a part of astrocat < 0.4: read its own column
            total += _from_part(part_paths[key], model)
    return total


def _from_part(path: Path, model: str) -> drift.Sketch:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if DISTANCE not in names:
        return drift.Sketch.empty()
    table = pq.read_table(path, columns=["model", "status", DISTANCE])
    return drift.Sketch.from_json(part_sketches(table, [model])[model])


def record(card: ModelCard, sketch: drift.Sketch) -> dict:
    """``models.<name>.drift`` of the run's provenance: the verdict and what it rests on
    (the run's and the reference's sketches, for figures and comparisons)."""
    ref = reference_stats.of(card)
    if ref is None:
        return {"verdict": "untested", "n": sketch.n,
                "reason": "the model has no reference statistics"}
    base = ref.baseline()
    if base is None:
        return {"verdict": "untested", "n": sketch.n,
                "reason": "its reference statistics hold no held-out distances (written "
                          f"before astrocat 0.4): run `astrocat models reference {card.name} "
                          "--data DIR` again"}
    return {**drift.compare(sketch, base), "test": drift.TEST,
            "sketch": sketch.to_json(), "reference": base.to_json()}


def records(cards: Mapping[str, ModelCard], used: Iterable[str], stats: Mapping[str, dict],
            part_paths: Mapping[str, Path]) -> dict[str, dict]:
    """The drift record of every model the run used."""
    return {n: record(cards[n], merged(stats, part_paths, n)) for n in used}


def lines(drifts: Mapping[str, dict]) -> list[str]:
    """What a run's summary says: one line per model whose data moved (or untested)."""
    return [drift.describe(name, d) for name, d in drifts.items()
            if d.get("verdict") not in (None, "in_domain")
            and not (d.get("verdict") == "untested" and "reason" not in d)]


def verdicts(provenance: dict) -> dict[str, dict]:
    """Per model, the drift record a catalog's provenance holds, without its sketches
    (what ``history`` and the run's summary show)."""
    out = {}
    for name, m in (provenance.get("models") or {}).items():
        if isinstance(m, dict) and isinstance(m.get("drift"), dict):
            out[name] = drift.brief(m["drift"])
    return out
