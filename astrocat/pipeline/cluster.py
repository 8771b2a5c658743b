"""Where the work runs: the calling thread for a run of one partition, Dask's threaded
scheduler in this process for runs too small to pay for a cluster, an embedded
``distributed.LocalCluster`` sized to this machine, an existing Dask cluster by address,
Slurm jobs started by ``dask-jobqueue``, or one worker per GPU (dask-cuda's
``LocalCUDACluster``, or plain ``distributed`` where dask-cuda is not installed). Never a
home-made scheduler.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from astrocat.errors import AstrocatError
from astrocat.pipeline.feed import Feed

#: Keep numeric libraries in each worker to the threads we give them.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class Stopped(Exception):  # noqa: N818 - a state, not an error
    """A task abandoned because its run was interrupted (Ctrl-C, SIGTERM) or its process
    is shutting down: nothing of its partition is written (no part, no error rows, no
    traceback), so the next run computes it."""


#: Times a partition whose worker process was shutting down is submitted again.
STOPPED_RETRIES = 2
#: The stop event of the run whose task this thread runs (Dask's threaded scheduler).
_task = threading.local()


def stop_requested() -> bool:
    """Whether the run of the task on this thread has been interrupted: the task should
    stop and raise :class:`Stopped`."""
    stop = getattr(_task, "stop", None)
    return stop is not None and stop.is_set()


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
                                "account", "job_extra_directives", "log_directory") if k in o}
    kwargs.setdefault("cores", 8)
    kwargs.setdefault("memory", "32GB")
    kwargs.setdefault("processes", kwargs["cores"])
    return SLURMCluster(**kwargs)


#: Seconds a run waits for its first Slurm worker job to start ([cluster] start_timeout).
START_TIMEOUT = 600


def slurm_preflight(job_script: str) -> None:
    """Ask Slurm whether it would take the worker job (``sbatch --test-only``: nothing is
    submitted), so a partition that does not exist or a memory request no node can meet
    is one line now rather than a worker that never comes."""
    import subprocess

    try:
        r = subprocess.run(["sbatch", "--test-only"], input=job_script, capture_output=True,
                           text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AstrocatError(f"could not ask Slurm about the worker job ({exc})") from exc
    if r.returncode != 0:
        lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
        why = "; ".join(ln.removeprefix("sbatch: error: ") for ln in lines) or "no reason given"
        raise AstrocatError(f"Slurm refused the Dask worker job ({why}): check [cluster] "
                            "queue, account, cores and memory against the site's partitions "
                            "(sinfo)")


def wait_for_slurm_workers(client, cluster, timeout: float) -> None:
    """Wait for the first worker; past ``timeout`` say which jobs wait and why."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.wait_for_workers(1, timeout=min(5.0, max(0.1, deadline - time.monotonic())))
            return
        except TimeoutError:
            if time.monotonic() >= deadline:
                break
    ids = [str(j.job_id) for j in cluster.workers.values() if getattr(j, "job_id", None)]
    raise AstrocatError(f"no Dask worker started within {timeout:.0f} s: Slurm job(s) "
                        f"{_squeue_states(ids) if ids else 'none submitted'}; raise [cluster] "
                        "start_timeout, or ask for less (cores, memory, walltime)")


def _squeue_states(ids: list[str]) -> str:
    """"12 (PENDING: Resources), 13 (...)" from squeue, or just the ids."""
    import subprocess

    try:
        out = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ", ".join(ids)
    states = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            states[parts[0]] = f"{parts[1]}: {parts[2]}"
    return ", ".join(f"{i} ({states.get(i, 'no longer queued')})" for i in ids)


#: Task threads per worker process, each streaming partitions through the process's
#: decoders and engines (``worker.run_partitions``); one stream alone was no faster on 2
#: cores (docs/performance.md).
TASK_THREADS = 2
#: ``ClusterInfo.address`` of Dask's threaded scheduler (no ``distributed`` at all).
THREADED = "dask-threads"
#: Cores one local process keeps busy. Decoders and engines release the GIL, but Python
#: holds it for part of every item (the worker's loop, Pillow's wrappers, describing:
#: 0.25-0.7 ms per image measured here with ``py-spy --gil``), which caps one process at a
#: few thousand items/s: a handful of cores of a ~2 ms/item pipeline. Beyond this many
#: cores the machine gets more worker processes (an estimate: only 2-core machines were
#: measured).
CORES_PER_PROCESS = 4


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    n_workers: int
    cores_per_worker: int  # 0: unknown (an external cluster: each worker decides)
    embedded: bool
    in_process: bool = False
    gpus: int = 0  # one worker per GPU when > 0

    @property
    def description(self) -> str:
        """For the provenance record: where the partitions ran."""
        if not self.embedded:
            return f"{self.address}, {self.n_workers} workers"
        if self.gpus:
            return f"embedded GPU cluster, {self.n_workers} workers, one per GPU"
        if self.address == THREADED:
            return f"Dask threaded scheduler, in-process ({TASK_THREADS} task threads)"
        if self.in_process:
            return f"embedded LocalCluster, in-process (1 worker, {TASK_THREADS} task threads)"
        return f"embedded LocalCluster, {self.n_workers} workers"


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    memory_mib: int


def gpu_devices(smi: str | None = None) -> list[GPU]:
    """The NVIDIA GPUs ``nvidia-smi`` lists (or that ``smi``, its CSV output, lists)."""
    if smi is None:
        import shutil
        import subprocess

        if shutil.which("nvidia-smi") is None:
            return []
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=20, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return []
    out = []
    for line in smi.splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit():
            out.append(GPU(int(parts[0]), parts[1], int(float(parts[2]))))
    return out


def cuda_cluster_kwargs(devices: list[GPU]) -> dict:
    """``dask_cuda.LocalCUDACluster`` arguments: one worker per GPU (dask-cuda sets each
    worker's ``CUDA_VISIBLE_DEVICES`` so that its GPU is device 0), two task threads each
    (the next partition decodes while one finishes)."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(str(d.index) for d in devices),
            "n_workers": len(devices), "threads_per_worker": TASK_THREADS}


def gpu_worker_specs(devices: list[GPU], threads: int) -> dict:
    """``SpecCluster`` worker specs without dask-cuda: one worker process (``Nanny``) per
    GPU whose ``CUDA_VISIBLE_DEVICES`` is that GPU alone (device 0 inside it), its numeric
    libraries held to its share of the cores, ``TASK_THREADS`` task threads."""
    from distributed import Nanny

    return {f"gpu-{d.index}": {"cls": Nanny, "options": {
        "nthreads": TASK_THREADS, "silence_logs": logging.ERROR,
        "env": {"CUDA_VISIBLE_DEVICES": str(d.index),
                **{k: str(threads) for k in _THREAD_ENV}}}} for d in devices}


def gpu_spec_cluster(devices: list[GPU], threads: int):
    """One worker per GPU from plain ``distributed`` (where dask-cuda is not installed):
    what ``LocalCUDACluster`` places, without its memory spilling or CPU affinity."""
    from distributed import Scheduler, SpecCluster

    return SpecCluster(workers=gpu_worker_specs(devices, threads),
                       scheduler={"cls": Scheduler, "options": {"dashboard_address": ":0"}},
                       silence_logs=logging.ERROR)


def feed_for(info: ClusterInfo, batch_size: int | None, memory_budget: int | None,
             devices: list[GPU] | None = None) -> Feed:
    """How each worker is fed. CPU: as many decoders as cores and as many single-threaded
    engine instances, all sharing the cores (whatever the decoders leave idle, an engine
    fills with a batch of its own). GPU: one engine per GPU, fed by the worker's share of
    the cores."""
    import psutil

    cores = info.cores_per_worker
    budget = memory_budget or int(psutil.virtual_memory().total * 0.5 / max(1, info.n_workers))
    if info.gpus and devices:
        return Feed(decoders=max(1, cores), engines=1, memory_budget=budget,
                    batch_size=batch_size, device=0,
                    device_memory=int(min(d.memory_mib for d in devices) * 0.5) << 20)
    return Feed(decoders=cores, engines=cores, intra_op=1, memory_budget=budget,
                batch_size=batch_size)


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def dask_client(
    scheduler: str | None, workers: int | None, in_process: bool = False,
    spec: ClusterSpec | None = None, gpu: bool = False,
) -> Iterator[tuple[object, ClusterInfo]]:
    """A connected ``distributed.Client`` and what it offers, torn down on exit.

    ``in_process`` (a small run, no ``--workers`` given) runs the partitions on one
    worker inside this process (``TASK_THREADS`` task threads); its feed uses every core.
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
            yield client, ClusterInfo(scheduler, n, 0, embedded=False)
        return
    if spec is not None and spec.kind == "slurm":
        if shutil.which("sbatch") is None:
            raise AstrocatError("[cluster] kind = \"slurm\" needs Slurm's commands (sbatch, "
                                "squeue, scancel) on this machine's PATH: run on a login "
                                "node, or load the site's Slurm module")
        cluster = slurm_cluster(spec)
        try:
            slurm_preflight(cluster.job_script())
            cluster.scale(jobs=int(spec.options.get("jobs", 1)))
            with Client(cluster) as client:
                wait_for_slurm_workers(client, cluster,
                                       float(spec.options.get("start_timeout", START_TIMEOUT)))
                n = max(1, len(client.scheduler_info().get("workers", {})))
                yield client, ClusterInfo(cluster.scheduler_address, n, 0, embedded=False)
        finally:
            cluster.close()  # cancels the worker jobs: none outlives the run
        return

    cores = machine_cores()
    devices = gpu_devices() if gpu else []
    if devices and workers is None:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            cluster = gpu_spec_cluster(devices, max(1, cores // len(devices)))
        else:
            cluster = LocalCUDACluster(**cuda_cluster_kwargs(devices),
                                       silence_logs=logging.ERROR, dashboard_address=":0")
        try:
            with Client(cluster) as client:
                yield client, ClusterInfo(cluster.scheduler_address, len(devices),
                                          max(1, cores // len(devices)), True,
                                          gpus=len(devices))
        finally:
            cluster.close()
        return
    in_process = in_process and workers is None
    n_workers = 1 if in_process else max(1, workers or -(-cores // CORES_PER_PROCESS))
    threads = max(1, cores // n_workers)
    env = {k: str(threads) for k in _THREAD_ENV}
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=TASK_THREADS,
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
    """The run's Dask execution, started on first use (tables to describe, partitions to
    compute, segments to build, a HATS catalog to import) and torn down with the run's
    exit stack.

    A run on this machine with nothing else asked for uses Dask's threaded scheduler in
    this process when one process can keep the cores busy (``CORES_PER_PROCESS``) or the
    run is small (``in_process``): no ``distributed`` import, no worker process to start
    (about 3 s with its imports and teardown). Anything that needs a
    ``distributed.Client`` (a HATS import) still gets one from :meth:`get`.
    """

    def __init__(self, stack: contextlib.ExitStack, scheduler: str | None,
                 workers: int | None, spec: ClusterSpec | None = None,
                 in_process: bool = False, gpu: bool = False) -> None:
        self._stack, self._scheduler, self._workers = stack, scheduler, workers
        self._spec, self._in_process, self._gpu = spec, in_process, gpu
        self._got: tuple[object, ClusterInfo] | None = None
        self.threaded = ((in_process or machine_cores() <= CORES_PER_PROCESS) and not gpu
                         and scheduler is None and workers is None
                         and (spec is None or spec.kind == "local"))
        self._used = False
        #: The run's one partition ran in the calling thread (no scheduler: nothing to
        #: schedule); its feed still uses every core.
        self.inline = False

    def get(self) -> tuple[object, ClusterInfo]:
        """A ``distributed.Client`` and what it offers (started here on first call)."""
        if self._got is None:
            self._got = self._stack.enter_context(dask_client(
                self._scheduler, self._workers, self._in_process, self._spec, self._gpu))
        self._used = True
        return self._got

    @property
    def info(self) -> ClusterInfo:
        if self.threaded:
            self._used = True
            return ClusterInfo(THREADED, 1, machine_cores(), embedded=True, in_process=True)
        return self.get()[1]

    def map(self, fn: Callable, items: list, *args) -> list:
        """``[fn(item, *args) for item in items]``, run on the cluster; exceptions raise."""
        if not items:
            return []
        if self.threaded:
            import dask

            self._used = True
            tasks = [dask.delayed(functools.partial(fn, item, *args), pure=False)()
                     for item in items]
            return list(dask.compute(*tasks, scheduler=_threaded_get(),
                                     num_workers=TASK_THREADS))
        client, _ = self.get()
        futures = client.map(fn, items, *([a] * len(items) for a in args), pure=False)
        return client.gather(futures)

    def completed(self, fn: Callable, items: list, *args, key: Callable[[object], str],
                  window: int | None = None, stream: Callable | None = None
                  ) -> Iterator[tuple[object, object]]:
        """``(item, fn(item, *args))`` as each finishes, an exception in place of a result
        that raised; at most ``window`` tasks in flight on a cluster. With Dask's threaded
        scheduler each task thread takes items from one queue as it needs them, through
        ``stream(items, *args, done)`` (``worker.run_partitions``) where one is given,
        else ``fn`` one item at a time; on a cluster, each task streams a stretch of
        items."""
        if self.threaded:
            items = list(items)
            if len(items) == 1:  # nothing to schedule: importing Dask would cost 0.1 s
                self.inline = True
                yield items[0], _guarded(fn, items[0], args)
                return
            yield from _threaded_streams(stream or functools.partial(_one_by_one, fn),
                                         items, args)
            return
        from distributed import as_completed

        client, info = self.get()
        if stream is not None:
            yield from self._stretches(stream, items, args, key, window)
            return
        pending = iter(items)
        by_key = {}

        def submit(item, again: int = 0):
            fut = client.submit(fn, item, *args, key=key(item) + (f"-again-{again}" if again
                                                                  else ""), pure=False)
            by_key[fut.key] = item, again
            return fut

        first = [submit(p) for _, p in zip(range(window or 2 * info.n_workers + 2), pending,
                                           strict=False)]
        done = as_completed(first, with_results=False)
        for fut in done:
            item, again = by_key.pop(fut.key)
            try:
                result = fut.result()
            except Stopped as exc:  # its worker process was shutting down: run it again
                if again < STOPPED_RETRIES:
                    done.add(submit(item, again + 1))
                    continue
                result = exc
            except Exception as exc:  # noqa: BLE001 - the caller accounts for it
                result = exc
            yield item, result
            nxt = next(pending, None)
            if nxt is not None:
                done.add(submit(nxt))

    def _stretches(self, stream: Callable, items: list, args: tuple,
                   key: Callable[[object], str], window: int | None
                   ) -> Iterator[tuple[object, object]]:
        """:meth:`completed` on a cluster for a ``stream``: tasks of up to ``STRETCH``
        consecutive items each (fewer where a run has few items per worker, so that every
        worker thread gets several), each task ``stream`` over its items; each item's
        result as its task finishes."""
        items = list(items)
        n_workers = max(1, self.get()[1].n_workers)
        size = max(1, min(STRETCH, len(items) // (4 * TASK_THREADS * n_workers)))
        groups = [tuple(items[i:i + size]) for i in range(0, len(items), size)]
        for group, got in self.completed(_run_stretch, groups, stream, *args,
                                         key=lambda g: f"{key(g[0])}-{len(g)}", window=window):
            results = got if isinstance(got, list) else [got] * len(group)
            yield from zip(group, results, strict=True)

    @property
    def description(self) -> str:
        if self._got:
            return self._got[1].description
        if self.inline:
            return "in-process, the run's one partition in the calling thread (no scheduler)"
        return self.info.description if self._used else "none (all parts reused)"

    @property
    def reason(self) -> str:
        """Why the partitions ran where :attr:`description` says, for the run's provenance:
        the rule that chose it and the figure it was chosen from."""
        if self.inline:
            return "one partition to compute: nothing to schedule"
        if not self._used:
            return "every partition's part was reused: nothing to compute"
        spec = self._spec.kind if self._spec is not None else "local"
        if self._scheduler or spec == "scheduler":
            return ("an existing Dask scheduler was named (--scheduler, or the job file's "
                    "[cluster]): its workers decide their own feed, one decoder and one "
                    "engine per worker thread")
        if spec == "slurm":
            return ("the job file's [cluster] asks for Slurm: dask-jobqueue worker jobs, "
                    "each worker fed by one decoder and one engine per thread")
        if self._got is not None and self._got[1].gpus:
            return ("a GPU engine on a machine with GPUs: one worker process per GPU, "
                    "decoding on its share of the cores and running one engine on its GPU")
        cores = machine_cores()
        feed = ("; in each process a decoder thread and a single-threaded engine per core, "
                "each task thread streaming partitions through them without draining "
                "between partitions (whole items per core in one thread, without hand-offs, "
                "was measured no faster on 2 cores: docs/performance.md)")
        if self._workers is not None:
            return f"--workers {self._workers}: as many worker processes as asked" + feed
        if cores <= CORES_PER_PROCESS:
            return (f"{cores} core(s): one process keeps up to {CORES_PER_PROCESS} busy "
                    "(decoders and engines release the GIL), so no worker process is "
                    "started" + feed)
        if self._in_process:
            return ("a small run (few files, small tables): one process, no worker "
                    "process to start" + feed)
        return (f"{cores} cores: one process keeps about {CORES_PER_PROCESS} busy (the "
                f"GIL), so one worker process per {CORES_PER_PROCESS} cores" + feed)


def _threaded_get() -> Callable:
    """Dask's threaded scheduler, named by its function: the name "threads" would make
    Dask import ``distributed`` to look for a client first (a quarter of a second)."""
    import dask.threaded

    return dask.threaded.get


def _guarded(fn: Callable, item, args: tuple, stop: threading.Event | None = None):
    if stop is not None and stop.is_set():
        return Stopped("the run was interrupted before this task started")
    _task.stop = stop
    try:
        return fn(item, *args)
    except Exception as exc:  # noqa: BLE001 - handed back as the item's result
        return exc
    finally:
        _task.stop = None


#: Partitions one task of a cluster streams through its worker thread's pipeline (no drain
#: between them; ``worker.run_partitions``). A killed worker loses the parts its task had
#: not yet written, never those it had.
STRETCH = 4


def _run_stretch(items: tuple, stream: Callable, *args) -> list:
    """A cluster's task: ``stream(items, *args, done)``; the items' results in order, the
    stream's exception for each it gave none (it raised). Raises only :class:`Stopped`."""
    got: dict[int, object] = {}

    def done(item, result) -> None:
        got[id(item)] = result

    try:
        stream(iter(items), *args, done)
    except Stopped:
        raise
    except Exception as exc:  # noqa: BLE001 - the items' result: accounted for by the caller
        return [got.get(id(item), exc) for item in items]
    missing = RuntimeError("the task ended without a result for this item")
    return [got.get(id(item), missing) for item in items]


def _one_by_one(fn: Callable, items: Iterable, *args_and_done) -> None:
    """``fn(item, *args)`` over ``items`` as a stream (:func:`_threaded_streams`): each
    item's result, or the exception it raised, handed to ``done`` (the last argument)."""
    *args, done = args_and_done
    for item in items:
        try:
            result = fn(item, *args)
        except Exception as exc:  # noqa: BLE001 - handed back as the item's result
            result = exc
        done(item, result)


def _threaded_streams(stream: Callable, items: list, args: tuple
                      ) -> Iterator[tuple[object, object]]:
    """Dask's threaded scheduler running ``TASK_THREADS`` tasks, each ``stream(its items,
    *args, done)`` over one shared queue of ``items`` in order: a task takes the next item
    only when it needs one, so the threads share the work to the end, and each item's
    result is handed over (``done``) as it finishes. An item a task took but whose result
    it never gave (the task raised) gets the task's exception as its result; items no task
    took (every task raised) get :class:`Stopped`.

    When the caller stops early (Ctrl-C, SIGTERM: the exception unwinds through here, or
    the generator is closed), the tasks see :func:`stop_requested` and abandon what they
    hold, and take nothing more: nothing more is written."""
    import dask

    todo: queue.Queue = queue.Queue()
    for item in items:
        todo.put(item)
    done: queue.Queue = queue.Queue()
    stop = threading.Event()

    def taking(taken: list) -> Iterator[object]:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            taken.append(item)
            yield item

    def task() -> None:
        taken: list = []

        def report(item, result) -> None:
            taken.remove(item)
            done.put((item, result))

        got = _guarded(lambda _, *a: stream(taking(taken), *a, report), None, args, stop)
        for item in taken:  # the task raised with these in flight
            done.put((item, got if isinstance(got, BaseException) else
                      RuntimeError("the task ended without a result for this item")))

    tasks = [dask.delayed(task, pure=False)(dask_key_name=f"astrocat-stream-{k}")
             for k in range(min(TASK_THREADS, len(items)))]

    def compute() -> None:
        try:
            dask.compute(*tasks, scheduler=_threaded_get(), num_workers=TASK_THREADS)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            done.put(exc)
        while True:  # what no task took: not processed (the next run computes it)
            try:
                done.put((todo.get_nowait(), Stopped("not taken by any task")))
            except queue.Empty:
                break
        done.put(None)

    thread = threading.Thread(target=compute, name="astrocat-dask-threads", daemon=True)
    thread.start()
    try:
        while (got := done.get()) is not None:
            if isinstance(got, BaseException):
                raise got
            yield got
    except BaseException:  # KeyboardInterrupt, GeneratorExit, ...: stop the tasks
        stop.set()
        raise
    thread.join()
