"""What runs inside a Dask worker: read a partition, predict, write its Parquet part.

Engines are cached per worker process (``_ENGINES``) and loaded on first use: a model is
loaded once per worker, never per task, and never pickled. Only the small plan and job
description travel to workers; only a few statistics travel back.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from astrocat.catalog.schema import (
    BASE_COLUMNS,
    CARRIED_INTO_BASE,
    Column,
    carried_name,
    output_columns,
    to_field,
)
from astrocat.catalog.writer import write_part
from astrocat.engines.base import Engine, open_engine
from astrocat.errors import InputError, TransientInputError
from astrocat.kernels.preprocess import centre_crop_plane, prepare
from astrocat.kinds import Kind
from astrocat.models.card import ModelCard
from astrocat.pipeline.plan import Partition, Slice
from astrocat.sources import positions, readers
from astrocat.sources.positions import Positions

#: Where tracebacks of failed tasks go, beside the parts (the error rows name it).
FAILURE_LOG = "errors.log"
#: Table columns tried, in order, for a spectrum's object_id.
ID_COLUMNS = ("object_id", "source_id", "objid", "specobjid", "galaxyid", "id", "name")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the partition; small and picklable."""

    cards: dict[str, ModelCard]  # by name
    engines: dict[str, str]  # card name -> resolved engine
    parts_dir: str
    threads: int = 1
    batch_size: int = 128
    output_order: tuple[str, ...] = field(default=())  # card names, in catalog order
    positions: Positions | None = None  # --positions: ra/dec for inputs that carry none


_ENGINES: dict[tuple[str, str, int], Engine] = {}


def engine_for(card: ModelCard, engine: str, threads: int) -> Engine:
    key = (card.fingerprint, engine, threads)
    if key not in _ENGINES:
        _ENGINES[key] = open_engine(card, engine, threads)
    return _ENGINES[key]


@lru_cache(maxsize=16)
def _table_info(path: str, fmt: str, hdu: int | None, mtime_ns: int):
    return readers.scan_table(path, fmt, hdu)


def _stem(source: str) -> str:
    name = source.rsplit("/", 1)[-1]
    for suffix in (".fits.gz", ".fits.fz", ".fit.gz", ".fts.gz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name.rsplit(".", 1)[0] if "." in name else name


def _message(exc: BaseException, unit) -> str:
    """The catalog's error text; the ``source`` column already names the file."""
    if isinstance(exc, InputError):
        return str(exc).removeprefix(f"{unit.path}: ")
    return f"could not read {unit.fmt} input: {type(exc).__name__}: {exc}"


class _Rows:
    """Column-wise accumulation of one part's rows."""

    def __init__(self, job: Job) -> None:
        self.base: dict[str, list] = {c.name: [] for c in BASE_COLUMNS}
        self.outputs: list[Column] = []
        seen: set[str] = set()
        for name in job.output_order:
            for col in output_columns(job.cards[name]):
                if col.name not in seen:
                    self.outputs.append(col)
                    seen.add(col.name)
        self.values = {c.name: [] for c in self.outputs}
        self.carried: dict[str, tuple[pa.DataType, list]] = {}
        self.retry: set[int] = set()
        self.n = 0

    def add(self, **base) -> int:
        for name, values in self.base.items():
            values.append(base.get(name, _DEFAULTS[name]))
        for values in self.values.values():
            values.append(np.nan)
        for _, values in self.carried.values():
            values.append(None)
        self.n += 1
        return self.n - 1

    def carry(self, index: int, name: str, type_: pa.DataType, value) -> None:
        if name not in self.carried:
            self.carried[name] = (type_, [None] * self.n)
        self.carried[name][1][index] = value

    def fail(self, index: int, message: str, retry: bool = False) -> None:
        """Make row ``index`` an error row; ``retry``: the next run recomputes it."""
        self.base["status"][index] = "error"
        self.base["error"][index] = message
        if retry:
            self.retry.add(index)
        for values in self.values.values():
            values[index] = np.nan

    def table(self) -> pa.Table:
        from astrocat.catalog.schema import sentinel

        fields, arrays = [], []
        for col in BASE_COLUMNS:
            fields.append(to_field(col))
            arrays.append(pa.array(self.base[col.name], type=col.type))
        for col in self.outputs:
            fields.append(to_field(col))
            arrays.append(pa.array(np.asarray(self.values[col.name], dtype=np.float32)))
        for name, (type_, values) in self.carried.items():
            fill = sentinel(type_)
            fields.append(pa.field(name, type_, nullable=False, metadata={b"carried": b"1"}))
            arrays.append(pa.array([fill if v is None else v for v in values], type=type_))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


_DEFAULTS = {
    "object_id": "",
    "source": "",
    "hdu": -1,
    "row": -1,
    "kind": "",
    "model": "",
    "ra": float("nan"),
    "dec": float("nan"),
    "status": "ok",
    "error": "",
}


def _read_item(s: Slice, card: ModelCard) -> tuple[np.ndarray, float, float]:
    """Raw array of a single-item unit, shaped for stacking, with its sky position."""
    u, spec = s.unit, card.input
    if u.kind == Kind.RGB_IMAGE:
        return readers.read_rgb(u.path, spec.image_size[0], spec.crop_fraction, spec.zoom,
                                spec.resize_filter, spec.antialias), np.nan, np.nan
    plane = readers.read_plane(u.path, u.fmt, u.hdu)
    return centre_crop_plane(plane.data, *spec.image_size), plane.ra, plane.dec


def _spectra(s: Slice, rows: _Rows, pending: dict, card: ModelCard) -> None:
    u = s.unit
    stem = _stem(u.source)
    try:
        info = _table_info(u.path, u.fmt, u.hdu, u.mtime_ns)
        flux, carried = readers.read_spectra(u.path, u.fmt, u.hdu, s.start, s.stop, info)
    except Exception as exc:  # the whole slice is unreadable: one error row per row
        for r in range(s.start, s.stop):
            i = rows.add(object_id=f"{stem}:{r}", source=u.source, hdu=_hdu(u), row=r,
                         kind=u.kind.value, model=card.name)
            rows.fail(i, _message(exc, u), _transient(exc))
        return
    expected = int(np.prod(card.input.shape))
    cols = {name.lower(): name for name in carried.column_names}
    id_col = next((cols[c] for c in ID_COLUMNS if c in cols), None)
    data = {name: carried.column(name).to_pylist() for name in carried.column_names}
    for k in range(len(flux)):
        r = s.start + k
        oid = data[id_col][k] if id_col else None
        i = rows.add(
            object_id=str(oid) if oid is not None else f"{stem}:{r}",
            source=u.source, hdu=_hdu(u), row=r, kind=u.kind.value, model=card.name,
            ra=_float(data, cols, "ra", k), dec=_float(data, cols, "dec", k),
        )
        for name in carried.column_names:
            if name.lower() in CARRIED_INTO_BASE:
                continue
            rows.carry(i, carried_name(name), carried.schema.field(name).type, data[name][k])
        if flux.shape[1] != expected:
            rows.fail(i, f"spectrum has {flux.shape[1]} flux samples; model '{card.name}' "
                         f"needs {expected} (Gaia BP/RP-like sampling, see the model card)")
        elif not np.all(np.isfinite(flux[k])):
            rows.fail(i, f"flux has missing or non-numeric values (table row {r}); fix or drop "
                         "the row")
        elif np.ptp(flux[k]) == 0:
            rows.fail(i, f"flux is constant (table row {r}): there is no spectrum to measure")
        else:
            pending[card.name].append((i, flux[k]))


def _float(data: dict, cols: dict, name: str, k: int) -> float:
    col = cols.get(name)
    if col is None:
        return float("nan")
    v = data[col][k]
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _hdu(u) -> int:
    return -1 if u.hdu is None else int(u.hdu)


def _error_rows(rows: _Rows, s: Slice, message: str, retry: bool = False) -> None:
    """One error row per item of a slice (per table row for a usable table)."""
    u = s.unit
    table = u.kind == Kind.SPECTRUM and u.n_items > 1
    for r in range(s.start, s.stop):
        i = rows.add(
            object_id=f"{_stem(u.source)}:{r}" if table else _stem(u.source),
            source=u.source, hdu=_hdu(u), row=r if table else -1,
            kind=u.kind.value if u.kind else "", model=s.model or "",
        )
        rows.fail(i, message, retry)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientInputError)


def run_partition(part: Partition, job: Job) -> dict:
    """Process one partition end to end; return its statistics (what the driver keeps).

    Never raises: a failure of the task itself (an engine that cannot load, a bug) makes
    every item an error row to be retried by the next run, with the traceback written to
    ``errors.log`` beside the parts instead of into the user's terminal.
    """
    try:
        return _run_partition(part, job)
    except Exception as exc:  # noqa: BLE001 - accounted for as retryable error rows
        return write_failed_partition(part, job, exc, log_failure(job, part, exc))


def _run_partition(part: Partition, job: Job) -> dict:
    t0 = time.perf_counter()
    rows = _Rows(job)
    pending: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for s in part.slices:
        u = s.unit
        if s.model is None:
            _error_rows(rows, s, s.problem or "input could not be used", u.transient)
            continue
        card = job.cards[s.model]
        if u.kind == Kind.SPECTRUM:
            _spectra(s, rows, pending, card)
            continue
        i = rows.add(object_id=_stem(u.source), source=u.source, hdu=_hdu(u),
                     kind=u.kind.value, model=card.name)
        try:
            data, ra, dec = _read_item(s, card)
        except Exception as exc:  # noqa: BLE001 - the input's own error row
            rows.fail(i, _message(exc, u), _transient(exc))
            continue
        rows.base["ra"][i], rows.base["dec"][i] = ra, dec
        pending[card.name].append((i, data))

    for name, items in pending.items():
        card = job.cards[name]
        engine = engine_for(card, job.engines[name], job.threads)
        for b in range(0, len(items), job.batch_size):
            chunk = items[b : b + job.batch_size]
            x = prepare(np.stack([a for _, a in chunk]), card.input)
            bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            y = engine.predict(x)
            for (i, _), out, is_bad in zip(chunk, y, bad, strict=True):
                if is_bad:
                    rows.fail(i, "input has non-finite values after preprocessing")
                    continue
                for col, value in zip(card.outputs, out, strict=True):
                    rows.values[col.name][i] = float(value)

    placed = _place(rows, job.positions) if job.positions is not None else None
    models = sorted({m for m in rows.base["model"] if m})
    return _write(part, job, rows, models, time.perf_counter() - t0, positions=placed)


def _place(rows: _Rows, table: Positions) -> dict[str, int]:
    """Fill ra/dec of ok rows that carry none from the positions table; count both."""
    need = [i for i in range(rows.n) if rows.base["status"][i] == "ok"
            and not np.isfinite(rows.base["ra"][i])]
    found = positions.lookup(table, [rows.base["object_id"][i] for i in need])
    for i in need:
        if (radec := found.get(rows.base["object_id"][i])) is not None:
            rows.base["ra"][i], rows.base["dec"][i] = radec
    placed = sum(1 for i in need if rows.base["object_id"][i] in found)
    return {"placed": placed, "unmatched": len(need) - placed}


def _write(part: Partition, job: Job, rows: _Rows, models: list[str], seconds: float,
           failure: str | None = None, positions: dict | None = None) -> dict:
    """Write the part with the statistics the driver and a resumed run need."""
    table = rows.table()
    stats = {
        "key": part.key,
        "n_rows": table.num_rows,
        "n_errors": sum(1 for v in rows.base["status"] if v == "error"),
        "retry": len(rows.retry),  # rows the next run recomputes (the part is redone)
        "failure": failure,  # why the whole task failed, if it did
        "positions": positions,  # rows placed from --positions, and left unmatched
        "inputs": sorted({(s.unit.source, s.unit.size, s.unit.mtime_ns) for s in part.slices}),
        "models": models,
        "string_lengths": {
            f.name: max((len(v) for v in table.column(f.name).to_pylist()), default=1)
            for f in table.schema
            if f.type == pa.string()
        },
        "seconds": seconds,
        "worker": _worker_name(),
    }
    return write_part(table, Path(job.parts_dir) / f"part-{part.key}.parquet", stats)


def _worker_name() -> str:
    """Which Dask worker ran a part (provenance, and proof the cluster was used)."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid:{os.getpid()}"


def failure_message(exc: BaseException, log: Path | None) -> str:
    """The error text of an item whose partition failed as a whole (task or worker)."""
    details = f"; details in {log}" if log else ""
    return (f"the worker processing this input failed ({type(exc).__name__}: {exc}){details}; "
            "re-run the same command to retry only the failed inputs")


def log_failure(job: Job, part: Partition, exc: BaseException) -> Path:
    """Append the traceback of a failed task to ``errors.log`` beside the parts."""
    import datetime as dt
    import traceback

    log = Path(job.parts_dir) / FAILURE_LOG
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record = (f"--- {stamp} partition {part.key} on {_worker_name()} "
              f"({part.n_items} items, first {part.slices[0].unit.source})\n"
              + "".join(traceback.format_exception(exc)))
    with open(log, "a", encoding="utf-8") as f:  # one write: appends do not interleave
        f.write(record)
    return log


def write_failed_partition(part: Partition, job: Job, exc: BaseException,
                           log: Path | None = None) -> dict:
    """Account for a partition whose task failed or whose worker died: one error row per
    item, every one retried by the next run."""
    rows = _Rows(job)
    for s in part.slices:
        _error_rows(rows, s, failure_message(exc, log), retry=True)
    return _write(part, job, rows, [], 0.0, failure=f"{type(exc).__name__}: {exc}")
