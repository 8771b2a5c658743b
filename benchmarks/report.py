"""Render one harness run as ``RESULTS.md``: the table, where the time goes, the misses
explained from the measurements, the GPU plan, and how each number was measured."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import Size

MiB = 2**20


@dataclass
class Row:
    what: str
    n: str
    rate: str
    comparison: str
    ratio: str
    target: str
    met: bool | None  # None: no target, reported only
    reason: str = ""

    def cells(self) -> list[str]:
        if self.met is None:
            met = "-" + (f" ({self.reason})" if self.reason else "")
        elif self.met:
            met = "yes" + (f" ({self.reason})" if self.reason else "")
        else:
            met = f"**no**: {self.reason}" if self.reason else "**no**"
        return [self.what, self.n, self.rate, self.comparison, self.ratio, self.target, met]


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _rate(x: float) -> str:
    return f"{x:,.0f}/s" if x >= 10 else f"{x:,.1f}/s"


def _ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 0.01 else f"{s * 1e3:.2f} ms"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


@dataclass
class Decomposition:
    """Where a whole ``astrocat infer`` run's wall time went (seconds)."""

    wall: float
    fixed: float | None  # `astrocat infer` on 10 files: imports, cluster start, teardown
    describe: float | None  # driver: headers of every input, before the cluster starts
    commit: float | None  # driver: parts -> one catalog
    busy: float  # worker-side partition time, per worker (mean)
    workers: int
    per_item_worker: float  # single-core seconds per item inside run_partition
    driver_cpu: float | None = None  # CPU seconds of the driver process (incl. scheduler)
    worker_cpu: float | None = None  # CPU seconds of all worker processes
    commit_measured: bool = False

    @property
    def other(self) -> float:
        return self.wall - sum(x for x in (self.fixed, self.describe, self.commit, self.busy)
                               if x is not None)

    def text(self) -> str:
        parts = []
        if self.fixed is not None:
            parts.append(f"fixed start-up/teardown {self.fixed:.1f} s (the 10-file run)")
        if self.describe is not None:
            parts.append(f"driver describe {self.describe:.1f} s")
        parts.append(f"worker partitions {self.busy:.1f} s per worker ({self.workers} "
                     f"worker{'s' if self.workers > 1 else ''})")
        if self.commit is not None:
            how = "" if self.commit_measured else " (estimated from the profile)"
            parts.append(f"driver commit {self.commit:.1f} s{how}")
        parts.append(f"scheduling, imbalance and the rest {self.other:.1f} s")
        text = f"wall {self.wall:.1f} s = " + " + ".join(parts)
        if self.driver_cpu is not None:
            text += (f"; CPU used: driver process (describe, Dask scheduler, commit) "
                     f"{self.driver_cpu:.1f} s, workers {self.worker_cpu:.1f} s")
        return text


@dataclass
class Report:
    size: Size
    machine: dict
    commit: str
    started: dt.datetime
    command: str
    seconds: float
    stage_seconds: dict
    sim_seconds: dict
    results: dict
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ analysis
    def _fixed(self) -> float | None:
        st = self.results.get("startup")
        return st["infer10"]["seconds"] if st else None

    def decomposition(self, stage: str) -> Decomposition | None:
        r = self.results.get(stage)
        if not r:
            return None
        return self.decompose(r["run"], stage)

    def decompose(self, run: dict, stage: str) -> Decomposition:
        prof = self.results.get("profile", {}).get(stage)
        files = 1 if stage == "spectra" else run["n_items"]
        workers = max(1, run["workers"])
        commit = run.get("commit_seconds")
        if commit is None and prof:
            commit = prof["commit_per_row_s"] * run["n_items"]
        cpu = run.get("cpu_by_process") or {}
        driver = sum(v for k, v in cpu.items() if k.endswith(" driver")) if cpu else None
        workers_cpu = sum(v for k, v in cpu.items() if k.endswith(" dask worker")) if cpu \
            else None
        return Decomposition(
            wall=run["seconds"], fixed=self._fixed(),
            describe=prof["describe_per_file_s"] * files if prof else None,
            commit=commit, busy=run["part_seconds"] / workers, workers=workers,
            per_item_worker=run["part_seconds"] / run["n_items"],
            driver_cpu=driver, worker_cpu=workers_cpu,
            commit_measured=run.get("commit_seconds") is not None,
        )

    def _steady(self, stage: str) -> float | None:
        d = self.decomposition(stage)
        if d is None or d.fixed is None or d.wall <= d.fixed:
            return None
        return self.results[stage]["run"]["n_items"] / (d.wall - d.fixed)

    def _overhead_text(self, stage: str, component_s: float) -> str:
        """Per item inside the workers against the components alone, with the profile."""
        d = self.decomposition(stage)
        text = (f"in the workers an item costs {_ms(d.per_item_worker)} of one core against "
                f"{_ms(component_s)} for the components alone "
                f"({d.per_item_worker / component_s - 1:+.0%})")
        prof = self.results.get("profile", {}).get(stage)
        if prof:
            per = prof["per_item_s"]
            top = sorted(((k, v) for k, v in per.items() if k not in ("read/decode", "model")),
                         key=lambda kv: -kv[1])[:3]
            text += "; besides read and model, the profile's largest are " + ", ".join(
                f"{k} {_ms(v)}" for k, v in top)
        return text

    def _disturbed(self, run: dict) -> str:
        """A note when other processes took a visible share of the machine."""
        other = run.get("other_cpu", 0.0)
        cap = run["seconds"] * self.machine["cores"]
        if cap and other > 0.02 * cap:
            return f"other processes took {other:.1f} CPU-s ({other / cap:.0%}) meanwhile"
        return ""

    # ------------------------------------------------------------------ rows
    def rows(self) -> list[Row | str]:
        res = self.results
        rows: list[Row | str] = []
        cores = self.machine["cores"]
        if "images" in res:
            r = res["images"]
            run, seed, comp = r["run"], r["seed"], r["components"]
            ratio = run["rate"] / seed["rate"]
            rows.append(Row(
                f"1. Images: `astrocat infer`, {comp['model']} on ONNX Runtime, "
                "embedded cluster (one worker per core), end to end",
                _n(run["n_items"]), _rate(run["rate"]),
                f"seed-style (PIL crop+resize, generator of {seed['batch']}, Keras predict): "
                f"{_rate(seed['rate'])} on {_n(seed['n'])}",
                f"{ratio:.2f}x", f">= {T_IMAGES_VS_SEED:g}x", ratio >= T_IMAGES_VS_SEED,
                self._disturbed(run) if ratio >= T_IMAGES_VS_SEED else "see Misses"))
            frac = run["rate"] / comp["limit_rate"]
            steady = self._steady("images")
            note = f"steady state {frac_s(steady, comp['limit_rate'])}" if steady else ""
            rows.append(Row(
                "1. Images vs the component limit",
                _n(run["n_items"]), _rate(run["rate"]),
                f"{cores} cores / ({_ms(comp['decode_s'])} JPEG draft decode + "
                f"{_ms(comp['model_s'])} ONNX model, 1 thread, batch {comp['batch']}) = "
                f"{_rate(comp['limit_rate'])}",
                f"{frac:.1%}", f">= {T_IMAGES_VS_LIMIT:.0%}", frac >= T_IMAGES_VS_LIMIT,
                note if frac >= T_IMAGES_VS_LIMIT else "see Misses" + (f"; {note}" if note
                                                                       else "")))
        if "spectra" in res:
            r = res["spectra"]
            seed, comp = r["seed"], r["components"]
            model_only = comp["model_only_rate"]
            for key in ("run", "tuned"):
                if key not in r:
                    continue
                how = (f"tuned `--partition-size "
                       f"{r[key]['cmd'].split('--partition-size ')[-1]}`" if key == "tuned"
                       else "defaults") + f" ({r[key]['n_parts']:,} partitions)"
                if key not in r:
                    continue
                run = r[key]
                ratio = run["rate"] / seed["rate"]
                rows.append(Row(
                    f"2. Spectra: `astrocat infer`, one Parquet table -> {comp['model']}, "
                    f"{how}, end to end",
                    _n(run["n_items"]), _rate(run["rate"]),
                    f"seed-style (whole table -> numpy, min-max, Keras predict batch "
                    f"{seed['batch']}): {_rate(seed['rate'])} on {_n(seed['n'])}",
                    f"{ratio:.2f}x", f">= {T_SPECTRA_VS_SEED:g}x", ratio >= T_SPECTRA_VS_SEED,
                    self._disturbed(run) if ratio >= T_SPECTRA_VS_SEED else "see Misses"))
                frac = run["rate"] / model_only
                rows.append(Row(
                    f"2. Spectra vs the model alone, {how}",
                    _n(run["n_items"]), _rate(run["rate"]),
                    f"ONNX Runtime alone, {cores} threads, preprocessed arrays, best batch "
                    f"({comp['model_only_batch']}): {_rate(model_only)}",
                    f"{frac:.1%}", f">= {T_SPECTRA_VS_MODEL:.0%}", frac >= T_SPECTRA_VS_MODEL,
                    self._disturbed(run) if frac >= T_SPECTRA_VS_MODEL else "see Misses"))
        if "fits" in res:
            r = res["fits"]
            run, comp = r["run"], r["components"]
            frac = run["rate"] / comp["limit_rate"]
            rs = comp["readers_s"]
            ours = rs["astrocat read_plane (astropy memmap + WCS centre)"]
            rows.append(Row(
                f"3. FITS: `astrocat infer`, 101x101 cut-outs -> {comp['model']}, end to end",
                _n(run["n_items"]), _rate(run["rate"]),
                f"component limit {cores} / ({_ms(ours)} read_plane + "
                f"{_ms(comp['model_s'])} model) = {_rate(comp['limit_rate'])}",
                f"{frac:.0%} of the limit", "- (report)", None, self._disturbed(run)))
            prop = rs["proposed: raw numpy + CRVAL when centre = CRPIX, else WCS"]
            same = comp["proposed_matches_read_plane"]
            rows.append(Row(
                "3. FITS readers, one file at a time, 1 core",
                _n(comp["sample"]), _rate(1 / ours) + " (read_plane)",
                "; ".join(f"{k}: {_ms(v)}/file" for k, v in rs.items()),
                f"proposed reader {ours / prop:.1f}x read_plane "
                f"({'same pixels and RA/Dec' if same else 'OUTPUT DIFFERS'})",
                "compare; faster one named", None,
                f"reading is {ours / (ours + comp['model_s']):.0%} of read + model per file"))
        if "memory" in res:
            m = res["memory"]
            a, b = m["n"], m["10n"]
            ratio = b["peak_rss"] / a["peak_rss"]
            rows.append(Row(
                "4. Peak RSS of the process tree (driver + Dask workers), images",
                f"{_n(a['n_items'])} / {_n(b['n_items'])}",
                f"{_rate(a['rate'])} / {_rate(b['rate'])}",
                f"peak at N: {a['peak_rss'] / MiB:,.0f} MiB; at 10 x N: "
                f"{b['peak_rss'] / MiB:,.0f} MiB",
                f"{ratio:.3f}", f"<= {T_MEMORY:.2f}", ratio <= T_MEMORY,
                "" if ratio <= T_MEMORY else "see Misses"))
        if "scaling" in res:
            sc = res["scaling"]
            w1, w2, ext = sc["w1"], sc["w2"], sc["scheduler"]
            rows.append(Row(
                "5. Scaling: `--workers 2` vs `--workers 1` (embedded cluster), images",
                _n(w2["n_items"]), _rate(w2["rate"]), f"1 worker: {_rate(w1['rate'])}",
                f"{w2['rate'] / w1['rate']:.2f}x", "- (ideal 2x on 2 cores)", None))
            rows.append(Row(
                "5. Existing scheduler (`dask scheduler` + 2 x `dask worker --nthreads 1`) "
                "vs embedded cluster, images",
                _n(ext["n_items"]), _rate(ext["rate"]),
                f"embedded, 2 workers: {_rate(w2['rate'])} (cluster start "
                f"{ext['cluster_start_s']:.1f} s not in the existing-scheduler time)",
                f"{ext['rate'] / w2['rate']:.2f}x", "- (report)", None))
        if "startup" in res:
            st = res["startup"]
            h = st["help_median_s"]
            rows.append(Row("6. Start-up: `astrocat --help`", "median of 5", "-",
                            "runs: " + ", ".join(f"{x:.3f}" for x in st["help_s"]) + " s",
                            f"{h:.3f} s", f"< {T_HELP} s", h < T_HELP,
                            "" if h < T_HELP else "see Misses"))
            ten = st["infer10"]
            rows.append(Row("6. Start-up: `astrocat infer` on 10 JPEGs (embedded cluster)",
                            "10", _rate(ten["rate"]), "fixed cost of any run",
                            f"{ten['seconds']:.2f} s wall", "- (report)", None))
        return rows

    # ------------------------------------------------------------------ misses
    def misses(self) -> list[str]:
        out: list[str] = []
        res = self.results
        explained: set[str] = set()
        for row in self.rows():
            if not isinstance(row, Row) or row.met is not False:
                continue
            out.append(f"**{row.what}**: {row.ratio}, target {row.target}.")
            if row.what.startswith("1. "):
                out += self._miss_images(row, "images" in explained)
                explained.add("images")
            elif row.what.startswith("2. ") and "seed-style" in row.comparison:
                out += self._miss_spectra_seed("spectra-seed" in explained)
                explained.add("spectra-seed")
            elif row.what.startswith("2. "):
                tuned = "tuned" in row.what
                out += self._miss_spectra_model(tuned)
            elif row.what.startswith("4."):
                m = res["memory"]
                for key in ("n", "10n"):
                    parts = m[key].get("peak_by_process", {})
                    out.append(f"- At {m[key]['n_items']:,} items the peak was made of: "
                               + ", ".join(f"{k.split(' ', 1)[1]} {v / MiB:,.0f} MiB"
                                           for k, v in sorted(parts.items())) + ".")
            elif row.what.startswith("6."):
                out.append("- `astrocat --help` imports only click and the CLI module; the "
                           "time is the interpreter start and the console-script entry point.")
            out.append("")
        return out

    def _miss_images(self, row: Row, again: bool) -> list[str]:
        res = self.results["images"]
        comp, seed, run = res["components"], res["seed"], res["run"]
        if again:
            return ["- Same measured cause as the row above."]
        d = self.decomposition("images")
        out = [f"- Measured: {d.text()}."]
        out.append("- " + self._overhead_text("images", comp["decode_s"] + comp["model_s"])
                   + ".")
        ideal = run["n_items"] / comp["limit_rate"]
        out.append(f"- At the component limit these {run['n_items']:,} images take "
                   f"{ideal:.1f} s; 80 % of it allows {ideal / 0.8:.1f} s of wall time, of "
                   f"which the fixed start-up ({d.fixed or 0:.1f} s) and the driver's "
                   f"serial describe ({d.describe or 0:.1f} s) already use "
                   f"{(d.fixed or 0) + (d.describe or 0):.1f} s.")
        out.append(f"- The seed-style decode (no draft) costs {_ms(comp['seed_decode_s'])} "
                   f"per image against {_ms(comp['decode_s'])} with the JPEG draft; TF "
                   f"overlaps it with the model in its generator thread. Even at the "
                   f"component limit astrocat would be "
                   f"{comp['limit_rate'] / seed['rate']:.2f}x the seed-style rate here, so "
                   f"3x needs >= {3 * seed['rate'] / comp['limit_rate']:.0%} of the limit.")
        return out

    def _gflops(self, rate: float, macs: float | None) -> str:
        return f"{2 * macs * rate / 1e9:,.0f} GFLOP/s" if macs else "?"

    def _miss_spectra_seed(self, again: bool) -> list[str]:
        if again:
            return ["- Same measured cause as the row above."]
        r = self.results["spectra"]
        comp, seed = r["components"], r["seed"]
        macs = comp.get("macs_per_item")
        model_only = comp["model_only_rate"]
        one = 1 / comp["model_1thread_s"]
        out = [f"- The model is compute-bound and the seed-style pipeline already runs it "
               f"efficiently: {macs / 1e6:.1f} M multiply-adds per spectrum; the seed-style "
               f"Keras run (TensorFlow/oneDNN, {comp['cores']} threads) sustains "
               f"{self._gflops(seed['rate'], macs)} end to end, ONNX Runtime alone "
               f"{self._gflops(model_only, macs)} on {comp['cores']} threads and "
               f"{self._gflops(one, macs)} on one."
               if macs else "- The model alone is the ceiling."]
        out.append(f"- So the model alone, with nothing else, is "
                   f"{model_only / seed['rate']:.2f}x the seed-style rate on this machine: 2x "
                   f"is out of reach for any pipeline around this FP32 model on this CPU; it "
                   f"needs cheaper arithmetic (reduced precision, a smaller network) or a GPU. "
                   f"int8 dynamic quantisation was tried by hand and made this model slower "
                   f"in ONNX Runtime (its Conv has no fast int8 path).")
        return out

    def _miss_spectra_model(self, tuned: bool) -> list[str]:
        r = self.results["spectra"]
        comp = r["components"]
        run = r["tuned" if tuned else "run"]
        d = self.decompose(run, "spectra")
        out = [f"- Measured: {d.text()}."]
        out.append("- " + self._overhead_text_run(run, comp["model_1thread_s"]) + ".")
        if "tuned" in r and not tuned:
            t = r["tuned"]
            out.append(
                f"- Per-partition cost: with {run['n_parts']:,} partitions the "
                f"workers spent {_ms(run['part_seconds'] / run['n_items'])} per spectrum and "
                f"the commit took {run.get('commit_seconds') or 0:.1f} s; with "
                f"{t['n_parts']:,} partitions "
                f"{_ms(t['part_seconds'] / t['n_items'])} and "
                f"{t.get('commit_seconds') or 0:.1f} s. Each partition pays a Parquet part, "
                f"a Dask task and, when the other worker took the previous row range, a "
                f"re-decode of its row group up to its first row.")
        by_batch = ", ".join(f"batch {k}: {_rate(v)}" for k, v in comp["rate_by_batch"].items())
        out.append(f"- The model alone: {by_batch} on {comp['cores']} threads; one thread at "
                   f"batch 128: {_rate(1 / comp['model_1thread_s'])} (x {comp['cores']} = "
                   f"{_rate(comp['cores'] / comp['model_1thread_s'])}). Reading costs "
                   f"{_ms(comp['read_s'])} per spectrum sequentially, min-max "
                   f"{_ms(comp['preprocess_s'])}.")
        return out

    def _overhead_text_run(self, run: dict, component_s: float) -> str:
        per = run["part_seconds"] / run["n_items"]
        text = (f"in the workers a spectrum takes {_ms(per)} (wall time inside "
                f"`run_partition`) against {_ms(component_s)} for the model alone on one "
                f"thread ({per / component_s - 1:+.0%})")
        cpu = run.get("cpu_by_process") or {}
        wcpu = sum(v for k, v in cpu.items() if k.endswith(" dask worker"))
        if wcpu:
            text += (f"; the worker processes used {_ms(wcpu / run['n_items'])} of CPU per "
                     f"spectrum over the whole run (imports and model load included)")
        return text

    # ------------------------------------------------------------------ profile
    def profile_md(self) -> list[str]:
        prof = self.results.get("profile")
        if not prof:
            return ["(profile stage not run)"]
        out = []
        names = {"images": "Images (JPEG -> gz2-cnn)", "spectra": "Spectra (Parquet -> "
                 "redshift-cnn1d)", "fits": "FITS (101x101 -> lens-lastro)"}
        for stage, p in prof.items():
            out.append(f"### {names.get(stage, stage)}")
            out.append("")
            d = self.decomposition(stage)
            if d is not None:
                out.append(f"Whole `astrocat infer` run of section "
                           f"{ {'images': 1, 'spectra': 2, 'fits': 3}[stage]}: {d.text()}. "
                           f"Per item the workers spent {_ms(d.per_item_worker)} of one core.")
                out.append("")
            out.append(
                f"Inside one worker (`run_partition` in-process, 1 model thread, "
                f"{p['timed_partitions']} partition(s) of {p['items']:,} items after a warm-up "
                f"partition; model load {p['model_load_s']:.2f} s, once per worker; driver "
                f"describe {_ms(p['describe_per_file_s'])}/file, commit "
                f"{_ms(p['commit_per_row_s'])}/row):")
            out.append("")
            per = p["per_item_s"]
            total = sum(per.values())
            rows = [[k, _ms(v), f"{v / total:.0%}"] for k, v in
                    sorted(per.items(), key=lambda kv: -kv[1])]
            rows.append(["total per item", _ms(total), "100%"])
            out.append(_table(["step", "per item", "share"], rows))
            out.append("")
            top = p["cprofile_top"][:8]
            out.append("<details><summary>cProfile, top functions by own time (profiler "
                       "overhead inflates Python-heavy rows)</summary>")
            out.append("")
            out.append(_table(["function", "calls", "own time/item", "share"],
                              [[t["function"], f"{t['calls']:,}",
                                _ms(t["tottime_ms_per_item"] / 1e3),
                                f"{t['tottime_share']:.0%}"] for t in top]))
            out.append("")
            out.append("</details>")
            out.append("")
        st = self.results.get("startup")
        if st and "breakdown" in st:
            b = st["breakdown"]
            ten = st["infer10"]["seconds"]
            load = prof.get("images", {}).get("model_load_s", 0.0)
            pieces = [
                ("Python interpreter start", b["interpreter_s"]),
                ("driver imports (click, astrocat.pipeline.run: dask, pyarrow, ...)",
                 b["driver_imports_s"]),
                ("model cards: sha256 of every bundled model's weights", b["routing_verify_s"]),
                ("embedded LocalCluster up (2 worker processes spawned, importing "
                 "distributed)", b["cluster_up_s"]),
                ("worker-side imports on the first task (astrocat worker, onnxruntime; "
                 "overlaps the two workers)", b["worker_imports_s"]),
                ("model load in a worker (gz2-cnn ONNX session)", load),
                ("cluster teardown", b["cluster_down_s"]),
            ]
            known = sum(v for _, v in pieces)
            pieces.append(("the rest: 10 describes, plan, 10 images, commit, scheduler "
                           "round-trips, overlap", ten - known))
            out.append("### Start-up: the fixed cost of a run")
            out.append("")
            out.append(f"`astrocat infer` on 10 JPEGs took {ten:.2f} s. Each piece below is "
                       "timed alone in a fresh interpreter (best of 3), so they overlap a "
                       "little in the real run:")
            out.append("")
            out.append(_table(["piece", "seconds"], [[k, f"{v:.2f}"] for k, v in pieces]))
            out.append("")
            tl = b.get("timeline")
            if tl:
                out.append(f"The same 10-file run with the driver in-process and a timestamp "
                           f"after each step ({tl['total_s']:.2f} s in all; the interpreter "
                           "start is not in it):")
                out.append("")
                out.append(_table(["step (in order)", "seconds", "at"],
                                  [[x["step"], f"{x['seconds']:.2f}", f"{x['at_s']:.2f}"]
                                   for x in tl["steps"]]))
                out.append("")
        mem = self.results.get("memory")
        if mem:
            out.append("### Memory: what the peak was made of")
            out.append("")
            for key in ("n", "10n"):
                parts = mem[key].get("peak_by_process", {})
                out.append(f"- {mem[key]['n_items']:,} images, peak "
                           f"{mem[key]['peak_rss'] / MiB:,.0f} MiB: " + ", ".join(
                               f"{k.split(' ', 1)[1]} {v / MiB:,.0f} MiB"
                               for k, v in sorted(parts.items(), key=lambda kv: -kv[1])) + ".")
            out.append("")
        return out

    # ------------------------------------------------------------------ document
    def markdown(self) -> str:
        m = self.machine
        s = self.size
        rows = self.rows()
        lines = [
            "# astrocat benchmarks",
            "",
            f"Produced by `{self.command}` (from the repository root, with the project's "
            f"virtualenv) on {self.started:%Y-%m-%d %H:%M} UTC; total "
            f"{self.seconds / 60:.1f} min.",
            "",
            f"* **Commit:** {self.commit} (HEAD when the run started; the working tree may "
            "hold uncommitted changes).",
            f"* **Machine:** {m['cores']} cores ({m['logical_cpus']} logical CPUs), "
            f"{m['memory_gib']:.1f} GiB memory, CPU {m['cpu_model']}; {m['os']}; Python "
            f"{m['python']}; no GPU.",
            "* **Versions:** " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
            "* **Bundled models:** " + "; ".join(f"{k} {v}" for k, v in m["models"].items())
            + ".",
            f"* **Load when the run started:** {m['load_at_start']:.2f} (1-min average)"
            + (f"; **other astrocat processes were running:** {'; '.join(m['busy_with'])}"
               " -- timings of this run are not clean" if m["busy_with"] else
               "; no other astrocat process was running."),
            f"* **Size:** `{s.name}`: {s.images:,} JPEGs (424x424), {s.spectra:,} spectra in "
            f"one Parquet table, {s.fits:,} FITS cut-outs (101x101); memory at "
            f"{s.mem_n:,} and {10 * s.mem_n:,} JPEGs; scaling on {s.scaling:,} JPEGs.",
            "* **Data:** simulated by `astrocat.simulate` (seed 7, never used for training), "
            "cached in `benchmarks/.data/`; every file is read once before timing (warm page "
            "cache). Simulation time this run: " + ", ".join(
                f"{k} {v:.0f} s" if v else f"{k} cached" for k, v in self.sim_seconds.items())
            + ".",
            "",
            "## Results",
            "",
            _table(["what", "N", "items/s", "comparison", "ratio", "target", "met?"],
                   [r.cells() for r in rows if isinstance(r, Row)]),
            "",
            "Rates are end to end: the wall time of the `astrocat infer --quiet` process "
            "from spawn to exit (imports, planning, cluster start, all partitions, commit), "
            "as a user sees it. Where a row says *steady state*, the fixed cost of the "
            "10-file run (section 6) is taken off the wall time.",
            "",
        ]
        misses = self.misses()
        lines += ["## Misses, with the measured reason", ""]
        lines += misses or ["Every target of this run is met.", ""]
        lines += ["## Where the time goes", ""]
        lines += self.profile_md()
        lines += [GPU_PLAN, "", METHOD.format(cores=m["cores"]), ""]
        stage_t = ", ".join(f"{k} {v:.0f} s" for k, v in self.stage_seconds.items())
        lines += [f"Harness time per stage: {stage_t}.", ""]
        lines += self.notes
        return "\n".join(lines).rstrip() + "\n"


def frac_s(rate: float, ref: float) -> str:
    return f"{rate:,.0f}/s = {rate / ref:.0%}"


T_IMAGES_VS_SEED = 3.0
T_IMAGES_VS_LIMIT = 0.80
T_SPECTRA_VS_SEED = 2.0
T_SPECTRA_VS_MODEL = 0.85
T_MEMORY = 1.10
T_HELP = 0.5

#: The GPU rows, planned on paper (kept as Markdown beside this file).
GPU_PLAN = (Path(__file__).with_name("gpu_plan.md")).read_text().rstrip()

METHOD = """## How each number is measured

* **`astrocat infer` rows:** the real CLI as a subprocess,
  `astrocat infer --quiet --input @list.txt --out CATALOG` (the spectra table is passed
  as the file itself), a fresh catalog and parts directory each time; every row must come
  back `ok` (the harness stops otherwise). Wall time from spawn to exit.
* **Peak RSS:** a thread samples the summed RSS of the `astrocat infer` process and all of
  its descendants (Dask's worker processes, multiprocessing helpers) every 50 ms with
  psutil; the peak sample is reported, with what each process held at that moment.
* **Seed-style images:** the bundled `.keras` (same architecture and weights) loaded with
  `astrocat.engines.tf.load_keras`; PIL open -> centre crop -> `resize((64, 64))` (no
  draft) -> numpy / 255, batches of 128 from a Python generator into `model.predict`, TF
  with its default threads (all cores). Timed from the first image read to the last
  prediction; TensorFlow's import, the model load and graph tracing (one warm-up batch) are
  left out, which favours the baseline.
* **Seed-style spectra:** `pyarrow.parquet.read_table` of the whole table -> numpy (the
  fastest conversion, flatten + reshape) -> min-max per spectrum -> `model.predict` with
  Keras' default batch size of 32 (seed 003 gives no inference batch size). Timed from the
  table read to the last prediction; import, model load and tracing left out.
* **Component limit (images):** on a sample of the same JPEGs, one core: `read_rgb`
  (Pillow's DCT-scaled draft decode, centre crop, resize) per image, best of 3 passes; the
  ONNX Runtime session as the pipeline opens it (1 intra-op thread) on batches of 128
  preprocessed images per image, best of 3; limit = {cores} cores / (decode + model).
* **Model-only rate (spectra):** ONNX Runtime alone with all {cores} cores as intra-op
  threads on min-max-scaled arrays already in memory, batches of 128 and 1024, the
  better one.
* **FITS readers:** per file on one core, best of 3 passes over a sample: astrocat's
  `read_plane`, `astropy.io.fits.getdata` without memmap, and a raw numpy reader (header
  cards parsed by hand, `np.frombuffer`); the header-plus-WCS step is timed alone too.
* **Profiles:** `astrocat.pipeline.worker.run_partition` in-process on the stage's first
  partitions (after one warm-up partition, so the model is loaded and the Parquet cursor
  stands where a sequential worker's would), with read/decode, preprocess, model, Arrow
  table build and Parquet write each timed by wrapping the function; the rest is per-row
  Python bookkeeping and batch stacking. The same partitions are then run under cProfile.
  The whole-run split uses the partition times the workers record in each part.
* **Scaling:** `--workers 1` vs the default (one worker per core, {cores} here). The
  existing scheduler is `dask scheduler --host 127.0.0.1 --port 0` plus two
  `dask worker --nworkers 1 --nthreads 1`, started before timing; the run uses
  `--scheduler ADDRESS`.
* **Start-up:** `astrocat --help` six times, the first discarded (cold file cache), median
  of the other five; `astrocat infer` on 10 JPEGs end to end."""
