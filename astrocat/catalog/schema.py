"""The catalog's columns, given explicitly (never inferred per part: inferred schemas drift).

Chosen so that ``astropy.table.Table.read`` round-trips it: astropy turns a null string
into a ``TypeError`` and a null integer into a float, so no column here is ever null.
Missing values are sentinels instead: NaN for floats, -1 for ``hdu``/``row`` and carried
integers, "" for strings, False for carried booleans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

SCHEMA_VERSION = "1"


class _Output(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def ucd(self) -> str: ...
    @property
    def logit(self) -> bool: ...


class _Reference(Protocol):
    @property
    def interval_coverage(self) -> float | None: ...


class CardLike(Protocol):
    """What the catalog reads of a model card (``models.card.ModelCard``, which the
    catalog layer sits below): its outputs, its number of views, its reference."""

    @property
    def outputs(self) -> Sequence[_Output]: ...
    @property
    def tta(self) -> int: ...
    @property
    def reference(self) -> _Reference | None: ...


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    unit: str = ""
    description: str = ""
    ucd: str = ""  # IVOA UCD1+ (what VO tools recognise positions and ids by)


BASE_COLUMNS: tuple[Column, ...] = (
    Column("object_id", pa.string(), "", "Identifier: the file name's stem, or the table's id",
           "meta.id;meta.main"),
    Column("source", pa.string(), "", "Input file, relative to the input root",
           "meta.ref;meta.file"),
    Column("hdu", pa.int32(), "", "FITS HDU read (-1: not FITS)", "meta.id.part"),
    Column("row", pa.int64(), "", "Row in the spectra table (-1: not a table)", "meta.record"),
    Column("kind", pa.string(), "", "Input kind: rgb_image, mono_image, spectrum, density_field",
           "meta.code.class"),
    Column("model", pa.string(), "", "Model that produced the outputs ('' when none ran)",
           "meta.id;meta.software"),
    Column("ra", pa.float64(), "deg", "Right ascension from the WCS/header/table (NaN: unknown)",
           "pos.eq.ra;meta.main"),
    Column("dec", pa.float64(), "deg", "Declination from the WCS/header/table (NaN: unknown)",
           "pos.eq.dec;meta.main"),
    Column("status", pa.string(), "", "ok, or error when the input could not be used",
           "meta.code.status"),
    Column("error", pa.string(), "", "What went wrong and what to do about it ('' when ok)",
           "meta.note"),
)
BASE_NAMES = frozenset(c.name for c in BASE_COLUMNS)

#: Carried table columns that fill a base column instead of being copied.
CARRIED_INTO_BASE = {"ra": "ra", "dec": "dec"}


#: Every row, whichever model made it: how unlike the model's training inputs it looks.
TRUST_COLUMNS: tuple[Column, ...] = (
    Column("ood_distance", pa.float32(), "",
           "Out-of-domain distance: Mahalanobis distances of the input's statistics and of "
           "the network's penultimate features from the model's training inputs, each over "
           "its median there, the larger of the two (NaN: the model card has no reference "
           "statistics, or the row is an error)", "stat.fit.goodness"),
    Column("ood_flag", pa.bool_(), "",
           "True: the input looks unlike the model's training inputs (ood_distance above "
           "the card's [reference] threshold); its outputs are extrapolation",
           "meta.code.qual"),
)
TRUST_NAMES = frozenset(c.name for c in TRUST_COLUMNS)


def output_columns(card: CardLike) -> list[Column]:
    """A model's columns: its outputs, the logits of its sigmoid scores, and with
    ``card.tta`` views the spread of every output and the interval of every estimate."""
    cols = [Column(o.name, pa.float32(), o.unit, o.description, o.ucd) for o in card.outputs]
    cols += [Column(f"{o.name}_logit", pa.float32(), "",
                    f"Log-odds of {o.name} as the network computes it before its sigmoid: "
                    "orders candidates strictly where the score saturates at 1",
                    "stat.value")
             for o in card.outputs if o.logit]
    if card.tta > 1:
        cols += [Column(f"{o.name}_std", pa.float32(), o.unit,
                        f"Spread of {o.name}: standard deviation over {card.tta} rotated/"
                        "flipped views of the input (test-time augmentation)",
                        qualified("stat.stdev", o.ucd))
                 for o in card.outputs]
        cov = card.reference.interval_coverage if card.reference else None
        if cov is not None:
            for o in card.outputs:
                if not o.logit:
                    for end, word in (("lo", "Lower"), ("hi", "Upper")):
                        cols.append(Column(
                            f"{o.name}_{end}", pa.float32(), o.unit,
                            f"{word} end of a {cov:.0%} interval for {o.name}: the views' "
                            "mean +- their spread times a factor calibrated on held-out "
                            "training-distribution inputs (normalised split conformal)",
                            o.ucd and qualified(o.ucd, f"stat.{'min' if end == 'lo' else 'max'}")))
    return cols


def qualified(primary: str, secondary: str) -> str:
    """``primary;secondary`` as UCD1+ combines words (either alone where one is empty)."""
    return ";".join(w for w in (primary, secondary) if w)


def catalog_output_columns(cards: Iterable[CardLike]) -> list[Column]:
    """The columns after the base ones, in order, once each: trust, then each model's."""
    out: list[Column] = list(TRUST_COLUMNS)
    seen = set(TRUST_NAMES)
    for card in cards:
        for col in output_columns(card):
            if col.name not in seen:
                out.append(col)
                seen.add(col.name)
    return out


def carried_name(name: str) -> str:
    """Name of a carried table column in the catalog (prefixed only if it would collide)."""
    return f"in_{name}" if name in BASE_NAMES else name


def sentinel(type_: pa.DataType):
    """The value a carried column takes in rows that do not carry it."""
    if pa.types.is_floating(type_):
        return float("nan")
    if pa.types.is_integer(type_):
        return -1
    if pa.types.is_boolean(type_):
        return False
    return ""


def to_field(col: Column) -> pa.Field:
    meta = {}
    if col.unit:
        meta[b"unit"] = col.unit.encode()
    if col.description:
        meta[b"description"] = col.description.encode()
    if col.ucd:
        meta[b"ucd"] = col.ucd.encode()
    return pa.field(col.name, col.type, nullable=False, metadata=meta or None)


def build_schema(
    cards: Iterable[CardLike], carried: Iterable[Column] = ()
) -> tuple[pa.Schema, list[Column]]:
    """Base columns, trust columns, each model's (in order, once), then carried columns."""
    columns: list[Column] = [*BASE_COLUMNS, *catalog_output_columns(cards)]
    seen = {c.name for c in columns}
    for col in carried:
        if col.name not in seen:
            columns.append(col)
            seen.add(col.name)
    return pa.schema([to_field(c) for c in columns]), columns


def columns_of(schema: pa.Schema) -> list[Column]:
    """Recover Column descriptions (type, unit, description) from a schema's field metadata."""
    out = []
    for f in schema:
        meta = f.metadata or {}
        out.append(
            Column(
                f.name,
                f.type,
                meta.get(b"unit", b"").decode(),
                meta.get(b"description", b"").decode(),
                meta.get(b"ucd", b"").decode(),
            )
        )
    return out


#: astropy's ``datatype`` names (its ECSV/Parquet header) for the arrow types used here.
_ASTROPY_DATATYPE = {pa.string(): "string", pa.bool_(): "bool"}


def astropy_metadata(
    columns: Sequence[Column], provenance: Mapping[str, object], string_lengths: Mapping[str, int]
) -> dict[bytes, bytes]:
    """Key-value metadata that makes ``Table.read`` show units, descriptions and provenance.

    ``table_meta_yaml`` is astropy's table header (the ECSV header's YAML, as astropy's
    Parquet writer stores it), written with PyYAML: importing ``astropy.table`` to make it
    would cost a small run a third of a second. A test checks that astropy reads it back
    exactly as it reads the header its own writer makes.
    """
    import yaml

    datatype = []
    for col in columns:
        entry: dict[str, str] = {"name": col.name}
        if col.unit:
            entry["unit"] = col.unit
        entry["datatype"] = (_ASTROPY_DATATYPE.get(col.type)
                             or col.type.to_pandas_dtype().__name__)
        if col.description:
            entry["description"] = col.description
        if col.ucd:
            entry["meta"] = {"ucd": col.ucd}  # where astropy's VOTable writer looks for it
        datatype.append(entry)
    header = {"datatype": datatype, "meta": {"astrocat": _plain(provenance)}}
    text = yaml.dump(header, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=False, default_flow_style=None, allow_unicode=True, width=130)
    meta = {b"table_meta_yaml": text.rstrip("\n").encode()}
    for col in columns:
        if col.type == pa.string():
            length = max(1, int(string_lengths.get(col.name, 1)))
            meta[f"table::len::{col.name}".encode()] = str(length).encode()
    return meta


def _plain(value: object) -> object:
    """Provenance as YAML's plain types (tuples become lists, anything else a string)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
