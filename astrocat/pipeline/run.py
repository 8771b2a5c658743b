"""The driver of ``astrocat infer``: plan, run partitions on Dask, commit the catalog.

The driver holds the plan (a small record per input file) and per-part statistics;
pixels, fluxes and catalog rows stay in the workers and in the Parquet parts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import socket
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from astrocat import __version__
from astrocat.catalog import layouts
from astrocat.catalog.layouts import PublishContext, prepare
from astrocat.catalog.store import Store, point
from astrocat.catalog.writer import part_stats
from astrocat.engines.base import choose_engine
from astrocat.errors import AstrocatError
from astrocat.kinds import Kind
from astrocat.models import zoo
from astrocat.models.card import ModelCard
from astrocat.models.graph import check_graph
from astrocat.pipeline.cluster import LazyCluster
from astrocat.pipeline.plan import Partition, plan_partitions, result_key
from astrocat.pipeline.progress import RunProgress
from astrocat.pipeline.worker import (
    FAILURE_LOG,
    Job,
    log_failure,
    run_partition,
    write_failed_partition,
)
from astrocat.sources import positions
from astrocat.sources.describe import describe
from astrocat.sources.discover import resolve_inputs


@dataclass
class InferOptions:
    input: str
    out: Path
    layout: str = "file"  # file | dataset | hats
    positions: str | None = None  # a table of object_id -> ra/dec for inputs without any
    positions_id: str | None = None  # its ID column [default: found by name]
    layout_options: dict = field(default_factory=dict)  # sizes and thresholds (tests)
    model: str | None = None
    engine: str = "auto"
    scheduler: str | None = None
    workers: int | None = None
    partition_size: int = 256
    batch_size: int = 128
    exclude: tuple[str, ...] = ()
    quiet: bool = False
    command: str = field(default_factory=lambda: shlex.join(["astrocat", *sys.argv[1:]]))


@dataclass
class RunSummary:
    out: Path
    n_rows: int
    n_errors: int
    n_parts: int
    n_reused: int
    seconds: float
    by_model: dict[str, str]
    failures: dict[str, int] = field(default_factory=dict)  # cause -> partitions failed
    failure_log: Path | None = None
    published: dict = field(default_factory=dict)  # what the layout wrote
    positions: dict | None = None  # rows placed from --positions, and unmatched


#: Runs with at most this many items to compute use Dask's in-process cluster: spawning
#: worker processes costs more than they would save.
SMALL_RUN_ITEMS = 2048


def parts_dir_for(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def build_routing(model: str | None) -> dict[Kind, ModelCard]:
    """Kind -> model: bundled defaults, with ``--model`` taking every kind it can eat.

    Every card used is verified (weights sha256) and checked against its ONNX graph here,
    before a single input is read.
    """
    routing = {k: c for k in Kind if (c := zoo.default_for(k)) is not None}
    if model:
        card = zoo.resolve(model)
        for kind in Kind:
            if zoo.accepts(card, kind):
                routing[kind] = card
    for card in {c.name: c for c in routing.values()}.values():
        card.verify()
        check_graph(card)
    return routing


def infer(opts: InferOptions) -> RunSummary:
    start = dt.datetime.now(dt.UTC)
    if opts.partition_size < 1 or opts.batch_size < 1:
        raise AstrocatError("--partition-size and --batch-size must be at least 1")
    layout = layouts.module(opts.layout)  # an unknown layout fails first
    routing = build_routing(opts.model)  # a bad --model fails before any walking
    out = Path(os.path.abspath(opts.out))  # never resolved: it may be our own link
    store = Store(parts_dir_for(out))
    _check_out(out, store, opts.layout)
    placer = (positions.prepare(opts.positions, store.root, opts.positions_id)
              if opts.positions else None)  # a bad table fails before any input is read
    root, files = resolve_inputs(opts.input, opts.exclude)
    cards = {c.name: c for c in routing.values()}
    engines = {name: choose_engine(opts.engine, card) for name, card in cards.items()}

    units = [describe(p, root) for p in files if not _own_output(Path(p), out, store.root)]
    if not units:
        raise AstrocatError(f"no input files found under {opts.input}")
    keys = {name: result_key(card, engines[name]) for name, card in cards.items()}
    if placer is not None:  # positions change ra/dec: part of every result's identity
        keys = {name: f"{key}+{placer.sha}" for name, key in keys.items()}
    plan = list(plan_partitions(units, routing, opts.partition_size, keys))
    del units
    store.root.mkdir(parents=True, exist_ok=True)
    part_path = {p.key: store.part(p.key) for p in plan}

    todo: list[Partition] = []
    stats: dict[str, dict] = {}
    for p in plan:
        if part_path[p.key].is_file():
            try:
                found = part_stats(part_path[p.key])
            except Exception:  # noqa: BLE001 - an unreadable leftover is redone
                part_path[p.key].unlink(missing_ok=True)
            else:
                if not found.get("retry"):  # failed work is recomputed, never reused
                    stats[p.key] = found
                    continue
        todo.append(p)
    n_reused = len(stats)

    total = sum(p.n_items for p in plan)
    order = tuple(dict.fromkeys(c.name for c in routing.values()))
    failures: Counter = Counter()
    with contextlib.ExitStack() as stack, RunProgress(total, enabled=not opts.quiet) as progress:
        cluster = LazyCluster(stack, opts.scheduler, opts.workers)
        progress.advance(sum(s["n_rows"] for s in stats.values()),
                         sum(s["n_errors"] for s in stats.values()))
        if todo:
            client, info = cluster.get(len(todo), sum(p.n_items for p in todo) <= SMALL_RUN_ITEMS)
            job = Job(cards=cards, engines=engines, parts_dir=str(store.root),
                      threads=info.threads_per_engine, batch_size=opts.batch_size,
                      output_order=order, positions=placer)
            for p, result in _run_windowed(client, todo, job, 2 * info.n_workers + 2):
                if isinstance(result, BaseException):  # the worker itself died
                    result = write_failed_partition(p, job, result, log_failure(job, p, result))
                stats[p.key] = result
                if result.get("failure"):
                    failures[result["failure"]] += 1
                progress.advance(result["n_rows"], result["n_errors"])

        used = [n for n in order if any(n in s["models"] for s in stats.values())]
        provenance = {
            "astrocat_version": __version__,
            "created_utc": start.isoformat(timespec="seconds"),
            "command": opts.command,
            "input_root": str(root),
            "host": socket.gethostname(),
            "engine_requested": opts.engine,
            "execution": cluster.description,
            "layout": opts.layout,
            "models": {
                n: {"version": cards[n].version, "task": cards[n].task,
                    "sha256": cards[n].fingerprint, "engine": engines[n]}
                for n in used
            },
            **({"positions": {"table": placer.source, "sha256": placer.sha}}
               if placer else {}),
        }
        pub = prepare([part_path[p.key] for p in plan],
                      [o.name for n in used for o in cards[n].outputs], provenance)
        number, staged = store.staging()
        ctx = PublishContext(store, lambda: cluster.get(None, total <= SMALL_RUN_ITEMS)[0],
                             dict(opts.layout_options))
        published = layout.publish(pub, out if opts.layout == "file" else staged, ctx)

    n_errors = sum(s["n_errors"] for s in stats.values())
    placed = _sum_positions(stats.values()) if placer else None
    manifest = {
        **provenance, "version": number, "catalog": str(out), "rows": published["rows"],
        "errors": n_errors, "parts": [part_path[p.key].name for p in plan],
        "segments": published.pop("segments", []), "published": published,
        "positions_placed": placed,
        "workers": sorted({s.get("worker", "") for s in stats.values()} - {""}),
    }
    final = store.publish(number, staged, manifest)
    if opts.layout != "file":
        point(out, final)  # the output path moves to the new version in one rename
    store.prune_versions(keep=1)
    store.prune_parts(set(manifest["parts"]) | set(manifest["segments"]))
    (store.root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    seconds = (dt.datetime.now(dt.UTC) - start).total_seconds()
    return RunSummary(out, published["rows"], n_errors, len(plan), n_reused, seconds,
                      {n: engines[n] for n in used}, dict(failures),
                      store.root / FAILURE_LOG if failures else None, published, placed)


def _sum_positions(stats) -> dict[str, int]:
    got = [s.get("positions") or {} for s in stats]
    return {k: sum(g.get(k, 0) for g in got) for k in ("placed", "unmatched")}


def _check_out(out: Path, store: Store, layout: str) -> None:
    """Refuse to replace something at ``--out`` that this store did not publish."""
    if not os.path.lexists(out):
        return
    ours = out.is_symlink() and store.root.resolve() in out.resolve().parents
    if layout == "file" and (out.is_file() or ours):
        return
    if layout != "file" and (ours or out.is_file() and (store.root / "manifest.json").is_file()):
        return
    what = "a directory" if out.is_dir() else "a file"
    raise AstrocatError(f"--out {out} exists and is {what} that astrocat did not write as a "
                        f"{layout} catalog; choose another --out, or remove it")


def _own_output(path: Path, out: Path, parts_dir: Path) -> bool:
    """The catalog, its parts and temporaries are never inputs (``--out`` inside ``--input``)."""
    path = path.resolve()
    return (path == out or parts_dir in path.parents
            or path.name.startswith(f".{out.name}.tmp-"))


def _run_windowed(client, todo: list[Partition], job: Job, window: int):
    """Yield (partition, stats or exception) keeping at most ``window`` tasks in flight."""
    from distributed import as_completed

    pending = iter(todo)
    by_key = {}

    def submit(p: Partition):
        fut = client.submit(run_partition, p, job, key=f"astrocat-part-{p.key}", pure=False)
        by_key[fut.key] = p
        return fut

    first = [submit(p) for _, p in zip(range(window), pending, strict=False)]
    queue = as_completed(first, with_results=False)
    for fut in queue:
        p = by_key.pop(fut.key)
        try:
            yield p, fut.result()
        except Exception as exc:  # noqa: BLE001 - accounted for as error rows
            yield p, exc
        nxt = next(pending, None)
        if nxt is not None:
            queue.add(submit(nxt))
