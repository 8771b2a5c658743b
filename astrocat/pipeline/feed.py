"""Feeding the engines inside a worker process: decoder threads and engine threads per
model and device, with bounded prefetch.

Decoding (Pillow, fitsio, astropy, pyarrow) and inference (ONNX Runtime, TensorRT) release
the GIL, so one process overlaps them with threads: a pool of decoder threads reads and
decodes items ahead of the engines. Each engine instance lives in its own thread (a
TensorRT execution context, or a CUDA context, then belongs to exactly one thread). On a
CPU there is one single-threaded engine per core, each taking whole batches: independent
batches keep every core busy whenever the decoders leave it idle, with none of the
stragglers of one engine's intra-op threads waiting on a core a decoder holds. On a GPU
there is one engine per device. Prefetch is bounded, so memory stays flat however long
the partition. Engines and the pool are per worker process, loaded once, never pickled.

GPU decoding (``--decode``, :func:`gpu_decoded`): for the models named in
``Feed.gpu_decode`` (torch engine on a CUDA device, JPEG inputs) the decoder threads only
read each JPEG's bytes; the engine thread decodes and prepares the batch on the engine's
own device (``sources.gpu_decode``: nvJPEG) and runs it there, so its pixels never visit
the host. A JPEG the decoder refuses becomes that item's error (:class:`Decoded`); PNG,
FITS and spectra, and JPEGs the GPU does not take (CMYK), are decoded on the CPU as ever.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from astrocat.engines.base import Engine, open_engine
from astrocat.errors import AstrocatError
from astrocat.kinds import Kind
from astrocat.models.card import ModelCard
from astrocat.pipeline.trust import BatchColumns

#: Largest batch chosen automatically on CPU and on a GPU (which wants big batches);
#: ``--batch-size`` may ask for more. On a CPU larger batches only spill the caches: on a
#: 2-core Xeon (2 MiB L2 per core) the models ran 4-8 % faster per item at the batches
#: chosen now (64, 53 for lens-lastro) than at 128 (benchmarks/RESULTS.json, 2026-12-04).
MAX_BATCH = 64
MAX_GPU_BATCH = 1024
#: On a CPU, one batch's activations stay within this (about 50 lens cut-outs, 60 galaxy
#: images): per item, batches of 32-64 ran at least as fast as 128, and each engine instance's
#: ONNX Runtime arena keeps its largest batch's activations for good.
CPU_BATCH_BYTES = 160 << 20
#: Batches a model may have decoded, queued or running at once (bounded prefetch).
IN_FLIGHT = 3
#: Per-item memory of a network's activations, as a multiple of its input's bytes, when
#: no measurement is at hand (deep CNNs at full resolution reach this).
ACTIVATION_FACTOR = 24


@dataclass(frozen=True)
class Feed:
    """How a worker process is fed: decoder threads, engine threads, memory budget."""

    decoders: int = 1  # threads reading and decoding items
    engines: int = 1  # engine instances per model, each in its own thread, batch-parallel
    intra_op: int = 1  # threads inside each engine instance (CPU)
    memory_budget: int = 2 << 30  # bytes this worker's batches may take
    batch_size: int | None = None  # --batch-size: overrides the memory-aware choice
    device: int = 0  # GPU index as this worker sees it (CUDA_VISIBLE_DEVICES applied)
    device_memory: int = 0  # bytes of GPU memory batches may take (0: no GPU)
    gpu_decode: tuple[str, ...] = ()  # models whose JPEGs the engine thread decodes

    def resolved(self) -> Feed:
        """Zero decoders or engines (a worker of an external cluster, which the driver
        cannot see): as many as the Dask worker has threads."""
        if self.decoders > 0 and self.engines > 0:
            return self
        import dataclasses
        import os

        try:
            from distributed import get_worker

            n = int(get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            n = os.cpu_count() or 1
        return dataclasses.replace(self, decoders=self.decoders or n,
                                   engines=self.engines or n)


def parse_size(size: str) -> int:
    """A memory size as people write it (4GB, 512MiB), in bytes; ValueError if it is not."""
    from dask.utils import parse_bytes

    try:
        n = int(parse_bytes(size))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{size!r} is not a size like 4GB or 512MiB") from exc
    if n <= 0:
        raise ValueError(f"{size!r} is not a positive size")
    return n


def item_bytes(card: ModelCard) -> int:
    """Estimated peak bytes one item costs through a batch: the raw and prepared input
    and the network's activations, for each of its TTA views. The activations are read
    off the ONNX graph's shapes where it has them (``graph.activation_bytes``), else taken
    as ``ACTIVATION_FACTOR`` x the float32 input."""
    n = int(np.prod(card.input.shape))
    views = max(1, card.tta)
    activations = None
    if "onnx" in getattr(card, "files", {}):
        from astrocat.models.graph import activation_bytes

        activations = activation_bytes(str(card.weights("onnx")), card.sha256["onnx"])
    if activations is None:
        activations = n * 4 * ACTIVATION_FACTOR
    return n * 4 * (1 + views) + views * activations + n


def choose_batch(card: ModelCard, budget: int, requested: int | None = None,
                 device_memory: int = 0, engines: int = 1) -> int:
    """The batch size for ``card``: ``requested`` if given, else the largest that keeps
    ``IN_FLIGHT`` batches (or one per engine instance, if more run at once) within
    ``budget`` bytes of host memory and, on a GPU, one batch's activations within
    ``device_memory`` (at most ``MAX_BATCH``, or ``MAX_GPU_BATCH`` on a GPU, at least 1);
    on a CPU, one batch's activations within ``CPU_BATCH_BYTES``."""
    if requested:
        return requested
    per_item = item_bytes(card)
    batch = budget // (max(IN_FLIGHT, engines) * per_item)
    if device_memory:
        batch = min(batch, MAX_GPU_BATCH, device_memory // per_item)
    else:
        batch = min(batch, MAX_BATCH, CPU_BATCH_BYTES // per_item)
    return int(max(1, batch))


#: ``--decode``: auto (on the GPU where the torch engine runs on CUDA), cpu, gpu (required).
DECODES = ("auto", "cpu", "gpu")


def gpu_decoded(decode: str, cards: Mapping[str, ModelCard], engines: Mapping[str, str]
                ) -> tuple[str, ...]:
    """The models whose JPEGs are decoded on the torch engine's device (``--decode``),
    decided by the driver before any input is read.

    ``auto``: the image models on the torch engine, where PyTorch runs on CUDA and
    ``sources.gpu_decode`` reproduces the card's preprocessing. ``cpu``: none. ``gpu``:
    the same, required: an AstrocatError says what to change where the engine is not
    torch on CUDA, or an image model's preprocessing is not reproduced there. With
    ``ASTROCAT_TORCH_DEVICE=cpu`` (the torch engine kept on the CPU) ``gpu`` is accepted
    and runs the same path on the CPU (tests); ``auto`` then decodes on the CPU as ever.
    Imports torch only where the torch engine is asked for (and CUDA may be there)."""
    if decode not in DECODES:
        raise AstrocatError(f"unknown --decode '{decode}' (choose from {', '.join(DECODES)})")
    if decode == "cpu":
        return ()
    torch_images = [c for n, c in cards.items()
                    if c.input.kind == Kind.RGB_IMAGE and engines.get(n) == "torch"]
    if not torch_images:
        if decode == "gpu":
            used = ", ".join(sorted(set(engines.values()))) or "none"
            raise AstrocatError(
                f"--decode gpu decodes JPEGs with nvJPEG for the torch engine, and this run's "
                f"image models run on {used}: add --engine torch (pip install "
                "'astrocat[torch]'), or use --decode auto")
        return ()
    from astrocat.engines.base import wants_gpu
    from astrocat.engines.torch import DEVICE_ENV, device_override, device_type

    forced_cpu = device_override() == "cpu"
    if forced_cpu or not wants_gpu("torch") or device_type() != "cuda":
        if decode == "gpu" and not forced_cpu:
            raise AstrocatError(
                "--decode gpu needs the torch engine on a CUDA GPU, and PyTorch sees none "
                "(torch.cuda.is_available() is False); use --decode auto or cpu (or set "
                f"{DEVICE_ENV}=cpu to run the GPU decoding path on the CPU, for testing)")
        if decode == "auto":
            return ()
    from astrocat.sources.gpu_decode import unsupported

    names = []
    for card in torch_images:
        why = unsupported(card.input)
        if why is None:
            names.append(card.name)
        elif decode == "gpu":
            raise AstrocatError(f"--decode gpu cannot decode model '{card.name}''s inputs on "
                                f"the GPU: {why}; use --decode auto or cpu")
    return tuple(names)


@dataclass(frozen=True)
class Jpegs:
    """A batch of JPEG bytes for an engine thread to decode and prepare on its engine's
    device (``sources.gpu_decode``) and run there."""

    datas: tuple[bytes, ...]


@dataclass
class Decoded:
    """A :class:`Jpegs` batch's result: the catalog columns of the JPEGs that decoded (at
    positions ``ok`` of the batch), and the decoder's words for each of the others."""

    columns: dict[str, np.ndarray]
    ok: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)


def _columns(columns: BatchColumns, model: Engine, x) -> dict[str, np.ndarray] | Decoded:
    """A batch's columns; a :class:`Jpegs` batch decoded on the engine's device first."""
    if not isinstance(x, Jpegs):
        return columns(model, x)
    from astrocat.sources import gpu_decode

    batch, ok, errors = gpu_decode.decode_and_prepare_each(x.datas, columns.card.input,
                                                           model.device)
    return Decoded(columns(model, batch) if ok else {}, np.asarray(ok, np.int64), errors)


#: Queued to an engine thread to end it.
_CLOSED = cf.Future()


class Engines:
    """``n`` instances of one model's engine, each opened and used only in its own thread,
    taking batches from one queue; ``submit`` queues a prepared batch, whose future gives
    the batch's catalog columns (``trust.BatchColumns``), or a :class:`Jpegs` batch, whose
    future gives a :class:`Decoded`."""

    def __init__(self, card: ModelCard, engine: str, n: int, intra_op: int,
                 device: int) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._ready = [cf.Future() for _ in range(max(1, n))]
        self._threads = [threading.Thread(target=self._run, daemon=True,
                                          args=(card, engine, intra_op, device, ready),
                                          name=f"astrocat-engine-{card.name}-{k}")
                         for k, ready in enumerate(self._ready)]
        self._closed = False
        for thread in self._threads:
            thread.start()

    def _run(self, card: ModelCard, engine: str, intra_op: int, device: int,
             ready: cf.Future) -> None:
        try:
            model: Engine = open_engine(card, engine, intra_op, device)
            columns = BatchColumns(card)
        except BaseException as exc:  # noqa: BLE001 - reported to every batch submitted
            ready.set_exception(exc)
            return
        ready.set_result(model)
        while True:
            x, fut = self._jobs.get()
            if fut is _CLOSED:
                return
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(_columns(columns, model, x))
                except BaseException as exc:  # noqa: BLE001 - the batch's own failure
                    fut.set_exception(exc)

    @property
    def failed(self) -> bool:
        """An instance could not be opened (the next use tries again)."""
        return any(r.done() and r.exception() is not None for r in self._ready)

    def submit(self, x: np.ndarray | Jpegs) -> cf.Future:
        if self._closed:  # a task of a stopping run: no thread would ever take it
            raise EnginesClosed("this process's engines were closed: the run is stopping")
        for ready in self._ready:
            ready.result()  # raises if an instance could not be opened
        fut: cf.Future = cf.Future()
        self._jobs.put((x, fut))
        return fut

    def close(self, wait: bool = False) -> None:
        """Let the threads end once the batches queued are done (their instances are
        dropped with them); ``wait``: until they have."""
        self._closed = True
        for _ in self._ready:
            self._jobs.put((None, _CLOSED))
        if wait:
            for thread in self._threads:
                thread.join(timeout=30)


class EnginesClosed(RuntimeError):
    """A batch submitted after its engines were closed (its run is stopping)."""


_ENGINES: dict[tuple, Engines] = {}
_POOL: list[cf.ThreadPoolExecutor] = []
_LOCK = threading.Lock()


def engine(card: ModelCard, name: str, feed: Feed) -> Engines:
    """This process's engines for ``card`` (per model, engine, threads and device)."""
    key = (card.fingerprint, card.tta, card.reference, name, feed.engines, feed.intra_op,
           feed.device)
    with _LOCK:
        if key not in _ENGINES or _ENGINES[key].failed:
            if key in _ENGINES:
                _ENGINES.pop(key).close()
            _ENGINES[key] = Engines(card, name, feed.engines, feed.intra_op, feed.device)
        return _ENGINES[key]


def decoders(n: int) -> cf.ThreadPoolExecutor:
    """This process's decoder pool (``n`` threads, made once)."""
    with _LOCK:
        if not _POOL or _POOL[0]._max_workers != n:  # noqa: SLF001 - resize on a new feed
            if _POOL:
                _POOL.pop().shutdown(wait=False)
            _POOL.append(cf.ThreadPoolExecutor(max(1, n), thread_name_prefix="astrocat-decode"))
        return _POOL[0]


def reset(wait: bool = False) -> None:
    """Close this process's engines (``wait``: until their threads have ended)."""
    with _LOCK:
        closing = _take_engines()
    for engines in closing:
        engines.close(wait)


def _take_engines() -> list[Engines]:
    closing = list(_ENGINES.values())
    _ENGINES.clear()
    return closing


_ACTIVE_RUNS = [0]


@contextlib.contextmanager
def partitions_in_flight() -> Iterator[None]:
    """Around a run's partitions: when the last run of this process in flight has all its
    partitions back, or is interrupted, this process's engines are closed, and their
    threads waited for. Their ONNX Runtime arenas are most of an in-process run's memory
    (210 of 450 MiB for gz2-cnn on two cores), to which publishing the catalog would add;
    and a process must not exit while an engine is mid-batch (ONNX Runtime aborts the
    process when its state is torn down under a running session). The next run opens
    them again (0.2 s per engine); a task of an interrupted run still unwinding gets
    :class:`EnginesClosed` for a new batch."""
    with _LOCK:
        _ACTIVE_RUNS[0] += 1
    try:
        yield
    finally:
        with _LOCK:  # taken under the lock: a run starting now opens engines of its own
            _ACTIVE_RUNS[0] -= 1
            closing = _take_engines() if _ACTIVE_RUNS[0] == 0 else []
        for engines in closing:
            engines.close(wait=True)
