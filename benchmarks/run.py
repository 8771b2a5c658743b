"""Run every benchmark once on this machine and write ``benchmarks/RESULTS.md``.

    python -m benchmarks.run --size quick|full|tiny [--out benchmarks/RESULTS.md] [--data DIR]

Sizes: ``full`` is the issue's (20,000 JPEGs, 520,000 spectra, 20,000 FITS cut-outs),
``quick`` a tenth of it, ``tiny`` a few dozen items (the smoke test). Simulated data is
cached under ``benchmarks/.data/`` (git-ignored); every ``astrocat infer`` writes a fresh
catalog, so no Parquet part is ever reused between measurements.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import harness as H
from benchmarks.report import Report, Row

STAGES = ("startup", "images", "spectra", "fits", "memory", "scaling", "profile")
#: ``--partition-size`` of an extra, tuned spectra run (None: the defaults only).
SPECTRA_PARTITION: int | None = None


class Bench:
    def __init__(self, size: H.Size, data: H.Data, work: Path) -> None:
        self.size = size
        self.data = data
        self.work = work
        self.runs: dict[tuple, H.InferRun] = {}
        self.results: dict[str, dict] = {}
        self.pairs: dict[str, list[tuple[H.InferRun, dict]]] = {}
        self.cores = H.machine()["cores"]

    # -- helpers
    def images_spec(self, n: int) -> str:
        return H.write_list(self.data.galaxies[:n], self.work / "lists" / f"images-{n}.txt")

    def fits_spec(self, n: int) -> str:
        return H.write_list(self.data.lenses[:n], self.work / "lists" / f"fits-{n}.txt")

    def infer(self, label: str, spec: str, n: int, *extra: str, time_commit: bool = False,
              helpers: tuple[int, ...] = (), repeats: int = 1,
              between: Callable[[], dict] | None = None):
        """One measured ``astrocat infer`` (the median of ``repeats`` runs: a shared
        machine's cores vary by a quarter from one minute to the next); the same command
        is run once and reused. ``between`` runs after each of them (``partners``: the INT8
        run and the studies' script, whole processes measured in the same minute)."""
        key = (spec, n, extra)
        if key not in self.runs or (time_commit and self.runs[key].commit_seconds is None):
            done = []
            for _ in range(repeats):
                run = H.run_infer(label, spec, n, self.work, *extra,
                                  time_commit=time_commit, helpers=helpers)
                done.append((run, between() if between else None))
            if between:
                self.pairs[label] = done
            median = _median([r for r, _ in done])
            if repeats > 1:
                H.log(f"  {label}: median of {repeats} runs, "
                      f"{', '.join(f'{t:.1f}' for t in median.repeat_seconds)} s")
            self.runs[key] = median
        return self.runs[key]

    # -- 6. start-up
    def startup(self) -> None:
        help_times = []
        for _ in range(6):
            r = H.timed_run([*H.astrocat_cmd(), "--help"])
            assert r.returncode == 0, r.stderr
            help_times.append(r.seconds)
        help_times = help_times[1:]  # the first run pays the cold file cache of imports
        # median of three fresh runs: one run's figure is at the mercy of the file cache
        tens = sorted((H.run_infer(f"infer-10-{i}", self.images_spec(10), 10, self.work)
                       for i in range(3)), key=lambda r: r.seconds)
        ten = tens[1]
        parts = H.measure("startup-breakdown")
        parts["timeline"] = H.measure("startup-timeline", "--input", self.images_spec(10),
                                      "--work", str(self.work))
        self.results["startup"] = {"help_s": help_times, "help_median_s":
                                   statistics.median(help_times), "infer10": ten.to_dict(),
                                   "infer10_all_s": [r.seconds for r in tens],
                                   "breakdown": parts}

    # -- 1. images
    def images(self) -> None:
        s = self.size
        spec = self.images_spec(s.images)
        seed_args = ("--list", self.images_spec(s.seed_images)[1:], "--n", str(s.seed_images))
        run = self.infer("images", spec, s.images, time_commit=True, repeats=s.repeats,
                         between=self.partners("images", spec, s.images, seed_args))
        comp = H.measure("components-images", "--list", spec[1:], "--sample", str(s.sample),
                         "--min-seconds", str(s.min_seconds))
        H.log(f"  components: decode {comp['decode_s'] * 1e3:.2f} ms, model "
              f"{comp['model_s'] * 1e3:.2f} ms -> limit {comp['limit_rate']:.0f}/s")
        comp["cpu_per_step"] = self.cpu_per_step("images", spec, s.images)
        self.finish_stage("images", run, comp, spec, s.images, "Keras pipeline on "
                          f"{s.seed_images} images", *seed_args)

    # -- 2. spectra
    def spectra(self) -> None:
        s = self.size
        table = str(self.data.spectra)
        run = self.infer("spectra", table, s.spectra, time_commit=True)
        comp = H.measure("components-spectra", "--table", table,
                         "--sample", str(min(s.spectra, 16384)),
                         "--min-seconds", str(s.min_seconds))
        H.log(f"  model-only: {comp['model_only_rate']:.0f}/s, limit {comp['limit_rate']:.0f}/s")
        self.finish_stage("spectra", run, comp, table, s.spectra, "Keras pipeline on "
                          f"{s.seed_spectra} spectra", "--table", table, "--n",
                          str(s.seed_spectra))

    # -- 3. FITS
    def fits(self) -> None:
        s = self.size
        spec = self.fits_spec(s.fits)
        seed_args = ("--list", self.fits_spec(s.seed_fits)[1:], "--n", str(s.seed_fits))
        run = self.infer("fits", spec, s.fits, time_commit=True, repeats=s.repeats,
                         between=self.partners("fits", spec, s.fits, seed_args))
        comp = H.measure("components-fits", "--list", spec[1:], "--sample", str(s.sample),
                         "--min-seconds", str(s.min_seconds))
        H.log(f"  components: limit {comp['limit_rate']:.0f}/s")
        comp["cpu_per_step"] = self.cpu_per_step("fits", spec, s.fits)
        self.finish_stage("fits", run, comp, spec, s.fits, "astropy + Keras pipeline on "
                          f"{s.seed_fits} cut-outs", *seed_args)

    def cpu_per_step(self, stage: str, spec: str, n: int) -> dict:
        """The thread CPU time of each step per item, inside a whole run (of 4 x the
        bound's sample: the engines' first batches weigh less) and inside the interleaved
        bound's processes right after it: what the run does that the bound does not, and
        what costs more in it."""
        s = self.size
        run = H.measure("cpu-per-step", "--list", spec[1:], "--sample",
                        str(min(n, 4 * s.sample)), "--work", str(self.work))
        bound = H.measure("interleaved-bound", "--stage", stage, "--list", spec[1:],
                          "--sample", str(s.sample), "--seconds", str(8 * s.min_seconds),
                          "--cpu-per-step")["cpu_per_step"]
        H.log(f"  CPU per item, steps: run {sum(run['ms_per_item'].values()):.2f} ms, bound "
              f"{sum(bound['ms_per_item'].values()):.2f} ms")
        return {"run": run, "bound": bound}

    def finish_stage(self, stage: str, run, comp: dict, spec: str, n: int, seed_what: str,
                     *seed_args: str) -> None:
        """The stage's INT8 run (where its model has a variant that passed its gates) and
        the studies' way of doing it, then its results. Where the FP32 runs were repeated
        with partners, each INT8 run and script ran in the FP32 run's minute."""
        pairs, int8_runs = [], []
        for ours, partners in self.pairs.get(stage, []):
            theirs, int8_run = partners["seed"], partners.get("int8")
            bound = partners.get("interleaved", {})
            inter = bound.get("interleaved_rate")
            ratio = (ours.n_items / ours.seconds) / (theirs["n"] / theirs["process_seconds"])
            pairs.append({"astrocat_seconds": ours.seconds, "astrocat_n": ours.n_items,
                          "astrocat_run": ours.to_dict(), "seed": theirs, "ratio": ratio,
                          **({"interleaved_rate": inter, "vs_interleaved": ours.rate / inter,
                              "interleaved_switches_per_item": bound.get("switches_per_item"),
                              "interleaved_involuntary_per_item":
                                  bound.get("involuntary_per_item")}
                             if inter else {}),
                          **({"int8_seconds": int8_run.seconds,
                              "int8_vs_fp32": ours.seconds / int8_run.seconds}
                             if int8_run else {})})
            if int8_run:
                int8_runs.append(int8_run)
        if int8_runs:
            int8 = _median(int8_runs)
        else:
            int8 = (self.infer(f"{stage}-int8", spec, n, "--precision", "int8")
                    if "int8_model" in comp else None)
        if pairs:  # the studies' script of the pair whose ratio is the median
            seed = H.middle(pairs, key=lambda p: p["ratio"])["seed"]
        else:
            seed = self.seed_run(stage, seed_args, seed_what)()
        self.results[stage] = {"run": run.to_dict(), "components": comp, "seed": seed,
                               **({"pairs": pairs} if pairs else {}),
                               **({"int8": int8.to_dict()} if int8 else {})}

    def partners(self, stage: str, spec: str, n: int, seed_args: tuple[str, ...]
                 ) -> Callable[[], dict]:
        """What runs right after each FP32 run of ``stage``, in the same minute: the
        interleaved bound, the same inputs with ``--precision int8`` (where the stage's
        model has a variant this CPU runs), then the studies' script. Each ratio is then
        one of adjacent measurements; the machine's minute-to-minute spread cancels in it."""
        seed = self.seed_run(stage, seed_args)
        int8 = int8_model(stage)

        def run() -> dict:
            out: dict = {"interleaved": H.measure(
                "interleaved-bound", "--stage", stage, "--list", spec[1:], "--sample",
                str(self.size.sample), "--seconds", str(8 * self.size.min_seconds))}
            H.log(f"  interleaved bound: {out['interleaved']['interleaved_rate']:.0f}/s")
            if int8:
                out["int8"] = H.run_infer(f"{stage}-int8", spec, n, self.work,
                                          "--precision", "int8")
            out["seed"] = seed()
            return out

        return run

    @staticmethod
    def seed_run(stage: str, seed_args: tuple[str, ...], what: str = "") -> Callable[[], dict]:
        """The studies' way of doing ``stage`` as a whole process (seed-style script)."""

        def run() -> dict:
            H.log(f"seed-style {what or stage}")
            seed = H.measure(f"seed-{stage}", *seed_args)
            H.log(f"  seed-style: {seed['rate']:.0f}/s, whole process "
                  f"{seed.get('process_seconds', float('nan')):.1f}s")
            return seed

        return run

    # -- 4. memory
    def memory(self) -> None:
        n = self.size.mem_n
        small = self.infer(f"images-{n}", self.images_spec(n), n)
        big = self.infer(f"images-{10 * n}", self.images_spec(10 * n), 10 * n)
        self.results["memory"] = {"n": small.to_dict(), "10n": big.to_dict()}

    # -- 5. scaling
    def scaling(self) -> None:
        n = self.size.scaling
        spec = self.images_spec(n)
        one = self.infer(f"images-{n}", spec, n)  # the default: one worker, threads
        two = self.infer(f"images-{n}-w2", spec, n, "--workers", "2")
        sched = self.existing_scheduler(spec, n)
        self.results["scaling"] = {"w1": one.to_dict(), "w2": two.to_dict(),
                                   "scheduler": sched}

    def existing_scheduler(self, spec: str, n: int) -> dict:
        """`dask scheduler` + two `dask worker --nworkers 1 --nthreads 1` on 127.0.0.1."""
        d = self.work / "dask"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        exe = Path(sys.executable).with_name("dask")
        dask = [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        sched_file = d / "scheduler.json"
        procs: list[subprocess.Popen] = []

        def start(*args: str, log: str) -> None:
            procs.append(subprocess.Popen([*dask, *args], stdout=(d / log).open("w"),
                                          stderr=subprocess.STDOUT, env=env, cwd=d))

        t0 = time.perf_counter()
        try:
            start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                  "--scheduler-file", str(sched_file), log="scheduler.log")
            deadline = time.time() + 60
            while not sched_file.exists() and time.time() < deadline:
                time.sleep(0.1)
            address = json.loads(sched_file.read_text())["address"]
            for i in range(2):
                start("worker", address, "--nworkers", "1", "--nthreads", "2",
                      "--no-dashboard", "--host", "127.0.0.1", "--name", f"bench-w{i}",
                      log=f"worker{i}.log")
            from distributed import Client

            with Client(address, timeout="30s") as client:
                client.wait_for_workers(2, timeout=120)
            cluster_start = time.perf_counter() - t0
            run = self.infer(f"images-{n}-scheduler", spec, n, "--scheduler", address,
                             helpers=tuple(p.pid for p in procs))
            return {**run.to_dict(), "cluster_start_s": cluster_start}
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # -- profiles
    def profile(self) -> None:
        s = self.size
        k = s.profile_parts
        need = min(s.images, (k + 1) * 512)
        out = {}
        for stage, spec in (("images", self.images_spec(need)),
                            ("spectra", str(self.data.spectra)),
                            ("fits", self.fits_spec(min(s.fits, (k + 1) * 512)))):
            H.log(f"profile {stage}")
            out[stage] = H.measure("profile", "--stage", stage, "--input", spec, "--parts",
                                   str(k), "--work", str(self.work))
        self.results["profile"] = out


def int8_model(stage: str) -> str | None:
    """The INT8 variant ``--precision int8`` runs for the stage's default model on this
    CPU (None where it keeps FP32)."""
    from astrocat.models.zoo import variant
    from benchmarks.measure import stage_card

    found = variant(stage_card(stage), "int8")
    return found.name if found else None


def _median(runs: list[H.InferRun]) -> H.InferRun:
    """The median run by wall time, carrying every run's seconds."""
    median = H.middle(runs, key=lambda r: r.seconds)
    if len(runs) > 1:
        median.repeat_seconds = sorted(r.seconds for r in runs)
    return median


def render(json_path: Path, out: Path | None = None) -> Path:
    """``RESULTS.md`` again from the JSON record of a run (after the report's wording
    changed; nothing is measured): ``python -m benchmarks.run --render RESULTS.json``."""
    import datetime as dt

    rec = json.loads(Path(json_path).read_text())
    report = Report(size=H.SIZES[rec["size"]], machine=rec["machine"],
                    commit=rec.get("commit", "?"),
                    started=dt.datetime.fromisoformat(rec["started"]),
                    command=rec["command"], seconds=rec["seconds"],
                    stage_seconds=rec.get("stage_seconds", {}),
                    sim_seconds=rec.get("sim_seconds", {}), results=rec["results"])
    out = out or Path(json_path).with_suffix(".md")
    out.write_text(report.markdown())
    _keep_own_sections(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(H.SIZES), default="quick")
    ap.add_argument("--out", type=Path, default=H.BENCH / "RESULTS.md")
    ap.add_argument("--data", type=Path, default=H.DEFAULT_DATA,
                    help="simulated inputs are cached here [benchmarks/.data]")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help=f"comma-separated subset of {','.join(STAGES)} (for development; "
                         "a RESULTS.md is complete only with all of them)")
    ap.add_argument("--json", type=Path, default=None,
                    help="also write every measurement as JSON [next to --out]")
    ap.add_argument("--render", type=Path, default=None, metavar="JSON",
                    help="write --out again from a run's JSON record; measure nothing")
    args = ap.parse_args(argv)
    if args.render:
        H.log(f"wrote {render(args.render, args.out)}")
        return 0
    stages = [x.strip() for x in args.stages.split(",") if x.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        ap.error(f"unknown stages: {', '.join(sorted(unknown))}")
    size = H.SIZES[args.size]
    command = shlex.join(["python", "-m", "benchmarks.run", *(argv if argv is not None
                                                                else sys.argv[1:])])
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    machine = H.machine()
    if machine["busy_with"]:
        H.log("WARNING: other astrocat processes are using the CPU; timings will be low: "
              + "; ".join(machine["busy_with"]))
    data = H.prepare_data(size, args.data.resolve())
    work = args.data.resolve() / f"work-{size.name}"
    work.mkdir(parents=True, exist_ok=True)
    used = data.galaxies[: size.galaxies] + data.lenses[: size.fits] + [data.spectra]
    H.warm_cache(used)
    machine["bytecode"] = H.byte_compile()
    bench = Bench(size, data, work)
    timings = {}
    for stage in STAGES:
        if stage in stages:
            s0 = time.perf_counter()
            H.log(f"== {stage}")
            getattr(bench, stage)()
            timings[stage] = time.perf_counter() - s0
    seconds = time.perf_counter() - t0
    if H.models() != machine["models"]:
        H.log("WARNING: a bundled model changed during the run")
        machine["models_changed_during_run"] = H.models()
    report = Report(size=size, machine=machine, commit=H.git_commit(), started=started,
                    command=command, seconds=seconds, stage_seconds=timings,
                    sim_seconds=data.seconds, results=bench.results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.markdown())
    _keep_own_sections(args.out)
    json_out = args.json or args.out.with_suffix(".json")
    json_out.write_text(json.dumps({"size": size.name, "machine": machine,
                                    "command": command, "started": started.isoformat(),
                                    "seconds": seconds, "commit": report.commit,
                                    "stage_seconds": timings, "sim_seconds": data.seconds,
                                    "results": bench.results},
                                   indent=1, default=str))
    H.log(f"wrote {args.out} and {json_out} in {seconds / 60:.1f} min")
    for row in report.rows():
        if isinstance(row, Row) and row.met is False:
            H.log(f"target missed: {row.what}: {row.ratio} (target {row.target})")
    return 0


def _keep_own_sections(results_md: Path) -> None:
    """The sections of the benchmarks with runs of their own ("Trust per row", "Drift per
    run", "Fine-tuning on a shifted survey"): a new RESULTS.md carries them again from
    their committed JSON records."""
    from benchmarks import drift, finetune, trust

    if results_md.resolve() != Path(__file__).with_name("RESULTS.md").resolve():
        return
    for module, name in ((trust, "TRUST.json"), (drift, "DRIFT.json"),
                         (finetune, "FINETUNE.json")):
        record = Path(__file__).with_name(name)
        if record.is_file():
            trust.splice(results_md, module.markdown(json.loads(record.read_text())),
                         module.HEADING)


if __name__ == "__main__":
    sys.exit(main())

