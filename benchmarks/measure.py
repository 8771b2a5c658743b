"""The workloads the harness times, each run in a fresh process:

    python -m benchmarks.measure TASK [options]   # prints one JSON line

* ``seed-images`` / ``seed-spectra``: the studies' way (Keras ``predict``; PIL open ->
  crop -> resize -> numpy in a Python generator; whole-table load + min-max).
* ``components-images`` / ``components-spectra`` / ``components-fits``: the cost of each
  component alone (decode at the needed scale, the ONNX model alone, readers compared).
* ``interleaved``: the same components done in turn by one process per core, each on its
  own share of the files (``components-*`` start them): the limit without a GIL, Dask or
  Parquet, but with decoding and the model sharing each core's caches.
* ``profile``: one stage's partitions through ``astrocat.pipeline.worker.run_partition``
  in this process, with each step timed (read/decode, preprocess, model, Arrow, Parquet).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from astrocat.kinds import Kind


def _card(kind: Kind):
    from astrocat.models import zoo

    card = zoo.default_for(kind)
    if card is None:
        raise SystemExit(f"no bundled model for {kind.value}: is the zoo complete?")
    return card


#: The input kind of each benchmark stage.
STAGE_KINDS = {"images": Kind.RGB_IMAGE, "spectra": Kind.SPECTRUM, "fits": Kind.MONO_IMAGE}


def stage_card(stage: str):
    """The bundled model ``astrocat infer`` runs on the stage's inputs."""
    return _card(STAGE_KINDS[stage])


def _paths(list_spec: str, n: int | None = None) -> list[str]:
    lines = Path(list_spec.lstrip("@")).read_text().split()
    return lines[:n] if n else lines


def _per_item(fn, items, passes: int = 3, min_seconds: float = 0.0) -> float:
    """Best (least disturbed) seconds per item over ``passes`` passes through ``items``."""
    best = math.inf
    for _ in range(passes):
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, time.perf_counter() - t0)
    return best / max(1, len(items))


def _model_per_item(engine, x: np.ndarray, batch: int, min_seconds: float = 1.0,
                    passes: int = 3) -> float:
    """Seconds per item of ``engine.predict`` alone on preprocessed ``x`` in ``batch``es:
    best of ``passes`` passes, each repeating ``x`` until it lasts ``min_seconds``."""
    xs = x
    while len(xs) < batch:
        xs = np.concatenate([xs, x])
    engine.predict(xs[:batch])  # warm-up (allocations, kernel choice)
    t0 = time.perf_counter()
    engine.predict(xs[:batch])
    one = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, math.ceil(min_seconds / one))
    best = math.inf
    for _ in range(passes):
        t0 = time.perf_counter()
        for _ in range(reps):
            engine.predict(xs[:batch])
        best = min(best, time.perf_counter() - t0)
    return best / (reps * batch)


def _fastest_model_per_item(engine, card, x: np.ndarray, min_seconds: float,
                            batch: int | None = None) -> tuple[float, int, dict[str, float]]:
    """The model's per-item time at its fastest batch among the one ``astrocat infer``
    chooses here (``feed.choose_batch``) and 16, 32, 128 (or only ``batch`` if given):
    the limit is the machine's best, whichever batch the pipeline happens to pick.
    Returns (seconds per item, that batch, seconds per item by batch)."""
    batches = [batch] if batch else sorted({_pipeline_batch(card), 16, 32, 128})
    by = {str(b): _model_per_item(engine, x, b, min_seconds) for b in batches}
    best = min(by, key=by.get)
    return by[best], int(best), by


def _model_together_per_item(card, x: np.ndarray, batch: int, cores: int,
                             min_seconds: float = 1.0) -> float:
    """Wall seconds per item with one single-threaded engine per core all running at once
    (as ``astrocat infer`` runs them): the component limit assumes each core is as fast
    as one alone; shared caches, memory bandwidth or SMT siblings may say otherwise."""
    import threading

    from astrocat.engines.onnx import OnnxRuntimeEngine

    xs = x
    while len(xs) < batch:
        xs = np.concatenate([xs, x])
    xs = xs[:batch]
    engines = [OnnxRuntimeEngine(card, threads=1) for _ in range(cores)]
    for e in engines:
        e.predict(xs)
    t0 = time.perf_counter()
    engines[0].predict(xs)
    reps = max(2, math.ceil(min_seconds / max(time.perf_counter() - t0, 1e-6)))
    best = math.inf
    for _ in range(3):
        threads = [threading.Thread(target=lambda e=e: [e.predict(xs) for _ in range(reps)])
                   for e in engines]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return best / (reps * batch * cores)


def macs_per_item(onnx_path) -> float | None:
    """Multiply-accumulates of one item through the ONNX graph's Conv, MatMul and Gemm
    nodes (shapes by ONNX shape inference at batch 1); None without the onnx package."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(str(onnx_path))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w, out = shapes.get(node.input[1]), shapes.get(node.output[0])
            if w and out:
                macs += math.prod(out) * math.prod(w[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if a and out:
                trans_a = any(at.name == "transA" and at.i for at in node.attribute)
                k = a[-2] if trans_a else a[-1]
                macs += math.prod(out) * k
    return float(macs)


def _cores() -> int:
    from astrocat.pipeline.cluster import machine_cores

    return machine_cores()


# ---------------------------------------------------------------- seed-style pipelines


def seed_decode(path: str, size: int, crop_fraction: float) -> np.ndarray:
    """Seed 001's reading: PIL open -> crop the centre -> resize -> numpy (no draft)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = round(crop_fraction * min(w, h))
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size))
        return np.asarray(im, dtype=np.float32) / 255.0


def _keras_over_files(model, generator, n: int, batch: int, t_load: float,
                      name: str) -> dict:
    """The studies' Keras ``predict`` over a generator of batches, timed after a warm-up
    batch (graph tracing is not charged to the baseline)."""
    model.predict(next(generator())[0], verbose=0)
    t0 = time.perf_counter()
    y = model.predict(generator(), steps=math.ceil(n / batch), verbose=0)
    seconds = time.perf_counter() - t0
    assert len(y) == n, (len(y), n)
    return {"n": n, "seconds": seconds, "rate": n / seconds, "batch": batch,
            "model_load_seconds": t_load, "model": name}


def seed_images(args) -> dict:
    from astrocat.engines.tf import load_keras

    card = _card(Kind.RGB_IMAGE)
    paths = _paths(args.list, args.n)
    size, crop = card.input.shape[0], card.input.crop_fraction
    t_load = time.perf_counter()
    model = load_keras(card.weights("keras"))
    t_load = time.perf_counter() - t_load
    batch = args.batch

    def generator():
        for b in range(0, len(paths), batch):
            yield (np.stack([seed_decode(p, size, crop) for p in paths[b : b + batch]]),)

    return _keras_over_files(model, generator, len(paths), batch, t_load, card.name)


def seed_fits(args) -> dict:
    """Seed 004's reading: astropy ``fits.getdata`` per cut-out, standardise with the
    training mean and sigma, Keras ``predict`` over a generator of batches."""
    import warnings

    from astropy.io import fits

    from astrocat.engines.tf import load_keras

    card = _card(Kind.MONO_IMAGE)
    paths = _paths(args.list, args.n)
    h, w = card.input.shape[0], card.input.shape[1]
    mean, std = float(card.input.mean), float(card.input.std)
    t_load = time.perf_counter()
    model = load_keras(card.weights("keras"))
    t_load = time.perf_counter() - t_load
    batch = args.batch

    def read(p: str) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asarray(fits.getdata(p), np.float32)
        top, left = (data.shape[0] - h) // 2, (data.shape[1] - w) // 2
        return ((data[top:top + h, left:left + w] - mean) / std)[..., None]

    def generator():
        for b in range(0, len(paths), batch):
            yield (np.stack([read(p) for p in paths[b : b + batch]]),)

    return _keras_over_files(model, generator, len(paths), batch, t_load, card.name)


def seed_spectra(args) -> dict:
    from astrocat.engines.tf import load_keras

    card = _card(Kind.SPECTRUM)
    t_load = time.perf_counter()
    model = load_keras(card.weights("keras"))
    t_load = time.perf_counter() - t_load
    shape = tuple(card.input.shape)
    model.predict(np.zeros((args.batch, *shape), np.float32), batch_size=args.batch,
                  verbose=0)  # warm-up: tracing is not charged to the baseline
    t0 = time.perf_counter()
    table = _load_table(args.table, args.n)  # the whole (first n rows), as the studies did
    col = table.column("flux").combine_chunks()
    flux = col.flatten().to_numpy().reshape(len(table), -1).astype(np.float32)
    t_read = time.perf_counter() - t0
    lo = flux.min(axis=1, keepdims=True)
    x = (flux - lo) / (flux.max(axis=1, keepdims=True) - lo)  # min-max per spectrum
    y = model.predict(x.reshape((len(x), *shape)), batch_size=args.batch, verbose=0)
    seconds = time.perf_counter() - t0
    assert len(y) == len(table)
    return {"n": len(table), "seconds": seconds, "rate": len(table) / seconds,
            "read_seconds": t_read, "batch": args.batch, "model_load_seconds": t_load,
            "model": card.name}


def _load_table(path: str, n: int | None):
    """The whole table, or the row groups holding its first ``n`` rows, then those rows."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if not n or n >= pf.metadata.num_rows:
        return pq.read_table(path)
    groups, rows = [], 0
    while rows < n:
        rows += pf.metadata.row_group(len(groups)).num_rows
        groups.append(len(groups))
    return pf.read_row_groups(groups).slice(0, n)


# ---------------------------------------------------------------- component limits


def components_images(args) -> dict:
    from PIL import Image

    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.kernels.preprocess import prepare
    from astrocat.sources import readers
    from astrocat.sources.describe import describe

    card = _card(Kind.RGB_IMAGE)
    size, crop = card.input.shape[0], card.input.crop_fraction
    paths = _paths(args.list, args.sample)
    root = Path(paths[0]).parent
    t_describe = _per_item(lambda p: describe(Path(p), root), paths)

    def header_only(p):
        with Image.open(p) as im:
            return im.size

    t_header = _per_item(header_only, paths)
    t_decode = _per_item(lambda p: readers.read_rgb(p, size, crop), paths)
    t_seed_decode = _per_item(lambda p: seed_decode(p, size, crop), paths)
    raw = np.stack([readers.read_rgb(p, size, crop) for p in paths])
    t_prep = _per_item(lambda b: prepare(b, card.input), [raw], passes=5) / len(raw)
    x = prepare(raw, card.input)
    t_model, batch, by_batch = _fastest_model_per_item(
        OnnxRuntimeEngine(card, threads=1), card, x, args.min_seconds, args.batch)
    cores = _cores()
    # the work no pipeline can skip: describe (what is it), decode, prepare, the model
    each = t_describe + t_decode + t_prep
    return {
        "model": card.name, "sample": len(paths), "cores": cores, "batch": batch,
        "model_s_by_batch": by_batch, "pipeline_batch": _pipeline_batch(card),
        "macs_per_item": macs_per_item(card.weights("onnx")),
        "describe_header_s": t_header,
        "describe_s": t_describe, "decode_s": t_decode, "seed_decode_s": t_seed_decode,
        "preprocess_s": t_prep, "model_s": t_model,
        "model_together_s": _model_together_per_item(card, x, batch, cores,
                                                      args.min_seconds),
        "limit_rate": cores / (each + t_model),
        **_int8(card, x, batch, args.min_seconds, cores, each),
        **_interleaved_rate("images", paths, batch, cores, 4 * args.min_seconds),
    }


def _pipeline_batch(card) -> int:
    """The batch ``astrocat infer`` chooses for ``card`` on a CPU (its memory cap binds)."""
    from astrocat.pipeline import feed

    return feed.choose_batch(card, 1 << 40)


def _int8(card, x: np.ndarray, batch: int, min_seconds: float, cores: int, each: float
          ) -> dict:
    """The same limit with the model's INT8 variant, when one passed its gates."""
    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.models.zoo import variant

    v = variant(card, "int8")
    if v is None:
        return {}
    t = _model_per_item(OnnxRuntimeEngine(v, threads=1), x, batch, min_seconds)
    return {"int8_model": v.name, "int8_model_s": t, "int8_limit_rate": cores / (each + t)}


def components_spectra(args) -> dict:
    import pyarrow.parquet as pq

    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.kernels.preprocess import prepare
    from astrocat.sources import readers, tables

    card = _card(Kind.SPECTRUM)
    pf = pq.ParquetFile(args.table)
    n = min(args.sample, pf.metadata.num_rows)
    batch = next(pf.iter_batches(batch_size=n, columns=["flux"]))
    flux = batch.column(0).flatten().to_numpy().reshape(batch.num_rows, -1).astype(np.float32)
    x = prepare(flux, card.input)
    cores = _cores()
    rates = {}
    engine_all = OnnxRuntimeEngine(card, threads=cores)
    for b in (128, 1024):
        rates[b] = 1.0 / _model_per_item(engine_all, x, b, args.min_seconds)
    t_model_1, batch_1, by_batch = _fastest_model_per_item(OnnxRuntimeEngine(card, threads=1),
                                                           card, x, args.min_seconds)
    # reading rows [start, stop) as a worker does, sequentially through the table
    info = readers.scan_table(args.table, "parquet", None)
    chunk = 256

    def read_all(_):
        tables._CURSORS = tables._CursorCache()  # start cold each pass
        for s in range(0, n, chunk):
            readers.read_spectra(args.table, "parquet", None, s, min(s + chunk, n), info)

    t_read = _per_item(read_all, [None]) / n
    t_prep = _per_item(lambda f: prepare(f, card.input), [flux[:chunk]], passes=20) / chunk
    best_batch = max(rates, key=rates.get)
    return {
        "model": card.name, "sample": n, "cores": cores,
        "macs_per_item": macs_per_item(card.weights("onnx")),
        "model_only_rate": rates[best_batch], "model_only_batch": best_batch,
        "rate_by_batch": {str(k): v for k, v in rates.items()},
        "model_1thread_s": t_model_1, "batch": batch_1, "model_s_by_batch": by_batch,
        "pipeline_batch": _pipeline_batch(card), "read_s": t_read, "preprocess_s": t_prep,
        "limit_rate": cores / (t_read + t_prep + t_model_1),
        **_int8(card, x, batch_1, args.min_seconds, cores, t_read + t_prep),
    }


def components_fits(args) -> dict:
    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.kernels.preprocess import centre_crop_plane, prepare
    from astrocat.sources import fitsfiles, readers
    from astrocat.sources.describe import describe

    card = _card(Kind.MONO_IMAGE)
    paths = _paths(args.list, args.sample)
    root = Path(paths[0]).parent
    unit = describe(Path(paths[0]), root)
    t_describe = _per_item(lambda p: describe(Path(p), root), paths)
    ours = "astrocat read_plane (in-memory layout or fitsio, plain-TAN centre, astropy fallback)"
    readers_s = {
        ours: _per_item(lambda p: readers.read_plane(p, unit.fmt, unit.hdu), paths),
        "astropy reference (memmap + astropy WCS centre)": _per_item(
            lambda p: fitsfiles.astropy_plane(p, unit.hdu), paths),
    }
    same = all(np.array_equal(readers.read_plane(p, unit.fmt, unit.hdu).data,
                              fitsfiles.astropy_plane(p, unit.hdu).data) for p in paths)
    h, w = card.input.image_size
    raw = np.stack([centre_crop_plane(readers.read_plane(p, unit.fmt, unit.hdu).data, h, w)
                    for p in paths[: min(len(paths), 128)]])
    x = prepare(raw, card.input)
    t_model, batch, by_batch = _fastest_model_per_item(
        OnnxRuntimeEngine(card, threads=1), card, x, args.min_seconds, args.batch)
    cores = _cores()
    t_prep = _per_item(lambda b: prepare(b, card.input), [raw], passes=5) / len(raw)
    each = t_describe + readers_s[ours] + t_prep
    return {
        "model": card.name, "sample": len(paths), "cores": cores, "describe_s": t_describe,
        "macs_per_item": macs_per_item(card.weights("onnx")),
        "readers_s": readers_s, "fitsio_matches_astropy": same, "model_s": t_model,
        "batch": batch, "model_s_by_batch": by_batch, "pipeline_batch": _pipeline_batch(card),
        "read_s": readers_s[ours], "preprocess_s": t_prep,
        "model_together_s": _model_together_per_item(card, x, batch, cores,
                                                      args.min_seconds),
        "limit_rate": cores / (each + t_model),
        **_int8(card, x, batch, args.min_seconds, cores, each),
        **_interleaved_rate("fits", paths, batch, cores, 4 * args.min_seconds),
    }


# ---------------------------------------------------------------- interleaved components


def _interleaved_step(stage: str):
    """(card, a function from a batch of paths to the model's outputs) doing exactly the
    component limit's work in turn on this core: describe, read, prepare, the model."""
    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.kernels.preprocess import prepare
    from astrocat.pipeline.worker import _read_item
    from astrocat.sources.describe import describe

    card = stage_card(stage)
    spec, engine = card.input, OnnxRuntimeEngine(card, threads=1)

    def step(paths: list[str]) -> np.ndarray:
        root = Path(paths[0]).parent
        raw = [_read_item(describe(Path(p), root), card)[0] for p in paths]  # as a worker
        return engine.predict(prepare(np.stack(raw), spec))

    return card, step


def interleaved(args) -> dict:
    """One core's share: from ``--start-at`` (an epoch time, so that every process's
    imports are done) for ``--seconds``, batches of this process's files through the
    components in turn; items per second of that loop."""
    timers = _step_clock() if getattr(args, "cpu_per_step", False) else None
    card, step = _interleaved_step(args.stage)
    paths = _paths(args.list)
    batches = [paths[i:i + args.batch] for i in range(0, len(paths), args.batch)]
    step(batches[0])  # warm-up: the engine's first run, the file cache
    time.sleep(max(0.0, args.start_at - time.time()))
    if timers:
        timers.reset()
    from benchmarks.harness import switches_between

    before = resource.getrusage(resource.RUSAGE_SELF)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        for b in batches:
            step(b)
            n += len(b)
    seconds = time.perf_counter() - t0
    voluntary, involuntary = switches_between(before, resource.getrusage(resource.RUSAGE_SELF))
    return {"n": n, "seconds": seconds, "rate": n / seconds, "model": card.name,
            "context_switches": voluntary + involuntary, "involuntary_switches": involuntary,
            **({"cpu_per_step": _per_item_ms(timers)} if timers else {})}


def _interleaved_rate(stage: str, paths: list[str], batch: int, cores: int,
                      seconds: float, cpu_per_step: bool = False) -> dict:
    """Items per second of ``cores`` processes, each doing the components in turn on its
    own share of ``paths``, all at once (``interleaved``)."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        start_at = time.time() + 8.0  # after every process's imports and engine load
        for k in range(cores):
            share = Path(tmp) / f"share-{k}.txt"
            share.write_text("\n".join(paths[k::cores]))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks.measure", "interleaved", "--stage", stage,
                 "--list", str(share), "--batch", str(batch), "--seconds", str(seconds),
                 "--start-at", str(start_at), *(["--cpu-per-step"] if cpu_per_step else [])],
                stdout=subprocess.PIPE, text=True))
        got = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    looped = max(1, sum(g["n"] for g in got))
    out = {"interleaved_rate": sum(g["rate"] for g in got), "interleaved_batch": batch,
           "interleaved_processes": got,
           "switches_per_item": sum(g["context_switches"] for g in got) / looped,
           "involuntary_per_item": sum(g["involuntary_switches"] for g in got) / looped}
    if cpu_per_step:  # every process's steps together, per item
        items = sum(g["cpu_per_step"]["items"] for g in got)
        out["cpu_per_step"] = {"items": items, "ms_per_item": {
            k: sum(g["cpu_per_step"]["ms_per_item"][k] * g["cpu_per_step"]["items"]
                   for g in got) / max(1, items) for k in STEPS}}
    return out


def interleaved_bound(args) -> dict:
    """The interleaved bound alone (``_interleaved_rate`` at the batch ``astrocat infer``
    chooses), for a measurement right after an end-to-end run, in its minute."""
    card = stage_card(args.stage)
    batch = args.batch or _pipeline_batch(card)
    return _interleaved_rate(args.stage, _paths(args.list, args.sample), batch, _cores(),
                             args.seconds, getattr(args, "cpu_per_step", False))


# ---------------------------------------------------------------- in-process profile

CATEGORIES = ("read/decode", "preprocess", "model", "out-of-domain statistics",
              "Arrow table", "Parquet write")


class _Timers:
    """Seconds (by ``clock``) and calls of wrapped functions, by category."""

    def __init__(self, clock=time.perf_counter, categories=CATEGORIES) -> None:
        self.clock = clock
        self.seconds = dict.fromkeys(categories, 0.0)
        self.calls = dict.fromkeys(categories, 0)
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, category: str) -> None:
        orig = getattr(owner, name)
        seconds, calls, clock = self.seconds, self.calls, self.clock

        def timed(*a, **k):
            t0 = clock()
            try:
                return orig(*a, **k)
            finally:
                seconds[category] += clock() - t0
                calls[category] += 1

        setattr(owner, name, timed)
        self._undo.append((owner, name, orig))

    def reset(self) -> None:
        for k in self.seconds:
            self.seconds[k], self.calls[k] = 0.0, 0

    def undo(self) -> None:
        for owner, name, orig in reversed(self._undo):
            setattr(owner, name, orig)
        self._undo.clear()


#: The steps ``cpu-per-step`` times, inside a run and inside the interleaved bound alike.
STEPS = ("describe", "read/decode", "preprocess", "model", "out-of-domain statistics",
         "part (rows, Arrow, Parquet)")


def _step_clock() -> _Timers:
    """The thread CPU time of each step, on whichever thread runs it (decoder, engine or
    task thread in a run; the one loop of the bound): the same functions are wrapped for
    both, so the two compare step by step. ``calls['describe']`` counts the items."""
    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.kernels import ood, preprocess
    from astrocat.models.reference import Reference
    from astrocat.pipeline import worker
    from astrocat.sources import describe as describing

    timers = _Timers(clock=time.thread_time, categories=STEPS)
    for owner in (worker, describing):  # the worker's name for it, and the bound's import
        timers.wrap(owner, "describe", "describe")
    timers.wrap(worker, "_read_item", "read/decode")
    for owner in (worker, preprocess):
        timers.wrap(owner, "prepare", "preprocess")
    timers.wrap(OnnxRuntimeEngine, "run", "model")
    timers.wrap(ood, "input_statistics", "out-of-domain statistics")
    timers.wrap(Reference, "distance", "out-of-domain statistics")
    timers.wrap(worker, "_write", "part (rows, Arrow, Parquet)")
    return timers


def _per_item_ms(timers: _Timers) -> dict:
    n = max(1, timers.calls["describe"])
    return {"items": timers.calls["describe"],
            "ms_per_item": {k: 1e3 * v / n for k, v in timers.seconds.items()}}


def cpu_per_step(args) -> dict:
    """Where a whole ``astrocat infer`` run's CPU goes, step by step, per item: the first
    ``--sample`` files of ``--list`` through ``pipeline.run.infer`` in this process (the
    in-process execution the CLI uses on a machine like this one), each step's thread CPU
    time added up over every thread (``_step_clock``). The process's CPU beyond the steps
    is its imports, listing, engines' start, Python bookkeeping and publishing."""
    from astrocat.pipeline import run

    timers = _step_clock()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        listing = Path(tmp) / "inputs.txt"
        listing.write_text("\n".join(_paths(args.list, args.sample)))
        t0 = time.perf_counter()
        run.infer(run.InferOptions(input=f"@{listing}", out=Path(tmp) / "catalog.parquet",
                                   quiet=True))
        wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {**_per_item_ms(timers), "wall_s": wall,
            "process_cpu_s": usage.ru_utime + usage.ru_stime}


def profile(args) -> dict:
    from astrocat.catalog.layouts.file import commit
    from astrocat.engines.base import choose_engine
    from astrocat.engines.onnx import OnnxRuntimeEngine
    from astrocat.pipeline import feed, rows, worker
    from astrocat.pipeline.plan import plan_partitions
    from astrocat.pipeline.run import build_routing
    from astrocat.sources import readers, tables
    from astrocat.sources.describe import describe
    from astrocat.sources.discover import resolve_inputs

    routing = build_routing(None)
    root, files = resolve_inputs(args.input)
    files = list(files)
    t0 = time.perf_counter()
    units = [describe(p, root) for p in files]
    t_describe = time.perf_counter() - t0
    plan = list(plan_partitions(units, routing, args.partition_size))
    cards = {c.name: c for c in routing.values()}
    used = sorted({s.model for p in plan for s in p.slices if s.model})
    engines = {n: choose_engine("auto", cards[n]) for n in cards}
    order = tuple(dict.fromkeys(c.name for c in routing.values()))
    tmp = Path(tempfile.mkdtemp(prefix="astrocat-profile-", dir=args.work))
    job = worker.Job(cards=cards, engines=engines, parts_dir=str(tmp),
                     feed=feed.Feed(decoders=1, engines=1, batch_size=args.batch_size),
                     output_order=order, routing={k: c.name for k, c in routing.items()},
                     root=str(root))
    t0 = time.perf_counter()
    for n in used:
        feed.engine(cards[n], engines[n], job.feed).submit(
            np.zeros((1, *cards[n].input.shape), np.float32)).result()
    t_load = time.perf_counter() - t0
    warm, timed = (plan[:1], plan[1 : 1 + args.parts]) if len(plan) > 1 else (plan, plan)
    timers = _Timers()

    def one_pass(prof: cProfile.Profile | None = None) -> float:
        """Warm partitions first (model loaded, Parquet cursor where a sequential worker
        would have it), then the timed ones."""
        tables._CURSORS = tables._CursorCache()
        for p in warm:
            worker.run_partition(p, job)
        for k in timers.seconds:
            timers.seconds[k] = 0.0
        if prof:
            prof.enable()
        t0 = time.perf_counter()
        for p in timed:
            worker.run_partition(p, job)
        seconds = time.perf_counter() - t0
        if prof:
            prof.disable()
        return seconds

    for name in ("read_rgb", "read_plane", "read_spectra", "scan_table"):
        timers.wrap(readers, name, "read/decode")
    timers.wrap(worker, "prepare", "preprocess")
    from astrocat.kernels import fit as fit_kernel

    timers.wrap(fit_kernel, "centre_crop_plane", "preprocess")  # FITS planes to the model's size
    # the engine's own call (trust.BatchColumns calls run, which gives every head)
    timers.wrap(OnnxRuntimeEngine, "run", "model")
    from astrocat.kernels import ood
    from astrocat.models.reference import Reference

    timers.wrap(ood, "input_statistics", "out-of-domain statistics")
    timers.wrap(Reference, "distance", "out-of-domain statistics")
    timers.wrap(rows.Rows, "table", "Arrow table")
    timers.wrap(worker, "write_part", "Parquet write")
    total = one_pass()
    timers.undo()
    items = sum(p.n_items for p in timed)
    per_item = {k: v / items for k, v in timers.seconds.items()}
    # negative where the decoder and engine threads overlapped more than this took
    per_item["row bookkeeping, stacking, other (less overlap)"] = (total / items
                                                                - sum(per_item.values()))

    # the same partitions under cProfile, for the functions behind the categories
    prof = cProfile.Profile()
    one_pass(prof)
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    total_tt = sum(v[2] for v in stats.stats.values()) or 1.0
    for (file, line, fn), (_cc, nc, tt, _ct, _callers) in sorted(
            stats.stats.items(), key=lambda kv: -kv[1][2])[:12]:
        where = file.split("site-packages/")[-1].split("/main/")[-1]
        rows.append({"function": f"{fn} ({where}:{line})", "calls": nc,
                     "tottime_share": tt / total_tt, "tottime_ms_per_item": 1e3 * tt / items})

    # the driver's commit, on the parts just written
    parts = sorted(tmp.glob("part-*.parquet"))
    outputs = [o.name for n in used for o in cards[n].outputs]
    t0 = time.perf_counter()
    n_rows = commit(tmp / "catalog.parquet", parts, outputs, {"benchmark": True})
    t_commit = time.perf_counter() - t0
    return {
        "stage": args.stage, "files": len(files), "partitions": len(plan),
        "timed_partitions": len(timed), "items": items, "seconds": total,
        "per_item_s": per_item, "describe_per_file_s": t_describe / max(1, len(files)),
        "model_load_s": t_load, "commit_per_row_s": t_commit / max(1, n_rows),
        "cprofile_top": rows,
    }


# ---------------------------------------------------------------- the driver's commit


def commit_time(args) -> dict:
    """Time :func:`astrocat.catalog.writer.commit` again on a finished run's parts."""
    from astrocat.catalog.layouts.file import commit
    from astrocat.models.zoo import bundled

    parts_dir = Path(args.parts_dir)
    manifest = json.loads((parts_dir / "manifest.json").read_text())
    parts = [parts_dir / name for name in manifest["parts"]]
    provenance = {k: v for k, v in manifest.items()
                  if k not in ("catalog", "rows", "errors", "parts", "workers")}
    cards = bundled()
    outputs = [o.name for n in manifest["models"] for o in cards[n].outputs]
    out = Path(args.catalog).with_name("recommit-" + Path(args.catalog).name)
    t0 = time.perf_counter()
    rows = commit(out, parts, outputs, provenance)
    seconds = time.perf_counter() - t0
    out.unlink(missing_ok=True)
    return {"seconds": seconds, "rows": rows, "parts": len(parts)}


# ---------------------------------------------------------------- start-up breakdown

_IMPORT_DRIVER = "import astrocat.cli, astrocat.pipeline.run"
#: What the first partition imports (no pandas: ``catalog.columns`` builds the columns
#: from their buffers, where ``pa.array`` would import it).
_IMPORT_WORKER = "import astrocat.pipeline.worker, astrocat.engines.onnx, onnxruntime"
_CLUSTER = """
from astrocat.pipeline.cluster import dask_client
with dask_client(None, 2) as (client, info):
    client.run(lambda: 1)
    t_up = time.perf_counter() - t0
t_down = time.perf_counter() - t0 - t_up
print(json.dumps([t_up, t_down]))
"""


def _timed_python(code: str) -> float:
    """Seconds a fresh interpreter spends on ``code`` (its own clock, not the spawn)."""
    import subprocess

    prog = f"import json, time\nt0 = time.perf_counter()\n{code}\n"
    if "print(json.dumps" not in code:
        prog += "print(json.dumps(time.perf_counter() - t0))\n"
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def startup_breakdown(args) -> dict:
    """The fixed cost of a run, piece by piece, each in a fresh interpreter (best of 3)."""
    import subprocess

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare = min(bare, time.perf_counter() - t0)
    driver = min(_timed_python(_IMPORT_DRIVER) for _ in range(3))
    worker = min(_timed_python(_IMPORT_WORKER) for _ in range(3))
    cluster = min((_timed_python(_CLUSTER) for _ in range(2)), key=lambda t: t[0] + t[1])
    verify = min(_timed_python("from astrocat.models import zoo\n"
                               "from astrocat.pipeline.run import _verify\n"
                               "card = zoo.resolve('gz2-cnn')\n"
                               "t0 = time.perf_counter()\n_verify([card])")
                 for _ in range(3))
    threads = min(_timed_python("import dask, dask.threaded") for _ in range(3))
    return {"interpreter_s": bare, "driver_imports_s": driver, "worker_imports_s": worker,
            "cluster_up_s": cluster[0], "cluster_down_s": cluster[1],
            "dask_threaded_import_s": threads, "verify_card_s": verify,
            # since 0.5 a run of one partition runs it in the calling thread: no Dask
            "dask_in_small_run": False}


def startup_timeline(args) -> dict:
    """``astrocat.pipeline.run.infer`` with the driver in this process and a timestamp at
    each step: where the fixed cost of a small run goes, in order."""

    t0 = time.perf_counter()
    from astrocat.pipeline import run

    marks: list[tuple[str, float]] = [("driver imports (astrocat.pipeline.run)",
                                       time.perf_counter() - t0)]
    start = [0.0]

    def mark(name: str) -> None:
        now = time.perf_counter() - start[0]
        marks.append((name, now))

    def after(fn, name):
        def wrapped(*a, **k):
            out = fn(*a, **k)
            mark(name)
            return out
        return wrapped

    run.build_routing = after(run.build_routing, "model cards read (named ones verified)")
    run.list_inputs = after(run.list_inputs, "inputs listed and stat'ed (no file opened)")
    orig_plan = run.plan_partitions
    run.plan_partitions = after(lambda *a, **k: list(orig_plan(*a, **k)), "partitions planned")
    run.verify_used = after(run.verify_used, "cards the plan uses verified (sha256) and "
                            "checked against their graphs")
    orig_completed = run.LazyCluster.completed

    def completed(self, *a, **k):
        first = True
        for item in orig_completed(self, *a, **k):
            if first:
                mark(f"first partition back on {self.description} (model load, describe, "
                     "read, predict, part)")
                first = False
            yield item
        mark("last partition back")

    run.LazyCluster.completed = completed
    file_layout = run.layouts.module("file")
    file_layout.publish = after(file_layout.publish, "catalog published (file layout)")
    out = Path(args.work) / "timeline" / "catalog.parquet"
    import shutil

    shutil.rmtree(out.parent, ignore_errors=True)
    start[0] = time.perf_counter()
    marks = [(marks[0][0], marks[0][1])]
    start[0] -= marks[0][1]
    run.infer(run.InferOptions(input=args.input, out=out, quiet=True))
    mark("version sealed, cluster torn down, infer returned")
    shutil.rmtree(out.parent, ignore_errors=True)
    steps, prev = [], 0.0
    for name, at in marks:
        steps.append({"step": name, "at_s": at, "seconds": at - prev})
        prev = at
    return {"steps": steps, "total_s": prev}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.measure")
    sub = ap.add_subparsers(dest="task", required=True)
    p = sub.add_parser("seed-images")
    p.add_argument("--list", required=True)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--batch", type=int, default=128)
    p = sub.add_parser("seed-fits")
    p.add_argument("--list", required=True)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--batch", type=int, default=128)
    p = sub.add_parser("seed-spectra")
    p.add_argument("--table", required=True)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--batch", type=int, default=32)
    p = sub.add_parser("components-images")
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--list", required=True)
    p.add_argument("--sample", type=int, default=500)
    p.add_argument("--batch", type=int, default=None, help="default: the fastest batch")
    p = sub.add_parser("components-spectra")
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--table", required=True)
    p.add_argument("--sample", type=int, default=16384)
    p = sub.add_parser("components-fits")
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--list", required=True)
    p.add_argument("--sample", type=int, default=500)
    p.add_argument("--batch", type=int, default=None, help="default: the fastest batch")
    sub.add_parser("startup-breakdown")
    p = sub.add_parser("startup-timeline")
    p.add_argument("--input", required=True)
    p.add_argument("--work", required=True)
    p = sub.add_parser("commit")
    p.add_argument("--parts-dir", required=True)
    p.add_argument("--catalog", required=True)
    p = sub.add_parser("interleaved")
    p.add_argument("--stage", choices=("images", "fits"), required=True)
    p.add_argument("--list", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--cpu-per-step", action="store_true",
                   help="also the thread CPU time of each step per item")
    p = sub.add_parser("interleaved-bound")
    p.add_argument("--stage", choices=("images", "fits"), required=True)
    p.add_argument("--list", required=True)
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--batch", type=int, default=None, help="default: astrocat infer's")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--cpu-per-step", action="store_true",
                   help="also the thread CPU time of each step per item, all processes")
    p = sub.add_parser("cpu-per-step")
    p.add_argument("--list", required=True)
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--work", default=None)
    p = sub.add_parser("profile")
    p.add_argument("--stage", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--parts", type=int, default=2)
    p.add_argument("--partition-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--work", default=None)
    args = ap.parse_args(argv)
    fn = {"seed-images": seed_images, "seed-spectra": seed_spectra, "seed-fits": seed_fits,
          "components-images": components_images, "components-spectra": components_spectra,
          "components-fits": components_fits, "profile": profile,
          "startup-breakdown": startup_breakdown, "commit": commit_time,
          "interleaved": interleaved, "interleaved-bound": interleaved_bound,
          "startup-timeline": startup_timeline, "cpu-per-step": cpu_per_step}[args.task]
    result = fn(args)
    sys.stdout.flush()
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
