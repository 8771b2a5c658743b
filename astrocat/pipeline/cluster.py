"""Where the work runs: an embedded ``distributed.LocalCluster`` sized to this machine
(worker processes, or Dask's in-process cluster for runs too small to pay for spawning
them), an existing Dask cluster by address, or Slurm jobs started by ``dask-jobqueue``.
Never a home-made scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from astrocat.errors import AstrocatError

#: Keep numeric libraries in each worker to the threads we give them.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ClusterSpec:
    """A job file's ``[cluster]`` table: ``local``, ``scheduler`` (``address``) or
    ``slurm`` (dask-jobqueue's ``SLURMCluster`` options: cores, memory, queue, walltime,
    processes, account, job_extra_directives; ``jobs`` to start)."""

    kind: str = "local"
    options: dict[str, Any] = field(default_factory=dict)


def slurm_cluster(spec: ClusterSpec):
    """A ``dask_jobqueue.SLURMCluster`` for ``spec`` (not yet scaled)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise AstrocatError("[cluster] kind = \"slurm\" needs dask-jobqueue: pip install "
                            "'astrocat[cluster]'") from exc
    o = spec.options
    kwargs = {k: o[k] for k in ("cores", "memory", "queue", "walltime", "processes",
                                "account", "job_extra_directives") if k in o}
    kwargs.setdefault("cores", 8)
    kwargs.setdefault("memory", "32GB")
    kwargs.setdefault("processes", kwargs["cores"])
    return SLURMCluster(**kwargs)


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    n_workers: int
    threads_per_engine: int
    embedded: bool
    in_process: bool = False

    @property
    def description(self) -> str:
        """For the provenance record: where the partitions ran."""
        if not self.embedded:
            return f"{self.address}, {self.n_workers} workers"
        if self.in_process:
            return "embedded LocalCluster, in-process (1 worker thread)"
        return f"embedded LocalCluster, {self.n_workers} workers"


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def dask_client(
    scheduler: str | None, workers: int | None, max_useful: int, in_process: bool = False,
    spec: ClusterSpec | None = None,
) -> Iterator[tuple[object, ClusterInfo]]:
    """A connected ``distributed.Client`` and what it offers, torn down on exit.

    ``in_process`` (a small run, no ``--workers`` given) runs the partitions on one worker
    thread inside this process, the engine using every core.
    """
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"logging.distributed": "error"})
    if spec is not None and spec.kind == "scheduler":
        scheduler = spec.options["address"]
    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except (OSError, TimeoutError) as exc:
            raise AstrocatError(
                f"cannot reach the Dask scheduler at {scheduler} ({exc}); is it running, "
                "and is the address (tcp://host:port) right?"
            ) from exc
        with client:
            n = max(1, len(client.scheduler_info().get("workers", {})))
            yield client, ClusterInfo(scheduler, n, 1, embedded=False)
        return
    if spec is not None and spec.kind == "slurm":
        cluster = slurm_cluster(spec)
        try:
            cluster.scale(jobs=int(spec.options.get("jobs", 1)))
            with Client(cluster) as client:
                client.wait_for_workers(1, timeout=int(spec.options.get("start_timeout", 3600)))
                n = max(1, len(client.scheduler_info().get("workers", {})))
                yield client, ClusterInfo(cluster.scheduler_address, n, 1, embedded=False)
        finally:
            cluster.close()
        return

    cores = machine_cores()
    in_process = in_process and workers is None
    n_workers = 1 if in_process else max(1, min(workers or cores, max_useful))
    threads = max(1, cores // n_workers)
    env = {k: str(threads) for k in _THREAD_ENV}
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=not in_process,
        dashboard_address=None if in_process else ":0",  # any free port: runs never clash
        silence_logs=logging.ERROR,
        **({} if in_process else {"env": env}),
    )
    try:
        with Client(cluster) as client:
            yield client, ClusterInfo(cluster.scheduler_address, n_workers, threads, True,
                                      in_process)
    finally:
        cluster.close()


class LazyCluster:
    """The run's Dask cluster, started on first use (partitions to compute, segments to
    build, a HATS catalog to import) and torn down with the run's exit stack."""

    def __init__(self, stack: contextlib.ExitStack, scheduler: str | None,
                 workers: int | None, spec: ClusterSpec | None = None) -> None:
        self._stack, self._scheduler, self._workers = stack, scheduler, workers
        self._spec = spec
        self._got: tuple[object, ClusterInfo] | None = None

    def get(self, max_useful: int | None, in_process: bool) -> tuple[object, ClusterInfo]:
        if self._got is None:
            self._got = self._stack.enter_context(dask_client(
                self._scheduler, self._workers, max_useful or machine_cores(), in_process,
                self._spec))
        return self._got

    @property
    def description(self) -> str:
        return self._got[1].description if self._got else "none (all parts reused)"
