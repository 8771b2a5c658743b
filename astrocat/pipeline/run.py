"""The driver of ``astrocat infer``: plan, run partitions on Dask, commit the catalog.

The driver holds the plan (a small record per input file) and per-part statistics;
pixels, fluxes and catalog rows stay in the workers and in the Parquet parts.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import socket
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from astrocat import __version__
from astrocat.catalog.writer import commit, part_stats
from astrocat.engines.base import choose_engine
from astrocat.errors import AstrocatError
from astrocat.kinds import Kind
from astrocat.models import zoo
from astrocat.models.card import ModelCard
from astrocat.models.graph import check_graph
from astrocat.pipeline.cluster import dask_client
from astrocat.pipeline.plan import Partition, plan_partitions, result_key
from astrocat.pipeline.progress import RunProgress
from astrocat.pipeline.worker import (
    FAILURE_LOG,
    Job,
    log_failure,
    run_partition,
    write_failed_partition,
)
from astrocat.sources.describe import describe
from astrocat.sources.discover import resolve_inputs


@dataclass
class InferOptions:
    input: str
    out: Path
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
    routing = build_routing(opts.model)  # a bad --model fails before any walking
    root, files = resolve_inputs(opts.input, opts.exclude)
    cards = {c.name: c for c in routing.values()}
    engines = {name: choose_engine(opts.engine, card) for name, card in cards.items()}

    out = Path(opts.out).resolve()
    parts_dir = parts_dir_for(out)
    units = [describe(p, root) for p in files if not _own_output(Path(p), out, parts_dir)]
    if not units:
        raise AstrocatError(f"no input files found under {opts.input}")
    keys = {name: result_key(card, engines[name]) for name, card in cards.items()}
    plan = list(plan_partitions(units, routing, opts.partition_size, keys))
    del units
    parts_dir.mkdir(parents=True, exist_ok=True)
    part_path = {p.key: parts_dir / f"part-{p.key}.parquet" for p in plan}

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
    done_items = sum(s["n_rows"] for s in stats.values())
    done_errors = sum(s["n_errors"] for s in stats.values())
    order = tuple(dict.fromkeys(c.name for c in routing.values()))
    cluster_desc = "none (all parts reused)"
    failures: Counter = Counter()
    with RunProgress(total, enabled=not opts.quiet) as progress:
        progress.advance(done_items, done_errors)
        if todo:
            small = sum(p.n_items for p in todo) <= SMALL_RUN_ITEMS
            with dask_client(opts.scheduler, opts.workers, max_useful=len(todo),
                             in_process=small) as (client, info):
                job = Job(cards=cards, engines=engines, parts_dir=str(parts_dir),
                          threads=info.threads_per_engine, batch_size=opts.batch_size,
                          output_order=order)
                cluster_desc = info.description
                for p, result in _run_windowed(client, todo, job, 2 * info.n_workers + 2):
                    if isinstance(result, BaseException):  # the worker itself died
                        result = write_failed_partition(p, job, result,
                                                        log_failure(job, p, result))
                    stats[p.key] = result
                    if result.get("failure"):
                        failures[result["failure"]] += 1
                    progress.advance(result["n_rows"], result["n_errors"])

    used = [n for n in order if any(n in s["models"] for s in stats.values())]
    output_names = [o.name for n in used for o in cards[n].outputs]
    seconds = (dt.datetime.now(dt.UTC) - start).total_seconds()
    provenance = {
        "astrocat_version": __version__,
        "created_utc": start.isoformat(timespec="seconds"),
        "command": opts.command,
        "input_root": str(root),
        "host": socket.gethostname(),
        "engine_requested": opts.engine,
        "execution": cluster_desc,
        "models": {
            n: {"version": cards[n].version, "task": cards[n].task,
                "sha256": cards[n].fingerprint, "engine": engines[n]}
            for n in used
        },
    }
    rows = commit(out, [part_path[p.key] for p in plan], output_names, provenance)
    _prune(parts_dir, set(part_path.values()))
    n_errors = sum(s["n_errors"] for s in stats.values())
    (parts_dir / "manifest.json").write_text(json.dumps({
        **provenance, "catalog": str(out), "rows": rows, "errors": n_errors,
        "parts": [part_path[p.key].name for p in plan],
        "workers": sorted({s.get("worker", "") for s in stats.values()} - {""}),
    }, indent=1))
    return RunSummary(out, rows, n_errors, len(plan), n_reused, seconds,
                      {n: engines[n] for n in used}, dict(failures),
                      parts_dir / FAILURE_LOG if failures else None)


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


def _prune(parts_dir: Path, keep: set[Path]) -> None:
    """Drop parts no longer in the plan (inputs removed or models changed)."""
    for p in parts_dir.glob("part-*.parquet"):
        if p not in keep:
            p.unlink(missing_ok=True)
    for p in parts_dir.glob(".part-*.tmp-*"):
        p.unlink(missing_ok=True)
