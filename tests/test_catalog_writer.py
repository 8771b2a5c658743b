"""Parts, commit and the astropy round trip, on real Parquet files."""

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.table import Table

from astrocat.catalog.layouts.file import commit
from astrocat.catalog.schema import BASE_COLUMNS, Column, to_field
from astrocat.catalog.writer import part_stats, write_part


def _part(tmp_path, name, n, carried=None, outputs=("z_pred",), err_rows=()):
    cols = {c.name: [] for c in BASE_COLUMNS}
    for i in range(n):
        bad = i in err_rows
        cols["object_id"].append(f"{name}-{i}")
        cols["source"].append(f"{name}.parquet")
        cols["hdu"].append(-1)
        cols["row"].append(i)
        cols["kind"].append("spectrum")
        cols["model"].append("redshift-cnn1d")
        cols["ra"].append(10.0 + i)
        cols["dec"].append(-5.0)
        cols["status"].append("error" if bad else "ok")
        cols["error"].append("row 1: flux has missing values" if bad else "")
    fields = [to_field(c) for c in BASE_COLUMNS]
    arrays = [pa.array(cols[c.name], c.type) for c in BASE_COLUMNS]
    for o in outputs:
        fields.append(to_field(Column(o, pa.float32(), "", "Predicted redshift")))
        arrays.append(pa.array(np.where(np.isin(np.arange(n), err_rows), np.nan, 0.1),
                               pa.float32()))
    for cname, (ctype, values) in (carried or {}).items():
        fields.append(pa.field(cname, ctype, nullable=False, metadata={b"carried": b"1"}))
        arrays.append(pa.array(values, ctype))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    path = tmp_path / f"part-{name}.parquet"
    write_part(table, path, {"n_rows": n, "n_errors": len(err_rows), "models": ["m"],
                             "string_lengths": {"object_id": 6, "error": 31, "source": 12,
                                                "kind": 8, "model": 14, "status": 5}})
    return path


def test_commit_streams_parts_into_one_astropy_readable_catalog(tmp_path):
    a = _part(tmp_path, "a", 3, {"source_id": (pa.int64(), [1, 2, 3]),
                                  "z": (pa.float64(), [0.1, 0.2, 0.3])}, err_rows=(1,))
    b = _part(tmp_path, "b", 2, {"name": (pa.string(), ["x", "y"])})
    assert part_stats(a)["n_errors"] == 1
    out = tmp_path / "cat.parquet"
    rows = commit(out, [a, b], ["z_pred"], {"astrocat_version": "test", "command": "x"})
    assert rows == 5
    assert not list(tmp_path.glob(".cat.parquet.tmp*"))

    t = pq.read_table(out)
    assert t.column_names[:10] == [c.name for c in BASE_COLUMNS]
    assert t.column("source_id").to_pylist() == [1, 2, 3, -1, -1]  # sentinel, never null
    assert t.column("name").to_pylist() == ["", "", "", "x", "y"]
    assert all(t.column(c).null_count == 0 for c in t.column_names)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "guessing string length" warnings either
        at = Table.read(out)
    assert str(at["ra"].unit) == "deg" and str(at["dec"].unit) == "deg"
    assert at["z_pred"].description == "Predicted redshift"
    assert at["source_id"].dtype.kind == "i"  # integers stay integers
    assert at["status"][1] == "error" and "missing values" in at["error"][1]
    assert np.isnan(at["z_pred"][1])
    assert at.meta["astrocat"]["astrocat_version"] == "test"


def test_carried_type_conflict_unifies(tmp_path):
    a = _part(tmp_path, "a", 1, {"flag": (pa.int64(), [1])})
    b = _part(tmp_path, "b", 1, {"flag": (pa.float64(), [0.5])})
    out = tmp_path / "cat.parquet"
    commit(out, [a, b], ["z_pred"], {})
    assert pq.read_table(out).column("flag").to_pylist() == [1.0, 0.5]


def test_unused_model_outputs_are_dropped(tmp_path):
    a = _part(tmp_path, "a", 1, outputs=("z_pred", "p_lens"))
    out = tmp_path / "cat.parquet"
    commit(out, [a], ["z_pred"], {})
    assert "p_lens" not in pq.read_schema(out).names


def test_astropy_header_reads_back_as_astropys_own(tmp_path):
    """The header astrocat writes without importing astropy.table is, to astropy's reader,
    the one astropy's own writer makes for the same columns and provenance."""
    from astropy.table import meta as table_meta

    from astrocat.catalog.schema import astropy_metadata

    cols = [*BASE_COLUMNS, Column("z_pred", pa.float32(), "", "Predicted redshift: it's 'z'"),
            Column("mag", pa.float64(), "mag", "A -> B"), Column("flag", pa.bool_()),
            Column("n", pa.int16())]
    provenance = {"astrocat_version": "0.2.0", "created_utc": "2026-11-24T02:56:10+00:00",
                  "models": {"m": {"sha256": "ab" * 32, "version": "1.0"}},
                  "inputs": ["a: b", "c"], "positions": None, "seconds": 1.5, "n": 3}
    ours = astropy_metadata(cols, provenance, {})[b"table_meta_yaml"].decode()
    reference = Table(meta={"astrocat": provenance})
    for c in cols:
        dtype = {pa.string(): "U1", pa.bool_(): bool}.get(c.type) or c.type.to_pandas_dtype()
        reference[c.name] = np.zeros(0, dtype=dtype)
        reference[c.name].unit = c.unit or None
        reference[c.name].description = c.description or None
        if c.ucd:
            reference[c.name].meta["ucd"] = c.ucd
    theirs = "\n".join(table_meta.get_yaml_from_table(reference))
    assert (table_meta.get_header_from_yaml(ours.splitlines())
            == table_meta.get_header_from_yaml(theirs.splitlines()))


def test_publishing_reads_parts_ahead_and_keeps_plan_order(tmp_path, monkeypatch):
    """Small parts are read ahead on threads, a large one batch by batch in its place:
    the catalog's rows still come in the parts' order."""
    from astrocat.catalog.layouts import publication

    monkeypatch.setattr(publication, "BATCH_ROWS", 4)  # part "big" (7 rows) is large
    sizes = {"p0": 3, "p1": 1, "big": 7, "p3": 2, "p4": 4, "p5": 3, "p6": 1, "p7": 2}
    parts = [_part(tmp_path, name, n) for name, n in sizes.items()]
    out = tmp_path / "cat.parquet"
    commit(out, parts, ["z_pred"], {"astrocat_version": "test"})
    ids = pq.read_table(out).column("object_id").to_pylist()
    assert ids == [f"{name}-{i}" for name, n in sizes.items() for i in range(n)]


def test_dictionaries_only_for_string_columns(tmp_path):
    """Floats unique to each row are stored plain, strings with a dictionary."""
    part = _part(tmp_path, "a", 50)
    out = tmp_path / "cat.parquet"
    commit(out, [part], ["z_pred"], {"astrocat_version": "test"})
    for path in (part, out):
        meta = pq.ParquetFile(path).metadata.row_group(0)
        encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                     for i in range(meta.num_columns)}
        assert any("DICTIONARY" in e for e in encodings["status"])
        assert not any("DICTIONARY" in e for e in encodings["z_pred"])
        assert not any("DICTIONARY" in e for e in encodings["ra"])
