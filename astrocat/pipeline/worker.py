"""What runs inside a Dask worker: describe, read and decode a partition's inputs, predict
in batches, write its Parquet part.

The partition's files are described, routed and decoded on the worker's decoder threads
(``feed.decoders``), a bounded window ahead of the task thread, which keeps the rows in
input order and hands full batches to each model's engine thread (``feed.engine``); the
next batch decodes while the previous one runs. Only the small plan and job description
travel to workers; only a few statistics travel back.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from astrocat.catalog.schema import CARRIED_INTO_BASE, carried_name
from astrocat.catalog.writer import write_part
from astrocat.errors import InputError, TransientInputError
from astrocat.kernels.fit import fit_plane
from astrocat.kernels.preprocess import prepare
from astrocat.kernels.spectral import onto_axis
from astrocat.kinds import Kind
from astrocat.models.card import ModelCard
from astrocat.pipeline import drift_report, libwarnings
from astrocat.pipeline import feed as feeding
from astrocat.pipeline.cluster import Stopped, stop_requested
from astrocat.pipeline.feed import Feed
from astrocat.pipeline.libwarnings import Recorder
from astrocat.pipeline.malloc import keep_batches_on_the_heap
from astrocat.pipeline.plan import FileRef, Partition, Slice, fits_product, route
from astrocat.pipeline.rows import Rows
from astrocat.sources import images, positions, readers
from astrocat.sources._fits import Product, release_handed
from astrocat.sources.common import library_message
from astrocat.sources.describe import describe
from astrocat.sources.positions import Positions
from astrocat.sources.units import InputUnit

#: Where tracebacks of failed tasks go, beside the parts (the error rows name it).
FAILURE_LOG = "errors.log"
#: Table columns tried, in order, for a spectrum's object_id.
ID_COLUMNS = ("object_id", "source_id", "objid", "specobjid", "targetid", "galaxyid", "id",
              "name")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the partition; small and picklable."""

    cards: dict[str, ModelCard]  # by name
    engines: dict[str, str]  # card name -> resolved engine
    parts_dir: str
    feed: Feed = field(default_factory=Feed)
    output_order: tuple[str, ...] = field(default=())  # card names, in catalog order
    positions: Positions | None = None  # --positions: ra/dec for inputs that carry none
    routing: dict[Kind, str] = field(default_factory=dict)  # kind -> card name
    root: str = "/"  # the input root, for describing FileRefs

    @cached_property
    def route_cards(self) -> dict[Kind, ModelCard]:
        return {k: self.cards[n] for k, n in self.routing.items()}

    @cached_property
    def product(self) -> Product:
        """The FITS HDU and plane files are described by (the driver checked the cards)."""
        return fits_product(self.route_cards)

    def batch(self, card: ModelCard) -> int:
        return feeding.choose_batch(card, self.feed.memory_budget, self.feed.batch_size,
                                    self.feed.device_memory, self.feed.engines)


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
    return f"could not read {unit.fmt} input ({library_message(exc)})"


def _stopping(exc: BaseException) -> bool:
    """Whether a partition's task failed because its run stopped or its process is ending
    (the decoder pool refuses work at interpreter shutdown, the engines were closed), not
    for a fault of its own."""
    return (isinstance(exc, Stopped | feeding.EnginesClosed) or stop_requested()
            or isinstance(exc, RuntimeError) and "interpreter shutdown" in str(exc))


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientInputError)


def _hdu(u) -> int:
    return -1 if u.hdu is None else int(u.hdu)


# --------------------------------------------------------------------------- decoding


@dataclass
class Loaded:
    """One slice after the decoder thread: its unit, where it goes, and its pixels."""

    slice: Slice
    unit: InputUnit
    model: str | None
    problem: str | None = None
    data: np.ndarray | None = None
    jpeg: bytes | None = None  # for the engine thread to decode (Feed.gpu_decode)
    ra: float = np.nan
    dec: float = np.nan
    error: BaseException | None = None

    @property
    def table(self) -> bool:
        return self.model is not None and self.unit.kind == Kind.SPECTRUM


def _read_item(unit: InputUnit, card: ModelCard) -> tuple[np.ndarray, float, float]:
    """Raw array of a single-item unit, shaped for stacking, with its sky position."""
    spec = card.input
    if unit.kind == Kind.RGB_IMAGE:
        return readers.read_rgb(unit.path, spec.image_size[0], spec.crop_fraction, spec.zoom,
                                spec.resize_filter, spec.antialias), np.nan, np.nan
    plane = readers.read_plane(unit.path, unit.fmt, unit.hdu, spec.product)
    return fit_plane(plane.data, spec, plane.scale), plane.ra, plane.dec


def _load(s: Slice, job: Job, recorder: Recorder) -> Loaded:
    """Describe (if the driver did not), route and decode one slice: on a decoder thread.
    Library warnings raised meanwhile are recorded against the input."""
    with recorder.reading(s.unit.source):
        return _load_one(s, job)


def _load_one(s: Slice, job: Job) -> Loaded:
    try:
        return _describe_and_read(s, job)
    finally:
        release_handed()  # a FITS file describe kept open for a read that did not come


def _describe_and_read(s: Slice, job: Job) -> Loaded:
    if isinstance(s.unit, FileRef):
        unit = describe(s.unit.path, job.root, s.unit.source, job.product)
        model, problem = route(unit, job.route_cards)
    else:
        unit, model, problem = s.unit, s.model, s.problem
    got = Loaded(s, unit, model, problem)
    if model is not None and unit.kind != Kind.SPECTRUM:
        try:
            if unit.fmt == "jpeg" and model in job.feed.gpu_decode:  # bytes only: see feed
                got.jpeg = images.gpu_jpeg(unit.path)
            if got.jpeg is None:
                got.data, got.ra, got.dec = _read_item(unit, job.cards[model])
        except Exception as exc:  # noqa: BLE001 - the input's own error row
            got.error = exc
    return got


#: Slices one decoder task loads in turn: fewer futures and hand-offs per item (each
#: costs the GIL), still small enough to keep every decoder thread busy.
LOAD_CHUNK = 16


def _load_chunk(chunk: Sequence[Slice], job: Job, recorder: Recorder) -> list[Loaded]:
    return [_load(s, job, recorder) for s in chunk]


@dataclass(eq=False)
class _Open:
    """A partition of a stream whose part is not written yet: its rows and warnings, and
    how many of its items are still in batches."""

    part: Partition
    rows: Rows
    recorder: Recorder = field(default_factory=Recorder)
    t0: float = field(default_factory=time.perf_counter)
    loaded: bool = False  # every slice has reached the task thread
    waiting: int = 0  # items handed to a model whose results are not back yet
    written: bool = False

    @property
    def settled(self) -> bool:
        return self.loaded and self.waiting == 0 and not self.written


def _loaded(parts: Iterator[Partition], job: Job, window: int, opened: list[_Open]
            ) -> Iterator[tuple[_Open, Loaded | None]]:
    """Every slice of each partition ``parts`` gives, loaded, in order, with at most
    ``window`` slices decoding ahead, across partition boundaries (the next partition is
    taken from ``parts`` only when the window reaches it); ``(partition, None)`` after a
    partition's last slice. Each partition taken is appended to ``opened`` (from which
    its part's writer removes it)."""
    pool = feeding.decoders(job.feed.decoders)

    def chunks() -> Iterator[tuple[_Open, Sequence[Slice] | None]]:
        for part in parts:
            owner = _Open(part, Rows(job.cards, job.output_order))
            opened.append(owner)
            for i in range(0, len(part.slices), LOAD_CHUNK):
                yield owner, part.slices[i:i + LOAD_CHUNK]
            yield owner, None

    pending = chunks()
    ahead: deque = deque()
    decoding = 0

    def fill() -> None:
        nonlocal decoding
        while decoding < window and (nxt := next(pending, None)) is not None:
            owner, chunk = nxt
            if chunk is None:
                ahead.append((owner, None, 0))
            else:
                ahead.append((owner, pool.submit(_load_chunk, chunk, job, owner.recorder),
                              len(chunk)))
                decoding += len(chunk)

    fill()
    while ahead:
        owner, fut, n = ahead.popleft()
        if fut is None:
            yield owner, None
            continue
        got = fut.result()
        decoding -= n
        fill()
        for loaded in got:
            yield owner, loaded


# --------------------------------------------------------------------------- batching


def _runs(owners: Sequence[_Open]) -> list[tuple[_Open, int, int]]:
    """(partition, start, stop) of each run of one partition's items in a batch."""
    out, start = [], 0
    for k in range(1, len(owners) + 1):
        if k == len(owners) or owners[k] is not owners[start]:
            out.append((owners[start], start, k))
            start = k
    return out


class _Batches:
    """Items waiting for one model's engine, and its batches in flight (bounded); JPEGs
    the engine thread decodes (``Feed.gpu_decode``) are batched apart from the others. A
    batch may hold the end of one partition and the start of the next; a partition whose
    last item's batch is back is handed to ``settled``."""

    def __init__(self, card: ModelCard, job: Job,
                 settled: Callable[[_Open], None] = lambda owner: None) -> None:
        self.card, self.settled = card, settled
        self.size = job.batch(card)
        self.engine = feeding.engine(card, job.engines[card.name], job.feed)
        self.items: list[tuple[_Open, int, np.ndarray]] = []
        self.jpegs: list[tuple[_Open, int, bytes]] = []
        self.flying: deque = deque()

    def add(self, owner: _Open, index: int, data: np.ndarray) -> None:
        owner.waiting += 1
        self.items.append((owner, index, data))
        if len(self.items) >= self.size:
            self.dispatch(jpegs=False)

    def add_jpeg(self, owner: _Open, index: int, data: bytes) -> None:
        owner.waiting += 1
        self.jpegs.append((owner, index, data))
        if len(self.jpegs) >= self.size:
            self.dispatch(items=False)

    def dispatch(self, items: bool = True, jpegs: bool = True) -> None:
        if jpegs and self.jpegs:
            owners = [o for o, _, _ in self.jpegs]
            index = np.array([i for _, i, _ in self.jpegs])
            batch = feeding.Jpegs(tuple(d for _, _, d in self.jpegs))
            self.jpegs = []
            self.flying.append((owners, index, self.engine.submit(batch)))
        if items and self.items:
            owners = [o for o, _, _ in self.items]
            index = np.array([i for _, i, _ in self.items])
            x = prepare(np.stack([a for _, _, a in self.items]), self.card.input)
            self.items = []
            bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            for k in np.flatnonzero(bad):
                owners[k].rows.fail(int(index[k]),
                                    "input has non-finite values after preprocessing")
            self.flying.append((owners, index, self.engine.submit(x)))
        while len(self.flying) >= feeding.IN_FLIGHT:
            self.collect()

    def collect(self) -> None:
        owners, index, fut = self.flying.popleft()
        got = fut.result()
        ok = None  # every item of the batch has results
        if isinstance(got, feeding.Decoded):
            for k, message in got.errors.items():
                owners[k].rows.fail(int(index[k]), message)
            ok, got = got.ok, got.columns
        runs = _runs(owners)
        for owner, start, stop in runs:
            if ok is None:
                part_of = slice(start, stop) if len(runs) > 1 else slice(None)
                owner.rows.results(index[part_of], {k: v[part_of] for k, v in got.items()}
                                   if len(runs) > 1 else got)
            else:
                mine = (ok >= start) & (ok < stop)
                if mine.any():
                    owner.rows.results(index[ok[mine]], {k: v[mine] for k, v in got.items()})
            owner.waiting -= stop - start
        for owner, _, _ in runs:
            if owner.settled:
                self.settled(owner)

    def finish(self) -> None:
        self.dispatch()
        while self.flying:
            self.collect()


# --------------------------------------------------------------------------- partitions


def run_partition(part: Partition, job: Job) -> dict:
    """Process one partition end to end; return its statistics (what the driver keeps):
    :func:`run_partitions` for one partition (a Dask task on a cluster's worker)."""
    got: list[dict] = []
    run_partitions([part], job, lambda _, stats: got.append(stats))
    return got[0]


def run_partitions(parts: Iterable[Partition], job: Job,
                   done: Callable[[Partition, dict], None]) -> None:
    """Process partitions one after another as one stream, taking each from ``parts`` only
    when the decoders reach it: the decoders read the next partition while the engines
    finish the last one's batches, and a batch may span the two, so the cores never wait
    for a partition to drain (on 20,000 JPEGs, partitions of 2,048 files ran 4-15 %
    faster than of 256 before this; docs/performance.md). Each partition's part is written,
    and ``done(partition, statistics)`` called, as soon as its last item's batch is back,
    so an interrupted run keeps every part written before it stopped.

    A failure of the stream itself (an engine that cannot load, a bug) makes every item
    of each partition in flight an error row, retried by the next run, with the traceback
    in ``errors.log`` beside the parts, not in the user's terminal; the rest of ``parts``
    goes on through a fresh pipeline. Raises only :class:`Stopped`: the run was
    interrupted (Ctrl-C, SIGTERM) or this process is shutting down; then nothing more is
    written (the partitions in flight are not processed, not failed: the next run
    computes them), and nothing is logged."""
    parts = iter(parts)
    with libwarnings.captured():
        while True:
            opened: list[_Open] = []
            try:
                _stream(parts, job, done, opened)
                return
            except Exception as exc:  # noqa: BLE001 - accounted for as retryable error rows
                if _stopping(exc):
                    raise Stopped(f"partitions {[o.part.key for o in opened if not o.written]}"
                                  ": not processed; run again to resume") from None
                for owner in opened:
                    if not owner.written:
                        owner.written = True
                        stats = write_failed_partition(owner.part, job, exc,
                                                       log_failure(job, owner.part, exc))
                        stats["n_warnings"] = owner.recorder.write(job.parts_dir)
                        done(owner.part, stats)


#: Partitions of a stream whose every file is read but whose part is not written: past
#: this many, the batches still filling are sent as they are (a model whose items are rare
#: in the stream would otherwise hold every part back until the stream ends).
OPEN_PARTITIONS = 2


def _stream(parts: Iterator[Partition], job: Job, done: Callable[[Partition, dict], None],
            opened: list[_Open]) -> None:
    keep_batches_on_the_heap()  # in a Dask worker process, once
    if job.feed.decoders <= 0 or job.feed.engines <= 0:
        job = dataclasses.replace(job, feed=job.feed.resolved())
    batches: dict[str, _Batches] = {}

    def write(owner: _Open) -> None:
        rows = owner.rows
        placed = _place(rows, job.positions) if job.positions is not None else None
        models = sorted({m for m in rows.base["model"] if m})
        stats = _write(owner.part, job, rows, models, time.perf_counter() - owner.t0,
                       positions=placed)
        owner.written = True  # only now: a part that failed to write fails as a whole
        opened.remove(owner)  # its rows go: a stream of any length holds a few at most
        stats["n_warnings"] = owner.recorder.write(job.parts_dir)
        done(owner.part, stats)

    def feed_to(card: ModelCard) -> _Batches:
        if card.name not in batches:
            batches[card.name] = _Batches(card, job, write)
        return batches[card.name]

    window = feeding.IN_FLIGHT * max(job.batch(c) for c in job.cards.values()) if job.cards \
        else 64
    for owner, got in _loaded(parts, job, window, opened):
        if stop_requested():
            raise Stopped(owner.part.key)
        if got is None:  # the partition's last slice: written once its batches are back
            owner.loaded = True
            if owner.settled:
                write(owner)
            elif sum(o.loaded and not o.written for o in opened) > OPEN_PARTITIONS:
                for b in batches.values():  # a model's items too few to fill its batch:
                    b.dispatch()  # sent as they are, so that no part waits for the end
            continue
        rows, s, u = owner.rows, got.slice, got.unit
        if got.model is None:
            _error_rows(rows, s, u, got.problem or "input could not be used", u.transient)
        elif got.table:
            whole = isinstance(s.unit, FileRef)  # a table met only now: all its rows
            _spectra(u, 0 if whole else s.start, u.n_items if whole else s.stop, owner,
                     feed_to(job.cards[got.model]))
        else:
            i = rows.add(object_id=_stem(u.source), source=u.source, hdu=_hdu(u),
                         kind=u.kind.value, model=got.model)
            if got.error is not None:
                rows.fail(i, _message(got.error, u), _transient(got.error))
            else:
                rows.base["ra"][i], rows.base["dec"][i] = got.ra, got.dec
                if got.jpeg is not None:
                    feed_to(job.cards[got.model]).add_jpeg(owner, i, got.jpeg)
                else:
                    feed_to(job.cards[got.model]).add(owner, i, got.data)
    for b in batches.values():
        b.finish()


#: Table rows read at once: a whole FITS table met in a file partition is read in chunks.
TABLE_CHUNK = 65_536


def _spectra(u: InputUnit, start: int, stop: int, owner: _Open, batches: _Batches) -> None:
    for a in range(start, stop, TABLE_CHUNK):
        _spectra_chunk(u, a, min(stop, a + TABLE_CHUNK), owner, batches)


def _spectra_chunk(u: InputUnit, start: int, stop: int, owner: _Open,
                   batches: _Batches) -> None:
    card, rows = batches.card, owner.rows
    stem = _stem(u.source)
    try:
        info = _table_info(u.path, u.fmt, u.hdu, u.mtime_ns)
        flux, carried = readers.read_spectra(u.path, u.fmt, u.hdu, start, stop, info)
    except Exception as exc:  # noqa: BLE001 - the whole range is unreadable: a row each
        for r in range(start, stop):
            i = rows.add(object_id=f"{stem}:{r}", source=u.source, hdu=_hdu(u), row=r,
                         kind=u.kind.value, model=card.name)
            rows.fail(i, _message(exc, u), _transient(exc))
        return
    flux, unusable = onto_axis(flux, info.axis, card.input.spectral_axis,
                               int(np.prod(card.input.shape)), card.name)
    cols = {name.lower(): name for name in carried.column_names}
    id_col = next((cols[c] for c in ID_COLUMNS if c in cols), None)
    data = {name: carried.column(name).to_pylist() for name in carried.column_names}
    finite = np.isfinite(flux).all(axis=1)  # per chunk: not two numpy calls per row
    with np.errstate(invalid="ignore"):  # inf - inf: such rows fail as non-finite first
        constant = np.ptp(flux, axis=1) == 0  # no copy of the chunk
    for k in range(len(flux)):
        r = start + k
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
        if unusable[k] is not None:
            rows.fail(i, unusable[k])
        elif not finite[k]:
            rows.fail(i, f"flux has missing or non-numeric values (table row {r}); fix or drop "
                         "the row")
        elif constant[k]:
            rows.fail(i, f"flux is constant (table row {r}): there is no spectrum to measure")
        else:
            batches.add(owner, i, flux[k])


def _float(data: dict, cols: dict, name: str, k: int) -> float:
    col = cols.get(name)
    if col is None:
        return float("nan")
    v = data[col][k]
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _error_rows(rows: Rows, s: Slice, u, message: str, retry: bool = False) -> None:
    """One error row per item of a slice (per table row for a usable table)."""
    table = u.kind == Kind.SPECTRUM and u.n_items > 1
    start, stop = (0, max(1, u.n_items)) if isinstance(s.unit, FileRef) else (s.start, s.stop)
    for r in range(start, stop):
        i = rows.add(
            object_id=f"{_stem(u.source)}:{r}" if table else _stem(u.source),
            source=u.source, hdu=_hdu(u), row=r if table else -1,
            kind=u.kind.value if u.kind else "",
            model=s.model if s.model and not s.model.startswith("family:") else "",
        )
        rows.fail(i, message, retry)


def _place(rows: Rows, table: Positions) -> dict[str, int]:
    """Fill ra/dec of ok rows that carry none from the positions table; count both."""
    need = [i for i in range(rows.n) if rows.base["status"][i] == "ok"
            and not np.isfinite(rows.base["ra"][i])]
    found = positions.lookup(table, [rows.base["object_id"][i] for i in need])
    for i in need:
        if (radec := found.get(rows.base["object_id"][i])) is not None:
            rows.base["ra"][i], rows.base["dec"][i] = radec
    placed = sum(1 for i in need if rows.base["object_id"][i] in found)
    return {"placed": placed, "unmatched": len(need) - placed}


def _write(part: Partition, job: Job, rows: Rows, models: list[str], seconds: float,
           failure: str | None = None, positions: dict | None = None) -> dict:
    """Write the part with the statistics the driver and a resumed run need."""
    table = rows.table()
    stats = {
        "key": part.key,
        "n_rows": table.num_rows,
        "n_errors": rows.n_errors,
        "retry": len(rows.retry),  # rows the next run recomputes (the part is redone)
        "failure": failure,  # why the whole task failed, if it did
        "positions": positions,  # rows placed from --positions, and left unmatched
        "inputs": sorted({(s.unit.source, s.unit.size, s.unit.mtime_ns) for s in part.slices}),
        "models": models,
        # rows per input kind and the model that took them ("" none): which model each
        # kind got, and what a named --model could not take, without reading a row
        "by_kind": _by_kind(rows),
        # each model's distribution of ood_distance here: merged into the run's drift
        "drift": drift_report.part_sketches(table, models),
        "string_lengths": {
            f.name: max((len(v) for v in table.column(f.name).to_pylist()), default=1)
            for f in table.schema
            if f.type == pa.string()
        },
        "seconds": seconds,
        "worker": _worker_name(),
    }
    return write_part(table, Path(job.parts_dir) / f"part-{part.key}.parquet", stats)


def _by_kind(rows: Rows) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind, model in zip(rows.base["kind"], rows.base["model"], strict=True):
        per = out.setdefault(kind, {})
        per[model] = per.get(model, 0) + 1
    return out


def _worker_name() -> str:
    """Which Dask worker ran a part (provenance, and proof the cluster was used)."""
    if "distributed" not in sys.modules:  # Dask's threaded scheduler: no worker to ask
        return f"pid:{os.getpid()}"
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid:{os.getpid()}"


def failure_message(exc: BaseException, log: Path | None) -> str:
    """The error text of an item whose partition failed as a whole (task or worker)."""
    details = f"; details in {log}" if log else ""
    return (f"the worker processing this input failed ({library_message(exc)}){details}; "
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
    rows = Rows(job.cards, job.output_order)
    for s in part.slices:
        _error_rows(rows, s, s.unit, failure_message(exc, log), retry=True)
    return _write(part, job, rows, [], 0.0, failure=f"{type(exc).__name__}: {exc}")
