"""Parquet, CSV and ECSV spectra tables: one spectrum per row, read over a row range.

Parquet and CSV are streamed so that memory follows the range asked for, not the file,
and a sequential scan continues where the last chunk stopped (cursor cache, CSV
bookmarks) instead of starting over. ECSV files are small and read whole with astropy.
"""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from astrocat.errors import InputError
from astrocat.sources.common import (
    Col,
    TableInfo,
    empty_table,
    flux_names,
    numpy_carried,
    numpy_flux,
    table_info,
)

#: Upper bound on the flux values decoded at once while reading a table range.
_BATCH_VALUES = 8_000_000
#: Data lines parsed to infer a CSV's column types.
_CSV_SNIFF_ROWS = 1000

# ----------------------------------------------------------------- Arrow helpers


def _plain_arrow_type(t: pa.DataType) -> pa.DataType | None:
    """int*/uint* -> int64, float* -> float64, bool, string; anything else dropped."""
    if pa.types.is_dictionary(t):
        return _plain_arrow_type(t.value_type)
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_boolean(t):
        return pa.bool_()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return None


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    )


def _arrow_col(field: pa.Field) -> Col:
    t = field.type
    if _is_list(t):
        value = t.value_type
        numeric = pa.types.is_integer(value) or pa.types.is_floating(value)
        length = t.list_size if pa.types.is_fixed_size_list(t) else None
        return Col(field.name, "array" if numeric else "other", None, length)
    carry = _plain_arrow_type(t)
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)
    return Col(field.name, "number" if numeric else "other", carry)


def _arrow_flux(table: pa.Table, info: TableInfo) -> np.ndarray:
    """Flux rows from Arrow columns; nulls and wrong-length lists give NaN rows."""
    n = table.num_rows
    if info.flux_columns is not None:
        out = np.empty((n, info.n_flux), dtype=np.float32)
        for j, name in enumerate(info.flux_columns):
            out[:, j] = _arrow_numbers(table.column(name))
        return out
    assert info.flux_array_column is not None
    column = table.column(info.flux_array_column).combine_chunks()
    return _list_flux(column, info.n_flux)


def _arrow_numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, null (or unparseable text) -> NaN."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = _cast_lenient(column, pa.float64())
    elif not pa.types.is_floating(column.type):
        column = pc.cast(column, pa.float64(), safe=False)
    return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _list_flux(column: pa.Array, n_flux: int) -> np.ndarray:
    out = np.full((len(column), n_flux), np.nan, dtype=np.float32)
    if pa.types.is_fixed_size_list(column.type):
        lengths = np.where(column.is_null().to_numpy(zero_copy_only=False), -1, n_flux)
    else:
        lengths = pc.fill_null(pc.list_value_length(column), -1).to_numpy(zero_copy_only=False)
    good = lengths == n_flux
    if good.any():
        values = pc.list_flatten(column.filter(pa.array(good)))
        values = pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        out[good] = values.reshape(-1, n_flux)
    return out


def _cast_lenient(column: pa.ChunkedArray | pa.Array, target: pa.DataType) -> pa.Array:
    """Cast text to ``target``; values that do not parse become null instead of failing."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parse = {pa.int64(): _parse_int, pa.float64(): _parse_float, pa.bool_(): _parse_bool}.get(
        target
    )
    if parse is None:
        return pc.cast(column, target, safe=False)
    return pa.array([parse(v) for v in column.to_pylist()], type=target)


def _parse_float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _parse_int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        value = _parse_float(text)
        return int(value) if value is not None and value.is_integer() else None


def _parse_bool(text: Any) -> bool | None:
    lowered = str(text).strip().lower() if text is not None else ""
    return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}.get(lowered)


def _arrow_carried(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The carried columns, cast to the plain types promised in ``schema``."""
    if len(schema) == 0:
        return empty_table(table.num_rows)
    arrays = []
    for field in schema:
        column = table.column(field.name)
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        if column.type == field.type:
            arrays.append(column.combine_chunks())
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            arrays.append(_cast_lenient(column, field.type))
        else:
            arrays.append(pc.cast(column, field.type, safe=False).combine_chunks())
    return pa.Table.from_arrays(arrays, schema=schema)


# ----------------------------------------------------------------- Parquet


def _open_parquet(path: str) -> pq.ParquetFile:
    """Open for streaming: without ``pre_buffer=False`` and a read buffer, pyarrow loads
    whole column chunks, i.e. a whole row group (which may be the whole file)."""
    return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)


def scan_parquet(path: str) -> TableInfo:
    pf = _open_parquet(path)
    cols = [_arrow_col(f) for f in pf.schema_arrow]

    def first_length(col: Col) -> int:
        for batch in pf.iter_batches(batch_size=256, columns=[col.name]):
            lengths = pc.list_value_length(batch.column(0)).drop_null()
            if len(lengths):
                return int(lengths[0].as_py())
        raise InputError(f"flux column {col.name!r} holds no values")

    return table_info(cols, pf.metadata.num_rows, first_length)


def read_parquet(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    """Decode from the row group holding ``start`` onwards, in bounded batches.

    Row groups before ``start`` are never read. The batch stream is kept (per process,
    see :class:`_ParquetCursor`) so the next chunk of a sequential scan continues it
    instead of decoding the row group again from its first row: a 520,000-row file
    written as one row group is otherwise re-decoded once per chunk.
    """
    columns = flux_names(info) + list(info.carried.names)
    key = (path, *_stamp(path), tuple(columns))
    cursor = _CURSORS.take(key, start)
    if cursor is None:
        cap = max(1, _BATCH_VALUES // max(info.n_flux, 1))
        cursor = _ParquetCursor(path, columns, start, min(max(stop - start, 1024), cap))
    parts = cursor.read(stop - start)
    _CURSORS.give(key, cursor)
    if sum(p.num_rows for p in parts) < stop - start:
        raise InputError(f"table ended before row {stop} (file changed since it was scanned?)")
    table = pa.Table.from_batches(parts)
    return _arrow_flux(table, info), _arrow_carried(table, info.carried)


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


class _ParquetCursor:
    """A batch stream over a Parquet file positioned at row ``position``."""

    def __init__(self, path: str, columns: list[str], start: int, max_batch: int) -> None:
        self.file = _open_parquet(path)
        md = self.file.metadata
        first, row = md.num_row_groups, 0
        for i in range(md.num_row_groups):
            n = md.row_group(i).num_rows
            if row + n > start:
                first = i
                break
            row += n
        self.position = row  # first row of the first group read
        self.pending: pa.RecordBatch | None = None
        groups = list(range(first, md.num_row_groups))
        self.batches: Iterator[pa.RecordBatch] = iter(())
        if groups:
            self.batches = self.file.iter_batches(
                batch_size=max_batch, row_groups=groups, columns=columns, use_threads=False
            )
        self._skip(start - row)

    def _next(self) -> pa.RecordBatch | None:
        if self.pending is not None:
            batch, self.pending = self.pending, None
            return batch
        return next(self.batches, None)

    def _take(self, n: int) -> Iterator[pa.RecordBatch]:
        """The next ``n`` rows (fewer at the end), batch by batch; the rest is kept."""
        while n > 0:
            batch = self._next()
            if batch is None:
                return
            if batch.num_rows > n:
                self.pending = batch.slice(n)
                batch = batch.slice(0, n)
            self.position += batch.num_rows
            n -= batch.num_rows
            yield batch

    def _skip(self, n: int) -> None:
        for _ in self._take(n):  # each batch is dropped as soon as it is passed
            pass

    def read(self, n: int) -> list[pa.RecordBatch]:
        return list(self._take(n))

    def close(self) -> None:
        self.file.close()


class _CursorCache:
    """A few open cursors per process, handed out only to a reader starting where the
    cursor stands; a cursor in use is out of the cache, so threads never share one."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.items: OrderedDict[tuple, _ParquetCursor] = OrderedDict()

    def take(self, key: tuple, position: int) -> _ParquetCursor | None:
        with self.lock:
            cursor = self.items.get(key)
            if cursor is None or cursor.position != position:
                return None
            return self.items.pop(key)

    def give(self, key: tuple, cursor: _ParquetCursor) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            self.items[key] = cursor
            evicted = [
                self.items.popitem(last=False)[1] for _ in range(len(self.items) - self.size)
            ]
        for c in [old, *evicted]:
            if c is not None and c is not cursor:
                c.close()


_CURSORS = _CursorCache()


# ----------------------------------------------------------------- CSV


def _csv_lines(path: str, start: int, stop: int | None) -> tuple[bytes, list[bytes], int]:
    """The header line and the data lines [start, stop), plus the data lines passed.

    Lines are split on newlines (pyarrow's default CSV dialect does not allow newlines
    inside values either) and blank lines are skipped, as pyarrow skips them. Only the
    requested lines are kept, so memory is bounded by the range. Where the previous
    read stopped is remembered, so reading a file chunk after chunk is linear.
    """
    key = (path, *_stamp(path))
    header, index, offset = _CSV_BOOKMARKS.get(key, (b"", 0, 0))
    if index > start:
        header, index, offset = b"", 0, 0
    kept: list[bytes] = []
    with open(path, "rb") as f:
        f.seek(offset)
        for line in f:
            if stop is not None and index >= stop and header:
                break
            offset += len(line)
            if not line.strip(b"\r\n"):
                continue
            if not header:
                header = line
                continue
            if index >= start:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
            index += 1
    with _BOOKMARK_LOCK:
        _CSV_BOOKMARKS.pop(key, None)
        _CSV_BOOKMARKS[key] = (header, index, offset)
        while len(_CSV_BOOKMARKS) > 64:
            _CSV_BOOKMARKS.popitem(last=False)
    return header, kept, index


#: (path, size, mtime_ns) -> (header line, data lines passed, byte offset after them)
_CSV_BOOKMARKS: OrderedDict[tuple, tuple[bytes, int, int]] = OrderedDict()
_BOOKMARK_LOCK = threading.Lock()


def _csv_count_rows(path: str) -> int:
    count, seen_header = 0, False
    with open(path, "rb") as f:
        for line in f:
            if line.strip(b"\r\n"):
                if seen_header:
                    count += 1
                seen_header = True
    return count


def _parse_csv(
    header: bytes, lines: list[bytes], all_text: bool, columns: Sequence[str] | None = None
) -> tuple[pa.Table, list[int]]:
    """Parse a bounded block of CSV lines; rows with the wrong column count are reported
    (by index) rather than failing the block."""
    bad: list[int] = []

    def on_invalid(row: Any) -> str:
        bad.append(row.number - 2 if row.number is not None else -1)  # 1-based, header first
        return "skip"

    data = header + b"".join(lines)
    names = None
    if all_text:
        names = pacsv.read_csv(
            io.BytesIO(header), read_options=pacsv.ReadOptions(use_threads=False)
        ).column_names
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names} if names else None,
        strings_can_be_null=True,
        null_values=[""] if all_text else None,
        include_columns=list(columns) if columns is not None else None,
    )
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16)),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=convert,
    )
    if -1 in bad:
        raise InputError("CSV rows have the wrong number of values")
    return table, bad


def scan_csv(path: str) -> TableInfo:
    header, sample, _ = _csv_lines(path, 0, _CSV_SNIFF_ROWS)
    if not header:
        raise InputError("CSV file has no header line")
    table, _ = _parse_csv(header, sample, all_text=False)
    cols = []
    for field in table.schema:
        t = field.type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)
        # In a CSV everything is text: keep dates and odd values as strings, not dropped.
        carry = _plain_arrow_type(t) or pa.string()
        cols.append(Col(field.name, "number" if numeric else "other", carry))
    n_rows = _csv_count_rows(path)
    return table_info(cols, n_rows, lambda col: 0, lenient_text=True)


def read_csv(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    """Re-stream from the start, keep only lines [start, stop), parse them as text."""
    header, lines, _ = _csv_lines(path, start, stop)
    n = stop - start
    if len(lines) < n:
        raise InputError(f"CSV ended before row {stop} (file changed since it was scanned?)")
    columns = flux_names(info) + list(info.carried.names)
    table, bad = _parse_csv(header, lines, all_text=True, columns=columns)
    if bad:
        # Put rows with the wrong number of values back as all-null rows, in place.
        bad_set = set(bad)
        take, good = [], 0
        for i in range(n):
            if i in bad_set:
                take.append(None)
            else:
                take.append(good)
                good += 1
        table = table.take(pa.array(take, type=pa.int64()))
    return _arrow_flux(table, info), _arrow_carried(table, info.carried)


# ----------------------------------------------------------------- ECSV (small files)


def _read_ecsv_table(path: str) -> Any:
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Table.read(path, format="ascii.ecsv")


def _numpy_carry(dtype: np.dtype) -> pa.DataType | None:
    kind = dtype.kind
    if kind in "iu":
        return pa.int64()
    if kind == "f":
        return pa.float64()
    if kind == "b":
        return pa.bool_()
    if kind in "US":
        return pa.string()
    return None


def _numpy_col(name: str, dtype: np.dtype, item_shape: tuple[int, ...]) -> Col:
    numeric = dtype.kind in "iuf"
    if item_shape:
        return Col(name, "array" if numeric else "other", None, math.prod(item_shape))
    if dtype.kind == "O":  # variable-length arrays (ECSV 'float64[null]')
        return Col(name, "array", None, None)
    return Col(name, "number" if numeric else "other", _numpy_carry(dtype))


def scan_ecsv(path: str) -> TableInfo:
    table = _read_ecsv_table(path)
    cols = [_numpy_col(c.name, c.dtype, c.shape[1:]) for c in table.columns.values()]

    def first_length(col: Col) -> int:
        for value in table[col.name]:
            if value is not None and np.ndim(value) == 1 and len(value):
                return len(value)
        raise InputError(f"flux column {col.name!r} holds no values")

    return table_info(cols, len(table), first_length)


def read_ecsv(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    table = _read_ecsv_table(path)[start:stop]
    return numpy_flux(table, info, stop - start), numpy_carried(table, info.carried, stop - start)
