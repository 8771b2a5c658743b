"""VOTable metadata of the catalog's columns: names, datatypes, units, UCDs, descriptions
and the provenance, written once for the three places VO tools look for them:

* every Parquet file astrocat writes, as a DATA-less VOTable under the key-value metadata
  ``IVOA.VOTable-Parquet.content`` (the IVOA VOParquet Note 1.0, 2025-01-14; astropy reads
  it with ``Table.read(path, format="parquet.votable")``, STIL/TOPCAT with Parquet support);
* the VOTable export, whose data follows the same header (``catalog.export``);
* the FITS export's primary HDU, the "FITS-plus" header STIL/TOPCAT read UCDs from.

Built with the standard library's XML escaping only: the Parquet writer runs in every
publish, where importing astropy's VOTable tree would cost more than the write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

import pyarrow as pa

from astrocat.catalog.schema import Column

VOPARQUET_VERSION = b"IVOA.VOTable-Parquet.version"
VOPARQUET_CONTENT = b"IVOA.VOTable-Parquet.content"
NAMESPACE = "http://www.ivoa.net/xml/VOTable/v1.3"  # VOTable 1.3 and 1.4 share it

#: VOTable datatypes of the arrow types a catalog holds (anything else is exported as text).
DATATYPES: dict[pa.DataType, str] = {
    pa.bool_(): "boolean", pa.int8(): "short", pa.uint8(): "short", pa.int16(): "short",
    pa.uint16(): "int", pa.int32(): "int", pa.uint32(): "long", pa.int64(): "long",
    pa.uint64(): "long", pa.float16(): "float", pa.float32(): "float",
    pa.float64(): "double", pa.string(): "char", pa.large_string(): "char",
}


def datatype(type_: pa.DataType) -> str:
    return DATATYPES.get(type_, "char")


def document(columns: Sequence[Column], provenance: Mapping[str, object], *,
             widths: Mapping[str, int] | None = None, bounded: bool = False,
             nrows: int | None = None, name: str = "astrocat") -> tuple[str, str]:
    """The VOTable document around a table's data, as (head, tail): the caller puts its
    ``<DATA>`` between them, or nothing (VOParquet, FITS-plus). ``widths``: byte widths
    of the text columns, fixed (``arraysize="N"``) or with ``bounded`` at most that
    (``"N*"``, which astropy needs to read a VOParquet file); ``*`` where not given."""
    widths = widths or {}
    nrows_attr = f" nrows={quoteattr(str(nrows))}" if nrows is not None else ""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<VOTABLE version="1.4" xmlns="{NAMESPACE}">',
           '<RESOURCE type="results">']
    out += [f"<INFO name={quoteattr(k)} value={quoteattr(v)}/>"
            for k, v in _infos(provenance).items()]
    out.append(f"<TABLE name={quoteattr(name)}{nrows_attr}>")
    out.append("<DESCRIPTION>Catalog written by astrocat: one row per input object, "
               "predictions of the trained models, provenance in the INFO elements"
               "</DESCRIPTION>")
    for col in columns:
        attrs = {"name": col.name, "datatype": datatype(col.type)}
        if attrs["datatype"] == "char":
            n = widths.get(col.name)
            attrs["arraysize"] = "*" if n is None else f"{max(1, n)}{'*' if bounded else ''}"
        if col.unit:
            attrs["unit"] = col.unit
        if col.ucd:
            attrs["ucd"] = col.ucd
        text = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        if col.description:
            out.append(f"<FIELD {text}><DESCRIPTION>{escape(col.description)}"
                       "</DESCRIPTION></FIELD>")
        else:
            out.append(f"<FIELD {text}/>")
    head = "\n".join(out) + "\n"
    return head, "</TABLE>\n</RESOURCE>\n</VOTABLE>\n"


def _infos(provenance: Mapping[str, object]) -> dict[str, str]:
    """What a VOTable reader shows about where the catalog came from."""
    if not provenance:
        return {}
    infos = {key: str(provenance[key]) for key in ("astrocat_version", "created_utc",
                                                   "command", "input_root")
             if provenance.get(key) not in (None, "")}
    infos["astrocat_provenance"] = json.dumps(provenance, sort_keys=True, default=str)
    return infos


def voparquet_metadata(columns: Sequence[Column], provenance: Mapping[str, object],
                       string_lengths: Mapping[str, int]) -> dict[bytes, bytes]:
    """The two VOParquet key-value entries for a Parquet file of these columns (text
    columns declared at most their longest value)."""
    head, tail = document(columns, provenance, widths=string_lengths, bounded=True)
    return {VOPARQUET_VERSION: b"1.0", VOPARQUET_CONTENT: (head + tail).encode()}
