"""The driver of ``astrocat infer``: plan, run partitions on Dask, commit the catalog.

The driver holds the plan (a small record per input file) and per-part statistics;
pixels, fluxes and catalog rows stay in the workers and in the Parquet parts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shlex
import socket
import stat
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from astrocat._version import __version__
from astrocat.catalog import layouts
from astrocat.catalog.layouts import PublishContext, prepare
from astrocat.catalog.lock import StoreLock
from astrocat.catalog.names import is_store, parts_dir_for
from astrocat.catalog.schema import catalog_output_columns
from astrocat.catalog.store import STORE_FILE, VERSIONS, Store, point
from astrocat.catalog.writer import part_stats
from astrocat.engines.base import choose_engine, wants_gpu
from astrocat.errors import AstrocatError
from astrocat.kernels.drift import import_test_in_background
from astrocat.kinds import PLANE_KINDS, Kind
from astrocat.models import zoo
from astrocat.models.card import ModelCard
from astrocat.models.graph import check_graph
from astrocat.pipeline import drift_report, libwarnings
from astrocat.pipeline.cluster import (
    ClusterSpec,
    LazyCluster,
    Stopped,
    feed_for,
    gpu_devices,
)
from astrocat.pipeline.feed import gpu_decoded, partitions_in_flight
from astrocat.pipeline.libwarnings import WARNINGS_LOG, Recorder
from astrocat.pipeline.own_files import OwnFiles
from astrocat.pipeline.plan import (
    FAMILY_KINDS,
    FileRef,
    Partition,
    family,
    fits_product,
    plan_partitions,
    result_key,
)
from astrocat.pipeline.progress import RunProgress
from astrocat.pipeline.worker import (
    FAILURE_LOG,
    Job,
    log_failure,
    run_partition,
    run_partitions,
    write_failed_partition,
)
from astrocat.sources import positions
from astrocat.sources._fits import HduName
from astrocat.sources.describe import describe, source_of
from astrocat.sources.discover import resolve_inputs
from astrocat.sources.units import InputUnit


@dataclass
class InferOptions:
    """One run: ``astrocat infer`` (``store=False``: ``out`` is the catalog) or a job's
    ``astrocat run`` (``store=True``: ``out`` is a versioned store)."""

    input: str | tuple[str, ...]
    out: Path
    store: bool = False
    layout: str = "file"  # file | dataset | hats
    models: tuple[str, ...] = ()  # bundled names or card paths; each takes what it can eat
    positions: str | None = None  # a table of object_id -> ra/dec for inputs without any
    positions_id: str | None = None  # its ID column [default: found by name]
    layout_options: dict = field(default_factory=dict)  # sizes and thresholds (tests)
    engine: str = "auto"
    decode: str = "auto"  # --decode: auto | cpu | gpu (JPEGs on the torch engine's GPU)
    precision: str = "fp32"  # fp32 | int8 (the bundled INT8 variants that passed their gates)
    scheduler: str | None = None
    cluster: ClusterSpec | None = None  # a job's [cluster] table
    workers: int | None = None
    partition_size: int = 256
    batch_size: int | None = None  # None: chosen per model from the memory budget
    memory_budget: int | None = None  # bytes per worker [default: half the RAM, shared]
    exclude: tuple[str, ...] = ()
    # FITS products: override the plane models' cards (--hdu, --plane, --mask-hdu, ...)
    hdu: HduName | None = None
    plane: int | str | None = None
    mask_hdu: HduName | None = None
    mask_bits: int | None = None
    tta: int = 1  # --tta N: views averaged per item where the card declares invariances
    retention: int = 0  # versions kept in the store [0: KEEP_VERSIONS]
    overwrite: bool = False  # --overwrite: replace whatever is at --out
    retry_errors: bool = False  # recompute the latest version's parts that hold errors
    quiet: bool = False
    command: str = field(default_factory=lambda: shlex.join(["astrocat", *sys.argv[1:]]))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,) if isinstance(self.input, str) else tuple(self.input)


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
    version: int | None = None  # the store's version now current
    new_version: bool = True  # False: nothing changed, nothing published
    changes: dict = field(default_factory=dict)  # inputs added/removed/changed
    taken_over: dict | None = None  # a killed run's lock record, taken over
    n_warnings: int = 0  # library warnings this run recorded (never printed mid-run)
    warnings_log: Path | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # astrocat's own files, by reason
    replaced: dict | None = None  # the catalog at --out made from other inputs, replaced
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> model -> rows
    named_models: tuple[str, ...] = ()  # the cards --model named, by name
    model_warnings: dict[str, list[str]] = field(default_factory=dict)  # from their cards
    input_root: str = ""  # the root the catalog's sources are relative to
    drift: dict[str, dict] = field(default_factory=dict)  # model -> verdict (no sketches)
    #: model -> why it ran in FP32 where ``--precision int8`` was asked
    precision: dict[str, str] = field(default_factory=dict)


#: Runs with at most this many items to compute use Dask's in-process cluster: spawning
#: worker processes costs more than they would save.
SMALL_RUN_ITEMS = 2048


#: Versions ``astrocat infer`` keeps of its catalog (``--keep-versions``); job files keep
#: their own ``retention`` (30 by default).
KEEP_VERSIONS = 5


def build_routing(models: tuple[str, ...] | str | None, precision: str = "fp32"
                  ) -> dict[Kind, ModelCard]:
    """Kind -> model: bundled defaults, each named model taking every kind it can eat
    (later names win); with ``precision`` int8, each model's validated INT8 variant where
    one is bundled (the others stay FP32: see the run's provenance).

    A model named here is verified (weights sha256) and checked against its ONNX graph at
    once; the others when the plan needs them (:func:`verify_used`), before anything is
    computed.
    """
    routing = {k: c for k in Kind if (c := zoo.default_for(k)) is not None}
    named = []
    for model in (models,) if isinstance(models, str) else (models or ()):
        card = zoo.resolve(model)
        named.append(card)
        for kind in Kind:
            if zoo.accepts(card, kind):
                routing[kind] = card
    routing = {k: zoo.variant(c, precision) or c for k, c in routing.items()}
    _verify({c.name: zoo.variant(c, precision) or c for c in named}.values())
    return routing


def named_cards(models: tuple[str, ...], precision: str = "fp32") -> tuple[str, ...]:
    """The names the cards ``--model`` named run under (their INT8 variants' with int8)."""
    cards = (zoo.resolve(m) for m in models)
    return tuple(dict.fromkeys((zoo.variant(c, precision) or c).name for c in cards))


def with_product(routing: dict[Kind, ModelCard], opts: InferOptions) -> dict[Kind, ModelCard]:
    """The plane models' cards with the run's FITS product options in place of their own
    (so result keys, and the reuse of finished parts, follow them)."""
    given = {k: v for k, v in (("hdu", opts.hdu), ("plane", opts.plane),
                               ("mask_hdu", opts.mask_hdu), ("mask_bits", opts.mask_bits))
             if v is not None}
    if not given:
        return routing
    if "mask_bits" in given and "mask_hdu" not in given and not any(
            c.input.mask_hdu for k, c in routing.items() if k in PLANE_KINDS):
        raise AstrocatError("--mask-bits needs --mask-hdu (the HDU holding the flags)")
    changed: dict[str, ModelCard] = {}
    for kind, card in routing.items():
        if kind in PLANE_KINDS and card.name not in changed:
            changed[card.name] = dataclasses.replace(
                card, input=dataclasses.replace(card.input, **given))
    return {k: changed.get(c.name, c) for k, c in routing.items()}


def _precision_reasons(provenance: dict) -> dict[str, str]:
    """model -> why it ran in FP32 under ``--precision int8``, from a run's provenance."""
    return {n: m["precision_reason"] for n, m in provenance.get("models", {}).items()
            if "precision_reason" in m}


def precision_provenance(card: ModelCard, precision: str) -> dict:
    """Where ``--precision int8`` was asked and this model ran in FP32 all the same: why
    (no variant passed its gates, or this CPU would compute it differently or slower)."""
    if precision == "fp32" or card.raw.get("quantization"):
        return {}
    found = zoo.bundled().get(f"{card.name}-{precision}")
    if found is None:
        return {"precision_reason": f"no bundled {precision.upper()} variant of {card.name}"}
    reason = zoo.int8_kept_fp32(found)
    return {"precision_reason": reason} if reason else {}


def trust_provenance(card: ModelCard) -> dict:
    """What the run's trust columns rest on: the TTA views, the reference statistics."""
    out: dict = {"tta": card.tta} if card.tta > 1 else {}
    if card.tta > 1 and card.reference is not None and card.reference.interval_coverage:
        out["interval_coverage"] = card.reference.interval_coverage
    if card.reference is not None:
        out["ood_threshold"] = card.reference.threshold
        out["reference_sha256"] = card.reference.sha256
    else:
        out["ood"] = "no reference statistics: ood_distance is NaN"
    return out


def with_tta(routing: dict[Kind, ModelCard], views: int) -> dict[Kind, ModelCard]:
    """The cards with ``views`` TTA views each, as many as its invariances allow (a
    spectrum model declares none and runs once: its provenance says so)."""
    from astrocat.kernels.views import available

    if views < 1:
        raise AstrocatError("--tta must be at least 1 (1: no test-time augmentation)")
    if views == 1:
        return routing
    return {k: dataclasses.replace(c, tta=min(views, len(available(c.invariances))))
            for k, c in routing.items()}


def _verify(cards) -> None:
    for card in cards:
        card.verify()
        check_graph(card)


def verify_used(todo: list[Partition], routing: dict[Kind, ModelCard]) -> None:
    """Verify the cards the partitions to compute may load: a file not yet described may
    go to any model of its family's kinds."""
    names = set()
    for p in todo:
        for s in p.slices:
            if s.model and s.model.startswith("family:"):
                names |= {routing[k].name for k in FAMILY_KINDS[s.model[7:]] if k in routing}
            elif s.model:
                names.add(s.model)
    _verify(c for c in {c.name: c for c in routing.values()}.values() if c.name in names)


def infer(opts: InferOptions) -> RunSummary:
    """Plan, compute what is missing, publish a version; one run per store at a time."""
    start = dt.datetime.now(dt.UTC)
    if opts.partition_size < 1 or (opts.batch_size is not None and opts.batch_size < 1):
        raise AstrocatError("--partition-size and --batch-size must be at least 1")
    layout = layouts.module(opts.layout)  # an unknown layout fails first
    if opts.layout == "hats":
        layouts.margin_arcsec(opts.layout_options)  # a bad --hats-margin too, before any work
    out = Path(os.path.abspath(opts.out))  # never resolved: it may be our own link
    store = Store(out if opts.store else parts_dir_for(out))
    if opts.store:
        _check_store(out)
        prior = None
    else:
        prior = _check_out(out, store, opts.overwrite)
    created = not os.path.lexists(store.root)
    try:
        with StoreLock(store.root).acquire(opts.command) as lock:  # a second run stops here
            routing = build_routing(opts.models, opts.precision)  # a bad model fails first
            routing = with_tta(with_product(routing, opts), opts.tta)
            fits_product(routing)  # plane models disagreeing on the HDU fail before any input
            recorder = Recorder()
            with libwarnings.captured(), recorder.reading("(driver)"):
                summary = _run(opts, start, layout, routing, out, store)
            summary.taken_over = lock.taken_over
            summary.n_warnings += recorder.write(store.root)
            if summary.n_warnings:
                summary.warnings_log = store.root / WARNINGS_LOG
    except BaseException:
        if created and not opts.store:  # a refused run leaves nothing behind
            _remove_if_unused(store)
        raise
    summary.named_models = named_cards(opts.models, opts.precision)
    if prior is not None and prior.get("input_root") not in (None, summary.input_root):
        summary.replaced = prior
    return summary


def _run(opts: InferOptions, start: dt.datetime, layout, routing: dict[Kind, ModelCard],
         out: Path, store: Store) -> RunSummary:
    placer = (positions.prepare(opts.positions, store.root, opts.positions_id)
              if opts.positions else None)  # a bad table fails before any input is read
    root, files = resolve_all(opts.inputs, opts.exclude)
    own = OwnFiles(out, store.root)
    refs = list_inputs(files, root, own)
    if not refs:
        mine = (f": all {sum(own.counts.values())} files there are astrocat's own "
                f"({_counted(own.counts)})" if own.counts else "")
        raise AstrocatError(f"no input files found under {', '.join(opts.inputs)}{mine}")
    cards = {c.name: c for c in routing.values()}
    engines = {name: choose_engine(opts.engine, card) for name, card in cards.items()}
    gpu_decode = gpu_decoded(opts.decode, cards, engines)  # --decode gpu fails here, or never
    keys = {name: result_key(card, engines[name]) for name, card in cards.items()}
    # JPEGs decoded on the GPU give slightly other pixels (sources.gpu_decode): other parts
    keys = {name: f"{key}+gpu-decode" if name in gpu_decode else key
            for name, key in keys.items()}
    if placer is not None:  # positions change ra/dec: part of every result's identity
        keys = {name: f"{key}+{placer.sha}" for name, key in keys.items()}
    store.root.mkdir(parents=True, exist_ok=True)
    order = tuple(dict.fromkeys(c.name for c in routing.values()))
    failures: Counter = Counter()
    n_warnings = 0
    with contextlib.ExitStack() as stack:
        cluster = LazyCluster(stack, opts.scheduler, opts.workers, opts.cluster,
                              in_process=looks_small(refs),
                              gpu=any(map(wants_gpu, engines.values())))
        units = _describe_tables(refs, root, cluster)
        for unit in units:  # astrocat catalogs recognised by their footers: no rows
            if isinstance(unit, InputUnit) and unit.skipped:
                own.counts[unit.skipped] += 1
        units = [u for u in units if not (isinstance(u, InputUnit) and u.skipped)]
        if not units:
            raise AstrocatError(f"no input files found under {', '.join(opts.inputs)}: all "
                                f"of them are astrocat's own ({_counted(own.counts)})")
        plan = list(plan_partitions(units, routing, opts.partition_size, keys))
        del units, refs
        part_path = {p.key: store.part(p.key) for p in plan}
        latest = store.latest()
        previous = store.manifest(latest) if latest is not None else None
        todo, stats = _todo(plan, part_path, previous if opts.retry_errors else None)
        verify_used(todo, routing)  # a damaged model fails before anything is computed
        n_reused = len(stats)
        parts = [part_path[p.key].name for p in plan]
        publication = _publication_key(cards, engines, opts, root, placer)
        if (previous is not None and not todo and previous["parts"] == parts
                and previous.get("layout") == opts.layout
                and previous.get("publication_key") == publication
                and (opts.store or _out_current(out, store, latest, opts.layout))):
            return RunSummary(out, previous["rows"], previous["errors"], len(plan), n_reused,
                              (dt.datetime.now(dt.UTC) - start).total_seconds(),
                              {n: m["engine"] for n, m in previous.get("models", {}).items()},
                              version=latest, new_version=False,
                              published=previous["published"], skipped=dict(own.counts),
                              by_kind=_by_kind(stats.values()), input_root=str(root),
                              model_warnings=_card_warnings(cards, stats.values()),
                              drift=drift_report.verdicts(previous),
                              precision=_precision_reasons(previous))
        total = sum(p.n_items for p in plan)
        with RunProgress(total, enabled=not opts.quiet) as progress:
            progress.advance(sum(s["n_rows"] for s in stats.values()),
                             sum(s["n_errors"] for s in stats.values()))
            if todo:
                import_test_in_background(sum(p.n_items for p in todo))
                info = cluster.info
                job = Job(cards=cards, engines=engines, parts_dir=str(store.root),
                          feed=dataclasses.replace(
                              feed_for(info, opts.batch_size, opts.memory_budget,
                                       gpu_devices() if info.gpus else None),
                              gpu_decode=gpu_decode),
                          output_order=order, positions=placer,
                          routing={k: c.name for k, c in routing.items()}, root=str(root))
                not_processed = []
                with partitions_in_flight():  # then this process's engines are closed
                    for p, result in cluster.completed(run_partition, todo, job,
                                                       key=lambda p: f"astrocat-part-{p.key}",
                                                       stream=run_partitions):
                        if isinstance(result, Stopped):  # its workers kept shutting down
                            not_processed.append(p.key)
                            continue
                        if isinstance(result, BaseException):  # the worker itself died
                            result = (_written_before(part_path[p.key], start)
                                      or write_failed_partition(p, job, result,
                                                                log_failure(job, p, result)))
                        stats[p.key] = result
                        n_warnings += result.get("n_warnings", 0)
                        if result.get("failure"):
                            failures[result["failure"]] += 1
                        progress.advance(result["n_rows"], result["n_errors"])

                if not_processed:
                    raise AstrocatError(
                        f"{len(not_processed)} partition(s) not processed (their workers shut "
                        "down mid-partition; nothing was written for them): run again to "
                        "resume")

        used = [n for n in order if any(n in s["models"] for s in stats.values())]
        drifts = drift_report.records(cards, used, stats,
                                      {p.key: part_path[p.key] for p in plan})
        provenance = {
            "astrocat_version": __version__,
            "created_utc": start.isoformat(timespec="seconds"),
            "command": opts.command,
            "input_root": str(root),
            "host": socket.gethostname(),
            "engine_requested": opts.engine,
            **({"gpu_decode": list(gpu_decode)} if gpu_decode else {}),
            "execution": cluster.description,
            "execution_reason": cluster.reason,
            "layout": opts.layout,
            "models": {
                n: {"version": cards[n].version, "task": cards[n].task,
                    "sha256": cards[n].fingerprint, "engine": engines[n],
                    **trust_provenance(cards[n]), "drift": drifts[n],
                    **precision_provenance(cards[n], opts.precision)}
                for n in used
            },
            **({"positions": {"table": placer.source, "sha256": placer.sha}}
               if placer else {}),
        }
        pub = prepare([part_path[p.key] for p in plan],
                      catalog_output_columns(cards[n] for n in used),
                      provenance,
                      [stats[p.key] for p in plan])
        number, staged = store.staging()
        artefact = staged if opts.layout != "file" else staged / STORE_FILE
        ctx = PublishContext(store, lambda: cluster.get()[0], dict(opts.layout_options))
        published = layout.publish(pub, artefact, ctx)

    n_errors = sum(s["n_errors"] for s in stats.values())
    placed = _sum_positions(stats.values()) if placer else None
    changes = {"total": len({i[0] for s in stats.values() for i in s.get("inputs", [])}),
               **store.input_changes(previous.get("parts", []) if previous else [], parts,
                                     {part_path[p.key].name: stats[p.key] for p in plan})}
    seconds = (dt.datetime.now(dt.UTC) - start).total_seconds()
    manifest = {
        **provenance, "version": number,
        "published_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": seconds, "catalog": str(out), "rows": published["rows"],
        "errors": n_errors, "parts": parts, "segments": published.pop("segments", []),
        "computed": len(todo), "reused": n_reused, "inputs": changes,
        "published": published, "positions_placed": placed,
        **({"file": STORE_FILE} if opts.layout == "file" else {}),
        "retention": _retention(opts),
        "publication_key": publication,
        "workers": sorted({s.get("worker", "") for s in stats.values()} - {""}),
    }
    final = store.publish(number, staged, manifest)
    if opts.layout == "file" and not opts.store:
        _place_file(final / STORE_FILE, out)  # OUT is the version's file, in one rename
    elif not opts.store:
        point(out, final)  # the output path moves to the new version in one rename
    store.prune_versions(keep=_retention(opts))
    store.prune_parts(set(parts) | set(manifest["segments"]))
    (store.root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return RunSummary(out, published["rows"], n_errors, len(plan), n_reused, seconds,
                      {n: engines[n] for n in used}, dict(failures),
                      store.root / FAILURE_LOG if failures else None, published, placed,
                      version=number, changes=changes, n_warnings=n_warnings,
                      skipped=dict(own.counts), by_kind=_by_kind(stats.values()),
                      input_root=str(root), model_warnings=_card_warnings(cards, stats.values()),
                      drift=drift_report.verdicts(provenance),
                      precision=_precision_reasons(provenance))


def list_inputs(files: Iterable[str], root: Path, own: OwnFiles) -> list[FileRef]:
    """Every input as the driver knows it: listed and stat'ed, never opened; astrocat's
    own files (``own``) left out and counted."""
    refs = []
    for path in files:  # absolute and normalised (``resolve_inputs``)
        try:  # one lstat answers both "a link?" and, for a plain file, size and time
            st: os.stat_result | None = os.lstat(path)
        except OSError:
            st = None
        link = st is not None and stat.S_ISLNK(st.st_mode)
        if own(path, link if st is not None else None):
            continue
        if link:
            try:
                st = os.stat(path)
            except OSError:
                st = None
        # vanished or unreadable (st None): the worker's describe says which
        size, mtime = (st.st_size, st.st_mtime_ns) if st is not None else (0, 0)
        refs.append(FileRef(path, source_of(path, root), size, mtime,
                            family(os.path.basename(path))))
    return refs


#: Table files larger than this in all make a run "large" (worker processes).
SMALL_TABLE_BYTES = 64 << 20


def looks_small(refs: list[FileRef]) -> bool:
    """Whether a run is small enough for Dask's in-process cluster, from names and sizes."""
    tables = sum(r.size for r in refs if r.family == "table")
    return len(refs) <= SMALL_RUN_ITEMS and tables <= SMALL_TABLE_BYTES


def _describe_tables(refs: list[FileRef], root: Path, cluster: LazyCluster
                     ) -> list[InputUnit | FileRef]:
    """Table files are described on the workers (their row counts plan the row ranges);
    every other file is described where it is read."""
    tables = [i for i, r in enumerate(refs) if r.family == "table"]
    if not tables:
        return list(refs)
    units: list[InputUnit | FileRef] = list(refs)
    described = cluster.map(describe, [Path(refs[i].path) for i in tables], root)
    for i, unit in zip(tables, described, strict=True):
        units[i] = unit
    return units


def _written_before(path: Path, since: dt.datetime) -> dict | None:
    """The statistics of a part a task wrote in this run before its worker died (a task of
    a cluster streams several partitions and writes each part, atomically, as it
    finishes); None where there is none, or only an earlier run's (a part redone by
    ``--retry-errors``)."""
    try:
        if path.stat().st_mtime < since.timestamp():
            return None
        return part_stats(path)
    except (OSError, ValueError, KeyError):
        return None


def _todo(plan: list[Partition], part_path: dict[str, Path], retry_from: dict | None
          ) -> tuple[list[Partition], dict[str, dict]]:
    """Partitions to compute, and the statistics of those whose finished parts are reused
    (failed work, and with ``retry_from`` that version's parts holding errors, is redone)."""
    redo = set()
    if retry_from is not None:
        redo = {k for k, p in part_path.items() if p.name in retry_from.get("parts", ())
                and p.is_file() and part_stats(p)["n_errors"]}
    todo: list[Partition] = []
    stats: dict[str, dict] = {}
    for p in plan:
        if part_path[p.key].is_file() and p.key not in redo:
            try:
                found = part_stats(part_path[p.key])
            except Exception:  # noqa: BLE001 - an unreadable leftover is redone
                part_path[p.key].unlink(missing_ok=True)
            else:
                if not found.get("retry"):  # failed work is recomputed, never reused
                    stats[p.key] = found
                    continue
        todo.append(p)
    return todo, stats


def resolve_all(specs: tuple[str, ...], exclude: tuple[str, ...]):
    """Several input specs as one: their common root, each file once, in order."""
    resolved = [resolve_inputs(s, exclude) for s in specs]
    root = Path(os.path.commonpath([str(r) for r, _ in resolved]))

    def files():
        seen: set[str] = set()
        for _, paths in resolved:
            for p in paths:
                if p not in seen:
                    seen.add(p)
                    yield p

    return root, files()


def _sum_positions(stats) -> dict[str, int]:
    got = [s.get("positions") or {} for s in stats]
    return {k: sum(g.get(k, 0) for g in got) for k in ("placed", "unmatched")}


def _counted(counts: Counter | dict) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in counts.items())


def _publication_key(cards: dict[str, ModelCard], engines: dict[str, str],
                     opts: InferOptions, root: Path, placer) -> str:
    """What a published catalog shows besides its parts' rows: the output columns' names,
    units, descriptions and UCDs, models, engines, layout and its options, input root and
    positions table. Unchanged parts under an unchanged key need no new version."""
    import hashlib

    columns = [[c.name, str(c.type), c.unit, c.description, c.ucd]
               for c in catalog_output_columns(cards.values())]
    models = {n: [c.version, c.fingerprint, engines[n], trust_provenance(c)]
              for n, c in sorted(cards.items())}
    record = [columns, models, opts.layout, sorted(opts.layout_options.items()), str(root),
              placer.sha if placer is not None else None]
    return hashlib.sha256(json.dumps(record, default=str).encode()).hexdigest()[:24]


def _retention(opts: InferOptions) -> int:
    return opts.retention or KEEP_VERSIONS


def _by_kind(stats) -> dict[str, dict[str, int]]:
    """Rows per input kind and the model that took them, over every part."""
    out: dict[str, dict[str, int]] = {}
    for s in stats:
        for kind, models in s.get("by_kind", {}).items():
            per = out.setdefault(kind, {})
            for model, n in models.items():
                per[model] = per.get(model, 0) + n
    return out


def _card_warnings(cards: dict[str, ModelCard], stats) -> dict[str, list[str]]:
    """What the cards of the models that ran warn of (a model worse than its baseline)."""
    used = {m for s in stats for m in s.get("models", [])}
    return {n: list(c.warnings) for n, c in cards.items()
            if n in used and getattr(c, "warnings", None)}


def _astrocat_parquet(path: Path) -> dict | None:
    """The provenance of a Parquet file astrocat wrote (its footer's key), else None."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 -- not Parquet at all
        return None
    if b"astrocat" not in meta:
        return None
    try:
        return json.loads(meta[b"astrocat"]) or {}
    except ValueError:
        return {}


def _check_out(out: Path, store: Store, overwrite: bool) -> dict | None:
    """Refuse to replace at ``--out`` anything astrocat did not write (recognised by its
    own metadata, not by a name or an extension); ``--overwrite`` replaces it. Returns what
    the catalog there says of itself (its input root), when there is one."""
    if not os.path.lexists(out):
        return None
    latest = store.latest() if is_store(store.root) else None
    prior = store.manifest(latest) if latest is not None else None
    if out.is_symlink() and store.root.resolve() in out.resolve().parents:
        return prior  # our own link to one of the store's versions
    if out.is_file():
        found = _astrocat_parquet(out)
        if found is not None:
            return prior or found
    elif out.is_dir() and (out / "_manifest.json").is_file() and prior is not None:
        return prior  # a store's version copied out without its link
    if overwrite:
        return None
    what = ("a directory" if out.is_dir() else "a Parquet file" if out.suffix == ".parquet"
            else "a file")
    raise AstrocatError(f"--out {out} exists and is {what} that astrocat did not write (it "
                        "carries no astrocat catalog metadata); nothing was done. Choose "
                        "another --out, or add --overwrite to replace it")


def _check_store(out: Path) -> None:
    """A job's ``out`` is a store: refuse a file, or a directory of someone else's files."""
    if not os.path.lexists(out) or is_store(out):
        return
    if not out.is_dir():
        raise AstrocatError(f"the job's out {out} is a file; a job writes a store (a "
                            "directory of versions): choose another out")
    mine = {"lock", "runs", "errors.log", WARNINGS_LOG, "manifest.json"}
    foreign = [p.name for p in out.iterdir() if p.name not in mine
               and not p.name.startswith(("part-", ".part-"))]
    if foreign:
        raise AstrocatError(f"the job's out {out} is a directory that is not an astrocat "
                            f"store (it holds {', '.join(sorted(foreign)[:3])}"
                            f"{', ...' if len(foreign) > 3 else ''}); nothing was done. "
                            "Choose an empty or new directory")


def _remove_if_unused(store: Store) -> None:
    """Remove a store this run created and left without parts or versions."""
    import shutil

    root = store.root
    if root.is_dir() and not (root / VERSIONS).exists() and not any(
            root.glob("part-*.parquet")):
        shutil.rmtree(root, ignore_errors=True)


def _out_current(out: Path, store: Store, latest: int | None, layout: str) -> bool:
    """Whether ``--out`` still is the store's latest version (nothing to publish again)."""
    if latest is None or not os.path.lexists(out):
        return False
    final = store.version_dir(latest)
    if layout != "file":
        return out.is_symlink() and out.resolve() == final.resolve()
    try:
        return (final / STORE_FILE).is_file() and os.path.samefile(out, final / STORE_FILE)
    except OSError:
        return False


def _place_file(version_file: Path, out: Path) -> None:
    """Put a version's catalog file at ``out`` in one rename: a hard link (no copy, and
    the version keeps its file when the next version replaces ``out``), or a copy where
    the file system has no hard links."""
    import shutil

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(version_file, tmp)
    except OSError:
        shutil.copyfile(version_file, tmp)
    if out.is_dir() and not out.is_symlink():  # --overwrite of a directory
        shutil.rmtree(out)
    os.replace(tmp, out)
