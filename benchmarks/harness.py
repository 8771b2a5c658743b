"""Plumbing of the benchmark harness: sizes, cached data, timed subprocesses with the
peak RSS of their whole process tree, and a description of the machine.

Nothing here imports astrocat's heavy dependencies: the measuring process stays small,
and every workload runs in its own subprocess (the real ``astrocat`` CLI, or
``python -m benchmarks.measure``) so that one measurement's threads, caches and
imports never leak into the next.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DEFAULT_DATA = BENCH / ".data"
#: Simulation seed of the benchmark surveys: not the training seed (0) nor the sample's.
DATA_SEED = 7


@dataclass(frozen=True)
class Size:
    name: str
    images: int  # section 1: JPEGs through `astrocat infer`
    spectra: int  # section 2: rows of the one Parquet table
    fits: int  # section 3: FITS cut-outs
    mem_n: int  # section 4: N (and 10 x N) images
    scaling: int  # section 5: images for 1 vs 2 workers and the existing scheduler
    seed_images: int  # images through the seed-style Keras pipeline
    seed_spectra: int  # spectra through the seed-style Keras pipeline
    seed_fits: int  # FITS cut-outs through the seed-style astropy + Keras pipeline
    sample: int  # items timed one by one for the component limits
    profile_parts: int  # partitions profiled in-process per stage
    min_seconds: float = 1.0  # each model timing pass lasts at least this long
    repeats: int = 3  # FP32 image and FITS runs: the median of this many

    @property
    def galaxies(self) -> int:
        return max(self.images, 10 * self.mem_n, self.scaling, self.seed_images, 10)


SIZES = {
    "tiny": Size("tiny", images=24, spectra=600, fits=16, mem_n=12, scaling=24,
                 seed_images=24, seed_spectra=600, seed_fits=16, sample=16, profile_parts=1,
                 min_seconds=0.05),
    "quick": Size("quick", images=2_000, spectra=52_000, fits=2_000, mem_n=2_000,
                  scaling=2_000, seed_images=2_000, seed_spectra=52_000, seed_fits=2_000,
                  sample=400,
                  profile_parts=2),
    "full": Size("full", images=20_000, spectra=520_000, fits=20_000, mem_n=2_000,
                 scaling=20_000, seed_images=20_000, seed_spectra=520_000, seed_fits=20_000,
                 sample=1_000,
                 profile_parts=4),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    galaxies: list[Path]  # JPEG paths, sorted
    spectra: Path  # the one Parquet table
    lenses: list[Path]  # FITS paths, sorted
    seconds: dict[str, float] = field(default_factory=dict)  # simulation time (0 if cached)


def _simulate(kind: str, n: int, out: Path) -> float:
    """Simulate once into ``out`` (cached: a ``.done`` marker says it is complete)."""
    done = out / ".done"
    if done.is_file() and done.read_text().strip() == str(n):
        return 0.0
    if out.exists():
        shutil.rmtree(out)
    from astrocat.simulate import simulate

    log(f"simulating {n} {kind} into {out} (cached for later runs)")
    t0 = time.perf_counter()
    simulate(kind, n, out, seed=DATA_SEED, progress=False)
    seconds = time.perf_counter() - t0
    done.write_text(str(n))
    return seconds


def prepare_data(size: Size, data_dir: Path) -> Data:
    data_dir.mkdir(parents=True, exist_ok=True)
    g = data_dir / f"galaxies-{size.galaxies}"
    s = data_dir / f"spectra-{size.spectra}"
    f = data_dir / f"lenses-{size.fits}"
    seconds = {
        "galaxies": _simulate("galaxies", size.galaxies, g),
        "spectra": _simulate("spectra", size.spectra, s),
        "lenses": _simulate("lenses", size.fits, f),
    }
    return Data(
        galaxies=sorted(g.glob("*.jpg")),
        spectra=s / "spectra.parquet",
        lenses=sorted(f.glob("*.fits")),
        seconds=seconds,
    )


def write_list(paths: list[Path], dest: Path) -> str:
    """An ``@list.txt`` input spec (absolute paths, one per line)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(f"{p.resolve()}\n" for p in paths))
    return f"@{dest}"


def byte_compile() -> str:
    """astrocat's modules compiled to bytecode before any timing, as ``pip install`` does
    for a wheel and Python on an editable install's first import. Where the environment
    sets ``PYTHONDONTWRITEBYTECODE`` (this sandbox does) nothing would be cached, and
    every timed process would compile the package from source again: 0.15-0.2 s of a
    10-file run (2026-12-07), which no user's second run pays. Returns the header's words."""
    import compileall

    import astrocat

    ok = compileall.compile_dir(Path(astrocat.__file__).parent, quiet=1)
    how = ("astrocat's modules byte-compiled before timing" + ("" if ok else
           " (some failed: those compile from source in every run)"))
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        how += " (this machine sets PYTHONDONTWRITEBYTECODE, so Python would not cache them)"
    return how


def warm_cache(paths: list[Path]) -> None:
    """Read every file once so all runs see the same (warm) page cache."""
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 20):
                pass


# ------------------------------------------------------------------ process trees


class TreeSampler:
    """Peak of the summed RSS of a process and all its descendants, sampled in a thread
    every ``interval`` seconds (Dask's worker processes included), and the CPU time each
    of them had used when last seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_by_process: dict[str, int] = {}  # what made up the peak
        self.cpu_by_process: dict[str, float] = {}  # CPU seconds, last seen
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> dict[str, int]:
        by_process: dict[str, int] = {}
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return by_process
        for p in procs:
            try:
                name = f"{p.pid} {_role(p, self.root)}"
                with p.oneshot():
                    by_process[name] = p.memory_info().rss
                    t = p.cpu_times()
                self.cpu_by_process[name] = t.user + t.system
            except psutil.Error:
                pass  # exited between listing and reading
        return by_process

    def _run(self) -> None:
        while not self._stop.is_set():
            by_process = self._sample()
            rss = sum(by_process.values())
            if rss > self.peak:
                self.peak, self.peak_by_process = rss, by_process
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


_roles: dict[int, str] = {}


def _role(p: psutil.Process, root: psutil.Process) -> str:
    """A short name for a process of an ``astrocat infer`` tree."""
    if p.pid == root.pid:
        return "driver"
    if p.pid in _roles:
        return _roles[p.pid]
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return "?"
    if "forkserver" in cmd or "resource_tracker" in cmd:
        role = "multiprocessing helper"
    elif "spawn_main" in cmd or "--multiprocessing-fork" in cmd:
        role = "dask worker"
    else:
        role = cmd[:40]
    _roles[p.pid] = role
    return role


def _busy_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, getattr(t, "steal", 0.0)


def _process_cpu() -> dict[tuple[int, float], float]:
    """CPU seconds used so far by every process, keyed by (pid, create time)."""
    out = {}
    for p in psutil.process_iter(["pid", "create_time", "cpu_times"]):
        t = p.info.get("cpu_times")
        if t is not None:
            out[(p.info["pid"], p.info["create_time"])] = t.user + t.system
    return out


def _other_cpu(before: dict, after: dict, exclude: set[int]) -> float:
    """CPU seconds that processes outside ``exclude`` used between two snapshots
    (processes that both started and ended in between are not seen)."""
    return sum(cpu - before.get(key, 0.0) for key, cpu in after.items()
               if key[0] not in exclude)


@dataclass
class Timed:
    cmd: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int = 0
    rss_samples: int = 0
    peak_by_process: dict = field(default_factory=dict)
    cpu_by_process: dict = field(default_factory=dict)
    machine_cpu: float = 0.0  # busy CPU seconds of the whole machine during the run
    other_cpu: float = 0.0  # of which neither the run's tree nor this harness
    steal: float = 0.0  # CPU seconds the hypervisor took
    context_switches: int = 0  # of the run's tree, every thread (voluntary + not)
    involuntary_switches: int = 0  # of which the kernel preempted a runnable thread


def timed_run(cmd: list[str], *, sample_rss: bool = False, env: dict | None = None,
              timeout: float | None = None, helpers: tuple[int, ...] = ()) -> Timed:
    """Run ``cmd``; wall time from spawn to exit, the peak RSS of its tree, and how much
    CPU other processes took meanwhile (a disturbed measurement shows there). ``helpers``:
    pids of processes that are part of the measurement (an existing Dask cluster's), with
    their descendants; their CPU is not counted as a disturbance."""
    busy0, steal0 = _busy_cpu()
    procs0 = _process_cpu()
    me0 = psutil.Process().cpu_times()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    sampler = TreeSampler(proc.pid) if sample_rss else None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"timed out after {timeout}s: {' '.join(cmd)}") from None
    finally:
        peak = sampler.stop() if sampler else 0
    seconds = time.perf_counter() - t0
    voluntary, involuntary = switches_between(
        children0, resource.getrusage(resource.RUSAGE_CHILDREN))
    busy1, steal1 = _busy_cpu()
    tree = {int(k.split()[0]) for k in (sampler.cpu_by_process if sampler else {})}
    for pid in helpers:
        try:
            h = psutil.Process(pid)
            tree |= {pid, *(c.pid for c in h.children(recursive=True))}
        except psutil.Error:
            pass
    procs1 = _process_cpu()
    other = _other_cpu(procs0, procs1, tree | {os.getpid(), proc.pid})
    me1 = psutil.Process().cpu_times()
    if sampler:
        # short-lived processes escape the snapshots: count what the machine did beyond
        # this tree, its helpers and this harness too, and keep the larger estimate
        sampled = {int(k.split()[0]) for k in sampler.cpu_by_process}
        helper_cpu = sum(cpu - procs0.get(key, 0.0) for key, cpu in procs1.items()
                         if key[0] in tree and key[0] not in sampled)
        own = (sum(sampler.cpu_by_process.values()) + helper_cpu
               + (me1.user + me1.system - me0.user - me0.system))
        other = max(other, (busy1 - busy0) - own)
    return Timed(cmd, seconds, proc.returncode, out, err, peak,
                 sampler.samples if sampler else 0,
                 sampler.peak_by_process if sampler else {},
                 sampler.cpu_by_process if sampler else {},
                 busy1 - busy0, max(0.0, other), steal1 - steal0,
                 voluntary + involuntary, involuntary)


def switches_between(before, after) -> tuple[int, int]:
    """(voluntary, involuntary) context switches between two ``getrusage`` readings:
    the kernel's sums over every thread (``RUSAGE_SELF``: this process;
    ``RUSAGE_CHILDREN``: the children reaped meanwhile, with the worker processes they
    waited for). ``/proc/PID/status`` (psutil's ``num_ctx_switches``) counts only a
    process's main thread, a hundredth of an astrocat run's switches, which all happen on
    its decoder, engine and task threads."""
    return after.ru_nvcsw - before.ru_nvcsw, after.ru_nivcsw - before.ru_nivcsw


def wait_idle(max_wait: float = 900.0, threshold: float = 0.15) -> float:
    """Wait until the machine is idle (busy below ``threshold`` of all cores over 2 s),
    at most ``max_wait`` seconds; return the seconds waited. Another session's tests or
    training would otherwise land in the measurements."""
    t0 = time.perf_counter()
    told = False
    while True:
        if psutil.cpu_percent(interval=2.0) / 100.0 < threshold:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > max_wait:
            log(f"machine still busy after {max_wait:.0f} s; measuring anyway")
            return time.perf_counter() - t0
        if not told:
            log("machine busy (other processes); waiting for it to go idle")
            told = True
        time.sleep(3.0)


def astrocat_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("astrocat")
    return [str(exe)] if exe.exists() else [sys.executable, "-c",
                                           "from astrocat.cli import main; main()"]


def measure(task: str, *args: str, timeout: float | None = None) -> dict:
    """Run ``python -m benchmarks.measure TASK ARGS`` and return the JSON it prints."""
    cmd = [sys.executable, "-m", "benchmarks.measure", task, *args]
    if task != "commit":
        wait_idle()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": _pythonpath()}
    r = timed_run(cmd, env=env, timeout=timeout, sample_rss=task.startswith("seed-"))
    if r.returncode != 0:
        raise RuntimeError(f"measure {task} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if isinstance(out, dict):  # the whole process, imports and model load included
        out["process_seconds"] = r.seconds
        if r.peak_rss:
            out["process_peak_rss"] = r.peak_rss
    return out


def _pythonpath() -> str:
    parts = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.pathsep.join(parts)


# ------------------------------------------------------------------ astrocat infer


@dataclass
class InferRun:
    label: str
    n_items: int
    seconds: float
    peak_rss: int
    rows: int
    errors: int
    n_parts: int
    part_seconds: float  # summed worker-side time of all partitions
    workers: int  # distinct workers that ran parts
    execution: str
    cmd: str
    peak_by_process: dict = field(default_factory=dict)
    cpu_by_process: dict = field(default_factory=dict)
    other_cpu: float = 0.0  # CPU seconds taken by other processes during the run
    steal: float = 0.0
    machine_cpu: float = 0.0  # busy CPU seconds of the whole machine during the run
    waited_idle: float = 0.0  # seconds waited beforehand for other processes to finish
    commit_seconds: float | None = None  # the driver's commit, timed again on the parts
    attempts: int = 1
    repeat_seconds: list = field(default_factory=list)  # every run's, when the median is kept
    context_switches: int = 0  # of the whole process tree, every thread (GIL hand-offs)
    involuntary_switches: int = 0  # of which preemptions (more busy threads than cores)

    @property
    def rate(self) -> float:
        return self.n_items / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


def middle(items, key=None):
    """The median element of ``items`` by ``key`` (the upper one of an even count): the
    harness reports the run or pair in the middle, never an average of two."""
    ordered = sorted(items, key=key)
    return ordered[len(ordered) // 2]


#: A run during which other processes took more than this share of the machine is redone.
DISTURBED = 0.05


def run_infer(label: str, inputs: str, n_items: int, work: Path, *extra: str,
              env: dict | None = None, time_commit: bool = False,
              helpers: tuple[int, ...] = ()) -> InferRun:
    """``astrocat infer --quiet`` into a fresh catalog (no part reused), timed and sampled.

    If other processes took more than :data:`DISTURBED` of the machine meanwhile, the run
    is done once more and the less disturbed one kept.
    """
    best = None
    for attempt in (1, 2):
        waited = wait_idle()
        run = _infer_once(label, inputs, n_items, work, extra, env, time_commit, helpers)
        run.waited_idle = waited
        run.attempts = attempt
        if best is None or run.other_cpu < best.other_cpu:
            best = run
        if run.other_cpu <= DISTURBED * run.seconds * psutil.cpu_count():
            break
        log(f"  {label}: other processes took {run.other_cpu:.1f} CPU-s; running it again")
    return best


def _infer_once(label: str, inputs: str, n_items: int, work: Path, extra: tuple,
                env: dict | None, time_commit: bool, helpers: tuple[int, ...]) -> InferRun:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = work / "catalogs" / f"{label}.parquet"
    parts = out.with_name(out.name + ".parts")
    shutil.rmtree(parts, ignore_errors=True)
    out.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*astrocat_cmd(), "infer", "--quiet", "--input", inputs, "--out", str(out), *extra]
    log(f"infer {label}: {n_items} items")
    r = timed_run(cmd, sample_rss=True, env=env, helpers=helpers)
    if r.returncode != 0:
        raise RuntimeError(f"astrocat infer ({label}) exited {r.returncode}:\n{r.stderr[-3000:]}")
    status = pq.read_table(out, columns=["status"]).column("status")
    rows = len(status)
    errors = int(pc.sum(pc.equal(status, "error")).as_py() or 0)
    if rows != n_items or errors:
        raise RuntimeError(f"infer {label}: {rows} rows, {errors} errors; expected {n_items}, 0")
    manifest = json.loads((parts / "manifest.json").read_text())
    part_seconds = 0.0
    for name in manifest["parts"]:
        meta = pq.read_schema(parts / name).metadata or {}
        part_seconds += json.loads(meta[b"astrocat_part"]).get("seconds", 0.0)
    commit_seconds = None
    if time_commit:
        commit_seconds = measure("commit", "--parts-dir", str(parts), "--catalog",
                                 str(out))["seconds"]
    run = InferRun(label, n_items, r.seconds, r.peak_rss, rows, errors, len(manifest["parts"]),
                   part_seconds, len(manifest["workers"]), manifest.get("execution", ""),
                   " ".join(["astrocat", *cmd[len(astrocat_cmd()):]]), r.peak_by_process,
                   r.cpu_by_process, r.other_cpu, r.steal, commit_seconds=commit_seconds,
                   machine_cpu=r.machine_cpu, context_switches=r.context_switches,
                   involuntary_switches=r.involuntary_switches)
    log(f"  {label}: {r.seconds:.1f}s, {run.rate:.0f}/s, peak RSS {r.peak_rss / 2**20:.0f} MiB,"
        f" other processes {r.other_cpu:.1f} CPU-s")
    # the catalog and parts are not needed any more: keep the disk small
    shutil.rmtree(parts, ignore_errors=True)
    out.unlink(missing_ok=True)
    return run


# ------------------------------------------------------------------ the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """HEAD's commit read from .git (no git command is run)."""
    git = ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(None, 1)[1]
        ref_file = git / ref
        if ref_file.is_file():
            return f"{ref_file.read_text().strip()} ({ref.rsplit('/', 1)[-1]})"
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return f"{line.split()[0]} ({ref.rsplit('/', 1)[-1]})"
        return f"(no commit yet on {ref})"
    except OSError:
        return "unknown"


def machine() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        if name == "astrocat":  # the code's own, not an editable install's stale metadata
            from astrocat import __version__

            return __version__
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    from astrocat.models.zoo import instruction_sets
    from astrocat.pipeline.cluster import machine_cores

    return {
        "cores": machine_cores(),
        "logical_cpus": psutil.cpu_count(logical=True),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "cpu_model": _cpu_model(),
        # what INT8 kernels can use here (avx2 alone: no VNNI)
        "int8_instruction_sets": list(instruction_sets() or ()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {n: v(n) for n in ("astrocat", "onnxruntime", "tensorflow", "keras",
                                       "numpy", "pillow", "pyarrow", "astropy", "distributed")},
        "load_at_start": os.getloadavg()[0],
        "models": models(),
        "busy_with": _busy(),
    }


def models() -> dict[str, str]:
    """Each bundled model's version and the sha256 of its ONNX weights (what ran)."""
    from astrocat.models.zoo import bundled

    return {name: f"{c.version}, onnx sha256 {c.sha256.get('onnx', '-')[:12]}"
            for name, c in bundled().items()}


def _busy() -> list[str]:
    """Other CPU-heavy astrocat processes (e.g. training) that would distort timings."""
    found = []
    me = os.getpid()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if p.info["pid"] != me and "astrocat train" in cmd:
            found.append(cmd[:120])
    return found
