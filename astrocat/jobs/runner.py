"""``astrocat run JOB.toml``: one scheduled run of a job file, and its run record.

The run itself is ``pipeline.run.infer`` in store mode (versions, retention, nothing
published when nothing changed). Every run, published or not, failed or refused, leaves
``STORE/runs/<UTC time>-<pid>.json`` for monitoring; a published version also carries it
as ``_run.json``-like fields in its manifest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import socket
import sys
import threading
from pathlib import Path

from astrocat.catalog.lock import LockHeld
from astrocat.errors import AstrocatError
from astrocat.jobs.jobfile import JobSpec, load_job
from astrocat.pipeline.run import InferOptions, RunSummary, infer

RUNS = "runs"
#: The exit code of an interrupted run (Ctrl-C, SIGTERM), as the CLI exits with it.
EXIT_INTERRUPTED = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm's ``scancel`` or time limit, systemd's stop) during a run: the run
    unwinds as on Ctrl-C (the lock released, finished parts kept, the record written)."""


@contextlib.contextmanager
def sigterm_interrupts():
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread instead
    of ending the process on the spot (no run record, no clean-up). Elsewhere than the
    main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signal.Signals(signum).name)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def options(job: JobSpec, retry_errors: bool = False, quiet: bool = False) -> InferOptions:
    """The job as the options of one store-mode run."""
    return InferOptions(
        input=job.inputs, out=job.out, store=True, layout=job.layout, models=job.models,
        positions=job.positions, positions_id=job.positions_id, engine=job.engine,
        precision=job.precision, memory_budget=_bytes(job.memory_budget),
        cluster=job.cluster if job.cluster.kind != "local" else None, workers=job.workers,
        partition_size=job.partition_size, batch_size=job.batch_size,
        exclude=job.exclude, retention=job.retention, retry_errors=retry_errors, quiet=quiet,
        hdu=job.hdu, plane=job.plane, mask_hdu=job.mask_hdu, mask_bits=job.mask_bits,
        tta=job.tta, command=shlex.join(["astrocat", *sys.argv[1:]]) if sys.argv[1:] else
        f"astrocat run {job.path}")


def _bytes(size: str | None) -> int | None:
    from astrocat.jobs.jobfile import JobError
    from astrocat.pipeline.feed import parse_size

    try:
        return None if size is None else parse_size(size)
    except ValueError as exc:
        raise JobError(f"[job] memory_budget: {exc}") from exc


def run_job(path: str | Path, retry_errors: bool = False, quiet: bool = False) -> RunSummary:
    job = load_job(path)
    started = dt.datetime.now(dt.UTC)
    record: dict = {"job": job.name, "job_file": str(job.path), "store": str(job.out),
                    "host": socket.gethostname(), "pid": os.getpid(),
                    "started_utc": started.isoformat(timespec="seconds"),
                    "retry_errors": retry_errors}
    try:
        with sigterm_interrupts():
            summary = infer(options(job, retry_errors, quiet))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        _write(job.out, started, record | {
            "status": "interrupted", "exit_code": EXIT_INTERRUPTED, "signal": name,
            "message": f"interrupted ({name}) before the run finished: parts finished "
                       "before the interrupt are kept; inputs not processed yet are "
                       "computed by the next run (run again to resume)"})
        raise
    except LockHeld as exc:
        _write(job.out, started, record | {"status": "locked", "exit_code": 3,
                                            "message": str(exc), "holder": exc.holder})
        raise
    except (AstrocatError, OSError) as exc:
        _write(job.out, started, record | {"status": "failed", "exit_code": 2,
                                            "message": str(exc)})
        raise
    except Exception as exc:  # a bug: the run still leaves its record
        _write(job.out, started, record | {"status": "failed", "exit_code": 2,
                                            "message": f"internal error: "
                                                       f"{type(exc).__name__}: {exc}"})
        raise
    status = "unchanged" if not summary.new_version else (
        "errors" if summary.n_errors else "ok")
    _write(job.out, started, record | {
        "status": status, "exit_code": 1 if summary.n_errors else 0,
        "version": summary.version, "published": summary.new_version,
        "rows": summary.n_rows, "errors": summary.n_errors, "parts": summary.n_parts,
        "reused": summary.n_reused, "inputs": summary.changes, "failures": summary.failures,
        "seconds": summary.seconds, "lock_taken_over": summary.taken_over})
    return summary


def _write(store: Path, started: dt.datetime, record: dict) -> Path | None:
    """The run record; a store that cannot even be created gets none."""
    record["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    d = store / RUNS
    try:
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{started:%Y%m%dT%H%M%S.%f}Z-{os.getpid()}.json"
        path.write_text(json.dumps(record, indent=1, default=str))
        return path
    except OSError:
        return None
