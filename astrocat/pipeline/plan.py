"""Cut the inputs into partitions whose identity survives re-runs.

A partition's key hashes what it holds (paths, sizes, mtimes, row ranges) and the
identity of the results its model gives (``result_key``: weights, the card's input
specification and outputs, engine, precision, astrocat's preprocessing version). Each
model's inputs form their own stream of partitions, so a changed model recomputes its
own rows only. Files are grouped with content-defined boundaries: a partition ends after
a file whose path hashes to 0 modulo the partition size, so adding or removing one file
changes one partition, not every one after it. That is what makes a nightly re-run
incremental and a killed run resumable: finished parts are reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from astrocat.catalog.schema import SCHEMA_VERSION
from astrocat.errors import CardError
from astrocat.kernels.preprocess import PREPROCESS_VERSION
from astrocat.kinds import PLANE_KINDS, Kind
from astrocat.models import reference_stats
from astrocat.models.card import ModelCard
from astrocat.sources._fits import Product
from astrocat.sources.units import InputUnit


@dataclass(frozen=True, slots=True)
class FileRef:
    """An input file as the driver knows it: listed and stat'ed, never opened. The worker
    sniffs and describes it (what kind, which HDU, how many rows) where it reads it."""

    path: str
    source: str
    size: int
    mtime_ns: int
    family: str  # image | fits | table | other: a guess from the name, for grouping only

    kind = None  # not known until the worker describes the file
    n_items = 1
    hdu = None
    error = None
    transient = False


#: File-name suffixes -> family. A family only groups files into partitions (so that a
#: changed model recomputes its own family's files); what a file *is* is decided from its
#: content by the worker, whatever its name says.
FAMILIES = {".jpg": "image", ".jpeg": "image", ".png": "image", ".fits": "fits",
            ".fit": "fits", ".fts": "fits", ".fz": "fits", ".parquet": "table",
            ".pq": "table", ".csv": "table", ".ecsv": "table", ".npy": "table",
            ".xml": "table", ".vot": "table", ".votable": "table"}
#: The kinds each family's files may turn out to be.
FAMILY_KINDS = {"image": (Kind.RGB_IMAGE,),
                "fits": (Kind.MONO_IMAGE, Kind.DENSITY_FIELD, Kind.SPECTRUM),
                "table": (Kind.SPECTRUM, Kind.DENSITY_FIELD), "other": tuple(Kind)}


def family(name: str) -> str:
    name = name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    dot = name.rfind(".")
    return FAMILIES.get(name[dot:], "other") if dot >= 0 else "other"


@dataclass(frozen=True, slots=True)
class Slice:
    """Items [start, stop) of one input, all for one model (or none, for errors); a
    ``FileRef`` slice is one file the worker describes and routes itself."""

    unit: InputUnit | FileRef
    start: int
    stop: int
    model: str | None  # card name; None when the unit is unusable or no model takes it
    problem: str | None = None  # why no model runs, when model is None


@dataclass(frozen=True, slots=True)
class Partition:
    key: str
    slices: tuple[Slice, ...]

    @property
    def n_items(self) -> int:
        return sum(s.stop - s.start for s in self.slices)


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def result_key(card: ModelCard, engine: str, precision: str = "fp32") -> str:
    """What a model's results depend on: the weights the engine loads, the card's input
    specification and outputs (names, units, descriptions: they are the columns), the
    engine, its precision and the preprocessing code, and where used the TTA views and
    the reference statistics (absent, they leave earlier keys unchanged: a reused part
    then reads NaN distances, as a recomputed one would). The card's description, version,
    training and metrics records change nothing a model computes, so they are left out."""
    weights = card.sha256["keras" if engine == "tensorflow" else "onnx"]
    # UCDs are left out: the published columns take them from the cards, whatever part
    outputs = [{k: v for k, v in dataclasses.asdict(o).items()
                if k != "ucd" and (k != "logit" or v)}
               for o in card.outputs]
    trust = {"tta": card.tta} if card.tta > 1 else {}
    if card.reference is not None:  # not the held-out distances: they change no row
        trust["reference"] = reference_stats.rows_sha256(card)
        trust["threshold"] = card.reference.threshold
    payload = json.dumps({
        "name": card.name, "weights": weights, "input": card.input.identity(),
        "outputs": outputs, "engine": engine, "precision": precision,
        "preprocess": PREPROCESS_VERSION, **({"trust": trust} if trust else {})},
        sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def partition_key(slices: Iterable[Slice], keys: Mapping[str, str]) -> str:
    h = hashlib.sha256(f"astrocat-catalog-v{SCHEMA_VERSION}".encode())
    for s in slices:
        u = s.unit
        model = keys.get(s.model, "-") if s.model else "-"
        h.update(f"|{u.source}|{u.size}|{u.mtime_ns}|{u.hdu}|{s.start}|{s.stop}|{model}".encode())
    return h.hexdigest()[:24]


def fits_product(routing: Mapping[Kind, ModelCard]) -> Product:
    """The HDU and cube plane FITS files are described by (before routing, which needs the
    kind the chosen HDU has): whatever the plane models' cards name. Cards that name none
    follow; two that name different ones cannot share a run."""
    named = {(c.input.hdu, c.input.plane): c.name for k, c in routing.items()
             if k in PLANE_KINDS and (c.input.hdu, c.input.plane) != (None, None)}
    if len(named) > 1:
        shown = "; ".join(f"{name}: hdu {hdu!r}, plane {plane!r}"
                          for (hdu, plane), name in named.items())
        raise CardError(f"the FITS models of this run read different HDUs or planes ({shown});"
                        " run them separately, or give them the same hdu and plane")
    hdu, plane = next(iter(named), (None, None))
    return Product(hdu=hdu, plane=plane)


def route(unit: InputUnit, routing: Mapping[Kind, ModelCard]) -> tuple[str | None, str | None]:
    """(model name, problem) for a unit: the card that takes its kind, or why none does."""
    if unit.kind is None:
        return None, unit.error or "input could not be recognised"
    if unit.n_items == 0:
        return None, "the table has no rows: nothing to measure"
    card = routing.get(unit.kind)
    if card is None:
        return None, (
            f"no model takes {unit.kind.value} inputs in this run; name one with --model"
        )
    return card.name, None


#: A spectra-table row costs a hundredth of an image file to read, so tables are cut into
#: row ranges this many times the partition size: fewer tasks and parts for the same work.
TABLE_ROWS_FACTOR = 16


def plan_partitions(
    units: Iterable[InputUnit | FileRef], routing: Mapping[Kind, ModelCard],
    partition_size: int, keys: Mapping[str, str] | None = None,
) -> Iterator[Partition]:
    """Stream partitions of at most ~2x ``partition_size`` files (``TABLE_ROWS_FACTOR`` x
    that many rows for tables), one stream per model or file family (and one for unusable
    inputs).

    ``keys`` maps a model name to its ``result_key``; without it, the weights' sha256.
    A file family's key joins the keys of every model its files may go to.
    """
    size = max(1, partition_size)
    rows = size * TABLE_ROWS_FACTOR
    keys = dict(keys or {c.name: c.fingerprint for c in routing.values()})
    for fam, kinds in FAMILY_KINDS.items():
        keys[f"family:{fam}"] = "+".join(sorted({keys[routing[k].name] for k in kinds
                                                if k in routing}))
    pending: dict[str | None, list[Slice]] = {}

    def flush(model: str | None) -> Partition:
        slices = pending.pop(model)
        return Partition(partition_key(slices, keys), tuple(slices))

    for unit in units:
        if isinstance(unit, FileRef):
            stream = pending.setdefault(f"family:{unit.family}", [])
            stream.append(Slice(unit, 0, 1, f"family:{unit.family}"))
            n = len(stream)
            if (n >= size // 4 and _hash_int(unit.source) % size == 0) or n >= 2 * size:
                yield flush(f"family:{unit.family}")
            continue
        model, problem = route(unit, routing)
        if unit.n_items > 1 and unit.kind is not None:  # a table: own partitions, row ranges
            for start in range(0, unit.n_items, rows):
                stop = min(start + rows, unit.n_items)
                s = (Slice(unit, start, stop, model, problem),)
                yield Partition(partition_key(s, keys), s)
            continue
        stream = pending.setdefault(model, [])
        stream.append(Slice(unit, 0, max(1, unit.n_items), model, problem))
        n = len(stream)
        if (n >= size // 4 and _hash_int(unit.source) % size == 0) or n >= 2 * size:
            yield flush(model)
    for model in list(pending):
        yield flush(model)
