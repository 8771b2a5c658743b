"""The GPU path end to end in one script, for a freshly lent GPU machine (<= 8 minutes):

    python -m benchmarks.gpu_check --pack wheels/      # here: wheels that machine lacks
    python -m benchmarks.gpu_check --wheels wheels/ --out gpu-results/   # on the GPU
    python -m benchmarks.gpu_check --dry-run --out /tmp/gc   # anywhere, no GPU figure

It writes ``OUT/gpu_check.json`` (every figure) and ``OUT/gpu_check.md`` (a table; the
simulated JPEGs and catalogs stay in ``--work``). Each of ``STEPS`` is timed and guarded,
one failure never stopping the rest, within ``--budget-s``, and recorded as ``ok``,
``failed`` (the error), ``skipped`` (the reason) or ``dry-run`` (``WHAT`` it would
measure on a GPU). Without a CUDA device, or with ``--dry-run``, it runs what honestly
runs on a CPU at a tiny size, labelled ``CPU_LABEL``, under ``DRY_BANNER``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import harness

STEPS = ("wheels", "environment", "data", "decode_parity", "decode_throughput",
         "engine_parity", "engine_alone", "end_to_end")
STATUSES = ("ok", "failed", "skipped", "dry-run")
#: Steps whose figures are GPU figures (the others describe the machine or make data).
GPU_STEPS = frozenset(STEPS[3:])
DRY_BANNER = "DRY RUN on a machine without a GPU: no GPU figure here"
CPU_LABEL = "cpu (dry run), not a GPU figure"
WHAT = {
    "wheels": "installs the carried wheels (--wheels) that this machine lacks, offline",
    "environment": "Python, cores, package versions, CUDA devices, nvidia-smi, and which "
                   "of astrocat's dependencies are missing",
    "data": "simulates the galaxy JPEGs the other steps read (cached in the work dir)",
    "decode_parity": "1,024 JPEGs through sources.gpu_decode on cuda against the CPU path "
                     "(images.read_rgb + preprocess.prepare): max/mean abs difference of "
                     "the network input, and of gz2-cnn's outputs on ONNX Runtime",
    "decode_throughput": "images/s of gpu_decode (nvJPEG + crop/resize/scale, batches of "
                         "256, bytes in memory, synchronised) against the CPU path on all "
                         "cores (thread pool), and their ratio",
    "engine_parity": "every bundled FP32 model on the torch engine (cuda) against ONNX "
                     "Runtime on the CPU, same in-domain inputs: max abs diff per head",
    "engine_alone": "items/s of the torch engine on cuda (gz2-cnn, batches of 256 and "
                    "1,024, device-resident and host-to-host) against ONNX Runtime on all "
                    "CPU cores; ratio",
    "end_to_end": "astrocat infer on the N JPEGs with --engine torch --decode gpu (one "
                  "Dask worker per GPU) against --engine onnxruntime, fresh catalogs: "
                  "wall s, items/s, ratio, rows, error rows, max abs diff of the outputs",
}
MODEL = "gz2-cnn"
BATCH = 256
PARITY_N = 1024
THROUGHPUT_N = 4096
DRY_N = 16
MIN_SECONDS = 2.0  # each throughput figure is timed over at least this long


class Skip(Exception):
    """The step cannot run here; the message says why."""


@dataclass
class Ctx:
    out: Path
    work: Path
    n: int
    budget_s: float
    dry_run: bool
    why_dry: str = ""
    wheels: Path | None = None
    t0: float = field(default_factory=time.perf_counter)
    jpegs: list[Path] = field(default_factory=list)

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"

    def label(self) -> str:
        if self.dry_run:
            return CPU_LABEL
        import torch

        return f"cuda:0 ({torch.cuda.get_device_name(0)})"

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)


def _need(*modules: str):
    """Import ``modules`` (the first is returned), or Skip naming what is missing."""
    try:
        return [importlib.import_module(m) for m in modules][0]
    except ImportError as exc:
        raise Skip(f"{exc.name or exc} is not importable here") from exc


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _rate(fn, items: int, min_seconds: float = MIN_SECONDS) -> float:
    """Items/s of ``fn`` (one call handles ``items``), after one warm-up call."""
    fn()
    t0, calls = time.perf_counter(), 0
    while calls < 2 or time.perf_counter() - t0 < min_seconds:
        fn()
        calls += 1
    return items * calls / (time.perf_counter() - t0)


def _sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _cores() -> int:
    from astrocat.pipeline.cluster import machine_cores

    return machine_cores()


def _cpu_prepare(paths: list[Path], spec):
    """The CPU path for a batch: libjpeg-turbo/Pillow decode, crop, resize, then scale."""
    import numpy as np

    from astrocat.kernels.preprocess import prepare
    from astrocat.sources.images import read_rgb

    return prepare(np.stack([read_rgb(str(p), spec.image_size[0], spec.crop_fraction,
                                      spec.zoom, spec.resize_filter, spec.antialias)
                             for p in paths]), spec)


def _in_domain(card, n: int, seed: int = 3):
    """Inputs of the card's kind, prepared as the readers would (``models check``'s)."""
    from astrocat.kernels.preprocess import prepare
    from astrocat.models.check import _synthetic

    return prepare(_synthetic(card, n, seed), card.input)


# ----------------------------------------------------------------------------- steps


def step_wheels(ctx: Ctx) -> dict:
    if ctx.wheels is None:
        raise Skip("no --wheels given")
    return install_wheels(ctx.wheels, ctx.work / "site")


def step_environment(ctx: Ctx) -> dict:
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "missing"

    deps = tomllib.loads((harness.ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*deps["dependencies"], *deps["optional-dependencies"]["torch"]]
    names = [re.split(r"[\s;\[<>=!~]", d)[0] for d in wanted]
    env = {"python": platform.python_version(), "executable": sys.executable,
           "platform": platform.platform(), "cores": os.cpu_count(),
           "dry_run_because": ctx.why_dry or None,
           "versions": {n: v(n) for n in ("torch", "torchvision", "onnxruntime", "onnx2torch",
                                          "onnx", "pyarrow", "dask", "distributed",
                                          "dask-cuda", "numpy", "pillow")},
           "cupy": next((f"{n} {v(n)}" for n in ("cupy", "cupy-cuda13x", "cupy-cuda12x")
                         if v(n) != "missing"), "missing"),
           "astrocat_missing_dependencies": [n for n in names if v(n) == "missing"],
           "ASTROCAT_TORCH_DEVICE": os.environ.get("ASTROCAT_TORCH_DEVICE")}
    try:
        import torch

        env["cuda_available"] = torch.cuda.is_available()
        env["cuda_devices"] = [torch.cuda.get_device_name(i)
                               for i in range(torch.cuda.device_count())]
        env["torch_cuda"] = torch.version.cuda
    except ImportError:
        env["cuda_available"], env["cuda_devices"] = False, []
    if shutil.which("nvidia-smi"):
        r = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        env["nvidia_smi"] = (r.stdout or r.stderr)[-4000:]
    else:
        env["nvidia_smi"] = "not on PATH"
    return env


def step_data(ctx: Ctx) -> dict:
    folder = ctx.work / f"galaxies-{ctx.n}"
    seconds = harness._simulate("galaxies", ctx.n, folder)  # noqa: SLF001 - cached
    ctx.jpegs = sorted(folder.glob("*.jpg"))[:ctx.n]
    if len(ctx.jpegs) != ctx.n:
        raise RuntimeError(f"{len(ctx.jpegs)} JPEGs simulated in {folder}, {ctx.n} wanted")
    return {"jpegs": ctx.n, "folder": str(folder), "simulated_s": round(seconds, 1)}


def step_decode_parity(ctx: Ctx) -> dict:
    import numpy as np

    _need("torch", "torchvision")
    from astrocat.engines.base import open_engine
    from astrocat.models.zoo import bundled
    from astrocat.sources import gpu_decode
    from astrocat.sources.images import read_bytes

    if not ctx.jpegs:
        raise Skip("no JPEGs (the data step did not run)")
    card = bundled()[MODEL]
    paths = ctx.jpegs[:PARITY_N]
    cpu = np.concatenate([_cpu_prepare(c, card.input) for c in _chunks(paths, BATCH)])
    gpu = np.concatenate([gpu_decode.decode_and_prepare([read_bytes(p) for p in c],
                                                        card.input, ctx.device).cpu().numpy()
                          for c in _chunks(paths, BATCH)])
    d = np.abs(gpu - cpu)
    ort = open_engine(card, "onnxruntime", threads=_cores())
    out = np.abs(np.concatenate([ort.predict(g) - ort.predict(c) for g, c in
                                 zip(_chunks(gpu, BATCH), _chunks(cpu, BATCH), strict=True)]))
    unit = 255.0 if card.input.preprocessing.startswith("scale_255") else 1.0
    return {"device": ctx.label(), "images": len(paths), "model": MODEL,
            "input_max_abs": float(d.max()), "input_mean_abs": float(d.mean()),
            "input_max_levels": float(d.max() * unit), "values_differing": float((d > 0).mean()),
            "output_max_abs": float(out.max()), "output_mean_abs": float(out.mean())}


def step_decode_throughput(ctx: Ctx) -> dict:
    if ctx.dry_run:
        raise Skip("a decode throughput measured on a CPU is not the figure this step is for")
    torch = _need("torch", "torchvision")
    from astrocat.models.zoo import bundled
    from astrocat.sources import gpu_decode
    from astrocat.sources.images import read_bytes

    spec = bundled()[MODEL].input
    paths = ctx.jpegs[:THROUGHPUT_N]
    batches = _chunks([read_bytes(p) for p in paths], BATCH)

    def gpu_pass(prepare: bool = True) -> None:
        for b in batches:
            if prepare:
                gpu_decode.decode_and_prepare(b, spec, ctx.device)
            else:
                gpu_decode.decode(b, ctx.device)
        _sync(torch)

    harness.warm_cache(paths)
    cores = _cores()
    with ThreadPoolExecutor(cores) as pool:
        def cpu_pass() -> None:
            list(pool.map(lambda c: _cpu_prepare(c, spec), _chunks(paths, 32)))

        cpu = _rate(cpu_pass, len(paths))
    gpu = _rate(gpu_pass, len(paths))
    return {"device": ctx.label(), "images": len(paths), "gpu_per_s": gpu,
            "gpu_decode_only_per_s": _rate(lambda: gpu_pass(False), len(paths)),
            "cpu_per_s": cpu, "cpu_threads": cores, "ratio": gpu / cpu,
            "note": "CPU path reads the files (page cache warm); the GPU's bytes are in memory"}


def step_engine_parity(ctx: Ctx) -> dict:
    import numpy as np

    _need("torch", "torchvision", "onnx2torch")
    from astrocat.engines.base import open_engine
    from astrocat.models.zoo import bundled

    result: dict = {"device": ctx.label(), "models": {}, "errors": []}
    for name, card in sorted(bundled().items()):
        if card.raw.get("quantization") or "onnx" not in card.files:
            continue  # INT8 graphs: the torch engine refuses them (onnx2torch)
        try:
            x = _in_domain(card, 8 if ctx.dry_run else 64)
            ref = open_engine(card, "onnxruntime", threads=_cores()).run(x)
            got = open_engine(card, "torch", threads=_cores(),
                              device=-1 if ctx.dry_run else 0).run(x)
            result["models"][name] = {
                head: float(np.abs(getattr(got, head) - getattr(ref, head)).max())
                for head in ("values", "features", "logits") if getattr(ref, head) is not None}
        except Exception as exc:  # noqa: BLE001 - one model's failure, recorded
            result["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
    return {k: v for k, v in result.items() if v}


def step_engine_alone(ctx: Ctx) -> dict:
    if ctx.dry_run:
        raise Skip("engine items/s measured on a CPU are not the figure this step is for")
    torch = _need("torch", "torchvision", "onnx2torch")
    from astrocat.engines.base import open_engine
    from astrocat.models.zoo import bundled

    card = bundled()[MODEL]
    engine = open_engine(card, "torch", device=0)
    ort = open_engine(card, "onnxruntime", threads=_cores())
    out: dict = {"device": ctx.label(), "model": MODEL}
    x = _in_domain(card, BATCH)
    out["onnxruntime_cpu_per_s"] = _rate(lambda: ort.predict(x), BATCH)
    for batch in (256, 1024):
        xb = _in_domain(card, batch)
        xd = torch.from_numpy(xb).to(engine.device)

        def resident(xd=xd) -> None:
            engine.forward(xd)
            _sync(torch)

        out[f"torch_cuda_per_s_b{batch}"] = _rate(resident, batch)
        out[f"torch_cuda_host_to_host_per_s_b{batch}"] = _rate(lambda xb=xb: engine.run(xb),
                                                               batch)
    out["ratio_b1024"] = out["torch_cuda_per_s_b1024"] / out["onnxruntime_cpu_per_s"]
    return out


def _infer(ctx: Ctx, label: str, inputs: str, n: int, *extra: str) -> dict:
    """One ``astrocat infer`` into a fresh catalog, timed; its rows and where it ran."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = ctx.work / "catalogs" / f"{label}.parquet"
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    out.unlink(missing_ok=True)
    cmd = [*harness.astrocat_cmd(), "infer", "--quiet", "--input", inputs, "--out", str(out),
           "--model", MODEL, *extra]
    env = {**os.environ, "PYTHONPATH": harness._pythonpath()}  # noqa: SLF001
    r = harness.timed_run(cmd, env=env, timeout=max(1.0, ctx.left()))
    if not out.is_file():
        raise RuntimeError(f"astrocat infer ({label}) exited {r.returncode}: "
                           f"{r.stderr.strip()[-1500:]}")
    status = pq.read_table(out, columns=["status"]).column("status")
    manifest = json.loads((out.with_name(out.name + ".parts") / "manifest.json").read_text())
    return {"cmd": " ".join(["astrocat", *cmd[len(harness.astrocat_cmd()):]]),
            "exit": r.returncode, "seconds": r.seconds, "per_s": n / r.seconds,
            "rows": len(status), "error_rows": int(pc.sum(pc.equal(status, "error")).as_py()
                                                    or 0),
            "execution": manifest.get("execution", ""), "workers": len(manifest["workers"]),
            "catalog": str(out)}


def _agreement(a: str, b: str, columns: list[str]) -> float:
    import numpy as np
    import pyarrow.parquet as pq

    ta, tb = (pq.read_table(p).sort_by("source") for p in (a, b))
    if ta.column("source").to_pylist() != tb.column("source").to_pylist():
        raise RuntimeError("the two catalogs hold different sources")
    return max(float(np.nanmax(np.abs(ta[c].to_numpy() - tb[c].to_numpy())))
               for c in columns)


def step_end_to_end(ctx: Ctx) -> dict:
    from astrocat.models.zoo import bundled

    if not ctx.jpegs:
        raise Skip("no JPEGs (the data step did not run)")
    inputs = harness.write_list(ctx.jpegs, ctx.work / "inputs.txt")
    n = len(ctx.jpegs)
    res: dict = {"device": ctx.label(), "items": n}
    runs = {"cpu": ("--engine", "onnxruntime")}
    if not ctx.dry_run:  # the GPU first: it is what this step is for
        runs = {"gpu": ("--engine", "torch", "--decode", "gpu"), **runs}
    errors = []
    for label, extra in runs.items():
        try:  # one failing run still leaves the other's figures
            r = res[label] = _infer(ctx, label, inputs, n, *extra)
        except Exception as exc:  # noqa: BLE001 - recorded
            errors.append(f"{label}: {exc}")
            continue
        if r["rows"] != n or r["error_rows"] or r["exit"]:
            errors.append(f"{label}: {r['rows']} rows of {n}, {r['error_rows']} error rows, "
                          f"exit {r['exit']}")
    if "gpu" in res and "one per GPU" not in res["gpu"]["execution"]:
        errors.append(f"gpu: not one Dask worker per GPU ({res['gpu']['execution']})")
    if "gpu" in res and "cpu" in res:
        res["ratio"] = res["gpu"]["per_s"] / res["cpu"]["per_s"]
        cols = [o.name for o in bundled()[MODEL].outputs]
        res["outputs_max_abs_diff"] = _agreement(res["gpu"]["catalog"],
                                                 res["cpu"]["catalog"], cols)
    return {**res, "errors": errors} if errors else res


# ----------------------------------------------------------------------------- running


def run_step(ctx: Ctx, name: str) -> dict:
    rec: dict = {"name": name, "measures": WHAT[name], "gpu_figure": False}
    if ctx.left() <= 0:
        rec.update(status="skipped", seconds=0.0, reason=f"time budget of {ctx.budget_s:.0f}"
                   f" s used up after {time.perf_counter() - ctx.t0:.0f} s")
        return rec
    harness.log(f"gpu_check: {name}")
    t0 = time.perf_counter()
    try:
        rec["result"] = globals()[f"step_{name}"](ctx)
        if rec["result"].get("errors"):
            rec.update(status="failed", error="; ".join(rec["result"]["errors"]))
        elif ctx.dry_run and name in GPU_STEPS:
            rec["status"] = "dry-run"
        else:
            rec["status"] = "ok"
            rec["gpu_figure"] = name in GPU_STEPS
    except Skip as exc:
        rec.update(status="dry-run" if ctx.dry_run and name in GPU_STEPS else "skipped",
                   reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded; the next step still runs
        rec.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc()[-3000:])
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    return rec


#: Result keys left out of the Markdown (they are in the JSON).
QUIET = frozenset({"device", "nvidia_smi", "folder", "catalog", "executable", "platform"})


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()
                               if k not in QUIET) + "}"
    return str(value)


def _cell(rec: dict) -> str:
    """A step's figures in one table cell (nested runs and long text left to the JSON)."""
    res = {k: v for k, v in rec.get("result", {}).items() if k not in QUIET | {"errors"}}
    figures = "; ".join(f"{k} {_fmt(v)}" for k, v in res.items())
    why = rec.get("reason") or rec.get("error", "")
    if rec["status"] == "dry-run":
        text = f"would measure: {rec['measures']}. " + (f"Ran: {figures}" if figures
                                                        else f"Not run: {why}")
    else:
        text = ". ".join(filter(None, [why, figures]))
    return text.replace("|", "/").replace("\n", " ")[:900]


def write_report(ctx: Ctx, steps: list[dict]) -> dict:
    report = {"dry_run": ctx.dry_run, "why_dry_run": ctx.why_dry, "n": ctx.n,
              "budget_s": ctx.budget_s, "seconds": round(time.perf_counter() - ctx.t0, 1),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": harness.git_commit(),
              "steps": steps}
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    lines = [f"**{DRY_BANNER}** ({ctx.why_dry}).\n" if ctx.dry_run else "",
             "# astrocat GPU check\n",
             f"{report['date']}, commit {report['commit']}, {ctx.n} JPEGs, "
             f"{report['seconds']} s of a {ctx.budget_s:.0f} s budget. Every figure is in "
             "`gpu_check.json`.\n",
             "| step | status | s | device | figures, or why not |", "|---|---|---|---|---|"]
    for s in steps:
        device = s.get("result", {}).get("device", "")
        lines.append(f"| {s['name']} | {s['status']} | {s.get('seconds', 0):.1f} | {device} "
                     f"| {_cell(s)} |")
    (ctx.out / "gpu_check.md").write_text("\n".join(lines).lstrip() + "\n")
    return report


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# ----------------------------------------------------------------------------- wheels

#: What ``--pack`` fetches, most needed first: the lent GPU machine's image (PyTorch,
#: CuPy, CPU ONNX Runtime; Python 3.12) lacked the first group when its package list was
#: last read (2026-11); the rest are astrocat's other dependencies, packed while the
#: budget allows, for a machine that lacks them too.
PACK = ("onnx2torch", "dask", "distributed", "partd", "locket", "tblib", "zict", "tornado",
        "simplejpeg", "tomli-w", "pyerfa", "astropy-iers-data", "astropy",
        "click", "rich", "markdown-it-py", "mdurl", "pygments", "cloudpickle", "toolz",
        "fsspec", "sortedcontainers", "msgpack", "pyyaml", "psutil", "jinja2", "markupsafe",
        "packaging", "protobuf", "onnx", "pandas", "python-dateutil", "six", "tzdata",
        "scikit-learn", "joblib", "threadpoolctl", "duckdb", "matplotlib", "scipy",
        "pyarrow")
#: The wheels' budget: a lent machine takes 64 MiB in all, and the repository without its
#: ``.keras`` weights (no TensorFlow there; see :func:`tree_bytes`) is ~47 MiB of it.
PACK_MIB = 12.0
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def _pinned(name: str) -> str:
    """``name==version`` of the version installed here (tested with astrocat), else name."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name}=={version(name)}"
    except PackageNotFoundError:
        return name


def pip_download(req: str, dest: Path, python_version: str = "3.12") -> Path:
    """One wheel (no dependencies) for CPython ``python_version`` on x86-64 Linux."""
    base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "--python-version", python_version, "--implementation", "cp",
            *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest)]
    for attempt in dict.fromkeys([req, req.split("==")[0]]):  # pinned, then any version
        r = subprocess.run([*base, attempt], capture_output=True, text=True, timeout=600)
        wheels = list(dest.glob("*.whl"))
        if r.returncode == 0 and wheels:
            return wheels[0]
    raise RuntimeError((r.stderr.strip().splitlines() or ["no wheel"])[-1])


def pack(dest: Path, budget_mib: float = PACK_MIB, names: tuple[str, ...] = PACK,
         download=pip_download) -> dict:
    """Download ``names`` in order into ``dest``, leaving out any wheel that would take the
    total past ``budget_mib``; ``dest/MANIFEST.txt`` says what is in and what was not."""
    dest.mkdir(parents=True, exist_ok=True)
    budget, total = int(budget_mib * 2**20), 0
    kept: list[tuple[str, int]] = []
    left: list[tuple[str, str]] = []
    for name in names:
        req = _pinned(name)
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            try:
                wheel = download(req, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - recorded in the manifest
                left.append((req, f"not downloaded ({exc})"))
                continue
            size = wheel.stat().st_size
            if total + size > budget:
                left.append((wheel.name, f"{size / 2**20:.1f} MiB would take the total past "
                             f"the {budget_mib:g} MiB budget"))
                continue
            shutil.move(wheel, dest / wheel.name)
            total += size
            kept.append((wheel.name, size))
    tree = tree_bytes()
    lines = [f"# astrocat GPU check wheels: {total / 2**20:.1f} MiB of a {budget_mib:g} MiB "
             "budget", "# install: python -m benchmarks.gpu_check --wheels THIS_DIR --out DIR",
             f"# the repository's tracked files but the .keras weights (leave them behind: "
             f"no TensorFlow there): {tree / 2**20:.1f} MiB; with these wheels "
             f"{(tree + total) / 2**20:.1f} MiB to carry" if tree else "# (no git here)",
             "", "## in", *(f"{n}  {s / 2**20:.2f} MiB" for n, s in kept), "", "## left out",
             *(f"{n}  {why}" for n, why in left)]
    (dest / "MANIFEST.txt").write_text("\n".join(lines) + "\n")
    return {"kept": kept, "left_out": left, "total": total}


def tree_bytes() -> int:
    """Bytes of the repository's tracked files that travel to a lent machine with the
    wheels: all but the ``.keras`` weights (TensorFlow's, ~33 MB; the GPU check runs the
    ONNX graphs), 0 where git cannot say."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=harness.ROOT, check=True,
                               capture_output=True, timeout=60).stdout.split(b"\0")
    except (OSError, subprocess.SubprocessError):
        return 0
    paths = (harness.ROOT / os.fsdecode(n) for n in names if n)
    return sum(p.stat().st_size for p in paths if p.is_file() and p.suffix != ".keras")


def install_wheels(folder: Path, site: Path) -> dict:
    """The wheels in ``folder`` whose distribution is not installed, installed offline into
    ``site``, which goes first on ``sys.path`` and ``PYTHONPATH`` (for the subprocesses)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(wheel: Path) -> bool:
        try:
            version(wheel.name.split("-")[0])
            return True
        except PackageNotFoundError:
            return False

    wheels = sorted(folder.glob("*.whl"))
    todo = [w for w in wheels if not installed(w)]
    how = "nothing to install"
    if todo:
        site.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index",
                            "--no-deps", "--no-compile", "--upgrade", "--target", str(site),
                            *map(str, todo)], capture_output=True, text=True, timeout=600)
        how = "pip install --no-index --no-deps --target"
        if r.returncode != 0:  # no pip here: a wheel is a zip of its site-packages files
            import zipfile

            for w in todo:
                with zipfile.ZipFile(w) as z:
                    z.extractall(site)
            how = f"unzipped (pip failed: {r.stderr.strip()[-300:]})"
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site),
                                                             os.environ.get("PYTHONPATH")]))
    importlib.invalidate_caches()
    return {"installed": [w.name for w in todo], "how": how,
            "already_here": [w.name for w in wheels if w not in todo]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--dry-run", action="store_true", help="no GPU figure, tiny sizes "
                    "(automatic where no CUDA device is found)")
    ap.add_argument("--n", type=int, default=20_000, help="JPEGs end to end [20000]")
    ap.add_argument("--budget-s", type=float, default=480.0, help="time budget [480]")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) /
                    "astrocat-gpu-check", help="simulated data and catalogs (cached)")
    ap.add_argument("--wheels", type=Path, help="install these wheels (from --pack) first")
    ap.add_argument("--pack", type=Path, metavar="DIR", help="download the wheels and stop")
    ap.add_argument("--pack-mib", type=float, default=PACK_MIB,
                    help=f"--pack's budget [{PACK_MIB:g}]")
    ap.add_argument("--python-version", default="3.12",
                    help="--pack: the GPU machine's Python [3.12]")
    args = ap.parse_args(argv)
    if args.pack:
        got = pack(args.pack, args.pack_mib, download=lambda r, d: pip_download(
            r, d, args.python_version))
        print((args.pack / "MANIFEST.txt").read_text())
        return 0 if got["kept"] else 1
    if args.out is None:
        ap.error("--out is required (or --pack DIR)")
    ctx = Ctx(args.out, args.work, args.n, args.budget_s, dry_run=args.dry_run,
              why_dry="--dry-run" if args.dry_run else "", wheels=args.wheels)
    steps = [run_step(ctx, "wheels")]  # before anything else is imported
    if not ctx.dry_run and not _has_cuda():
        ctx.dry_run, ctx.why_dry = True, "no CUDA device found (torch missing or sees none)"
    if ctx.dry_run:
        ctx.n = min(ctx.n, DRY_N)
    ctx.work.mkdir(parents=True, exist_ok=True)
    steps += [run_step(ctx, name) for name in STEPS[1:]]
    report = write_report(ctx, steps)
    harness.log(f"gpu_check: {report['seconds']} s; {ctx.out / 'gpu_check.md'}")
    return 1 if any(s["status"] == "failed" for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
