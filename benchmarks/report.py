"""Render one harness run as ``RESULTS.md``: the table, where the time goes, the misses
explained from the measurements, the GPU plan, and how each number was measured."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import Size, middle

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


def _switches_text(run: dict, pairs: list[dict]) -> str:
    """The run's context switches per item, every thread of its process tree, beside the
    bound's processes' in the same minute: how often a core changed threads. Runs recorded
    before every thread was counted (no ``involuntary_switches``) counted main threads
    only, a hundredth of the truth: nothing is said of those."""
    if "involuntary_switches" not in run or not run["n_items"]:
        return ""
    n = run["n_items"]
    text = (f"; {run['context_switches'] / n:.1f} context switches per item in the run's "
            f"process tree, every thread ({run['involuntary_switches'] / n:.1f} of them "
            "preemptions)")
    pair = next((p for p in pairs if p.get("astrocat_run") is run), {})  # its minute's
    bound = pair.get("interleaved_switches_per_item")
    if bound is not None:
        text += (f", against {bound:.2f} ({pair.get('interleaved_involuntary_per_item') or 0:.2f})"
                 " in the bound's processes")
    return text


def _steps_text(steps: dict) -> str:
    """The run's CPU per item, step by step, against the bound's (``cpu-per-step``)."""
    ours, theirs = steps["run"]["ms_per_item"], steps["bound"]["ms_per_item"]
    each = "; ".join(f"{k} {ours[k]:.3f} / {theirs[k]:.3f}" if theirs[k] else
                     f"{k} {ours[k]:.3f} / none" for k in ours)
    total, bound = sum(ours.values()), sum(theirs.values())
    return (f"CPU per item, step by step, inside a whole run of the {steps['run']['items']:,}"
            f"-file sample / inside the bound's processes (thread CPU time of the same "
            f"functions, ms): {each}. The steps add up to {total:.2f} ms in the run and "
            f"{bound:.2f} ms in the bound: with no fixed cost at all the run would reach "
            f"{bound / total:.0%} of the bound; the run's process used "
            f"{1e3 * steps['run']['process_cpu_s'] / steps['run']['items']:.2f} ms of CPU "
            "per item in all (its imports, listing, engines' start and publishing included).")


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
    execution: str = ""  # where the partitions ran (the run's provenance)
    switches: int = 0  # context switches of the run's process tree
    n_items: int = 0

    @property
    def in_process(self) -> bool:
        """Partitions ran on task threads of the astrocat process itself (they overlap)."""
        return "in-process" in self.execution

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
        if self.in_process:
            # task threads overlap each other: their summed time is not a share of the wall
            inside = self.wall - sum(x for x in (self.fixed, self.describe, self.commit)
                                     if x is not None)
            parts.append(f"partitions {inside:.1f} s ({self.execution}; summed over the "
                         f"task threads, which overlap, {self.busy:.1f} s)")
        else:
            parts.append(f"worker partitions {self.busy:.1f} s per worker ({self.workers} "
                         f"worker{'s' if self.workers > 1 else ''})")
        if self.commit is not None:
            how = "" if self.commit_measured else " (estimated from the profile)"
            parts.append(f"driver commit {self.commit:.1f} s{how}")
        if not self.in_process:
            parts.append(f"scheduling, imbalance and the rest {self.other:.1f} s")
        text = f"wall {self.wall:.1f} s = " + " + ".join(parts)
        if self.driver_cpu is not None and self.in_process:
            text += (f"; CPU used by the one astrocat process (decoders, engines, Dask, "
                     f"commit) {self.driver_cpu:.1f} s, "
                     f"{self.driver_cpu / max(self.wall, 1e-9):.2f} cores on average")
        elif self.driver_cpu is not None:
            text += (f"; CPU used: driver process (describe, Dask scheduler, commit) "
                     f"{self.driver_cpu:.1f} s, workers {self.worker_cpu:.1f} s")
        if self.switches and self.n_items:
            text += (f"; {self.switches:,} context switches in the process tree (every "
                     f"thread), {self.switches / self.n_items:.1f} per item")
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
            describe=None,  # the driver no longer describes: workers do, per file
            commit=commit, busy=run["part_seconds"] / workers, workers=workers,
            per_item_worker=run["part_seconds"] / run["n_items"],
            driver_cpu=driver, worker_cpu=workers_cpu,
            commit_measured=run.get("commit_seconds") is not None,
            execution=run.get("execution", ""),
            switches=run.get("context_switches", 0) if "involuntary_switches" in run else 0,
            n_items=run["n_items"],
        )

    def _disturbed(self, run: dict) -> str:
        """A note when other processes took a visible share of the machine."""
        other = run.get("other_cpu", 0.0)
        cap = run["seconds"] * self.machine["cores"]
        if cap and other > 0.02 * cap:
            return f"other processes took {other:.1f} CPU-s ({other / cap:.0%}) meanwhile"
        return ""

    # ------------------------------------------------------------------ rows
    def _limit_row(self, stage: str, label: str, how: str, int8: bool = False) -> Row:
        r = self.results[stage]
        run = r["int8" if int8 else "run"]
        comp = r["components"]
        limit = comp["int8_limit_rate" if int8 else "limit_rate"]
        frac = run["rate"] / limit
        model = comp["int8_model"] if int8 else comp["model"]
        at = f" at batch {comp['batch']}" if comp.get("batch") else ""
        runs = run.get("repeat_seconds") or []
        median = (f"; astrocat: the median of {len(runs)} runs of "
                  f"{', '.join(f'{t:.1f}' for t in runs)} s" if len(runs) > 1 else "")
        target = T_LIMIT.get(stage, T_VS_LIMIT)
        return Row(f"{label} vs the component limit, {model}{' (INT8)' if int8 else ''}",
                   _n(run["n_items"]), _rate(run["rate"]),
                   f"{self.machine['cores']} cores / ({how} + the model{at}, each on 1 core) = "
                   f"{_rate(limit)}{median}", f"{frac:.1%}", f">= {target:.0%}",
                   frac >= target, self._disturbed(run) if frac >= target
                   else "see Misses")

    def _interleaved_row(self, stage: str, label: str) -> Row | None:
        """FP32 end to end against the interleaved bound: the same components done in
        turn by one process per core, each on its own files."""
        r = self.results[stage]
        found = self._vs_interleaved(stage)
        if found is None:
            return None
        frac, inter, pairs, run = found
        how = (f"{self.machine['cores']} processes, one per core, each doing the "
               f"components in turn on its own files: {_rate(inter)}")
        if pairs:
            how += (f" in the median of {len(pairs)} pairs, each measured right after an "
                    "FP32 run (run / bound: " + ", ".join(
                        f"{p['astrocat_run']['rate']:,.0f} / {p['interleaved_rate']:,.0f}"
                        for p in pairs) + ")")
        ok = frac >= T_VS_INTERLEAVED
        return Row(f"{label} vs the interleaved bound, {r['components']['model']}",
                   _n(run["n_items"]), _rate(run["rate"]), how, f"{frac:.1%}",
                   f">= {T_VS_INTERLEAVED:.0%}", ok, "" if ok else "see Misses")

    def _vs_interleaved(self, stage: str) -> tuple[float, float, list[dict], dict] | None:
        """(run / bound, the bound, the pairs, the run the ratio rests on): the median of
        the pairs each measured in one minute where the run recorded them, else the FP32
        median run against the bound measured with the components."""
        r = self.results[stage]
        pairs = [p for p in r.get("pairs", ()) if "vs_interleaved" in p]
        if pairs:
            mid = middle(pairs, key=lambda p: p["vs_interleaved"])
            return mid["vs_interleaved"], mid["interleaved_rate"], pairs, mid["astrocat_run"]
        inter = r["components"].get("interleaved_rate")
        return (r["run"]["rate"] / inter, inter, [], r["run"]) if inter else None

    def _whole_row(self, stage: str, label: str, seed_how: str, target: float | None,
                   int8: bool = False) -> Row:
        """Whole processes on the same inputs: `astrocat infer` (FP32, or INT8 where a
        variant passed its gate) against the studies' pipeline as a script, imports
        included."""
        r = self.results[stage]
        seed = r["seed"]
        ours_run = r["int8" if int8 else "run"]
        which = (f"INT8 ({r['components']['int8_model']}, passed its gate)" if int8
                 else f"FP32 ({r['components']['model']})")
        ours = ours_run["n_items"] / ours_run["seconds"]
        theirs = seed["n"] / seed["process_seconds"]
        ratio = ours / theirs
        how = (f"{seed_how}: {_rate(theirs)} over {seed['process_seconds']:.1f} s "
               f"(loop alone {_rate(seed['rate'])})")
        pairs = r.get("pairs") if not int8 else None
        if pairs:  # alternating whole processes: each ratio from one pair, the median
            ratio = middle(p["ratio"] for p in pairs)
            how += (f" in the median of {len(pairs)} alternating pairs (astrocat, then the "
                    "script, each pair in the same minute); pair ratios "
                    + ", ".join(f"{p['ratio']:.2f}x" for p in pairs))
        return Row(f"{label}: whole `astrocat infer` process, {which}, vs the studies' "
                   "pipeline as a whole process", _n(ours_run["n_items"]), _rate(ours),
                   how, f"{ratio:.2f}x",
                   f">= {target:g}x" if target else "- (report)",
                   (ratio >= target) if target else None,
                   "" if not target or ratio >= target else "see Misses")

    def _int8_vs_fp32_row(self, stage: str, label: str) -> Row | None:
        """INT8 against FP32 end to end: each INT8 run right after an FP32 run on the same
        inputs (in the same minute), the median of their ratios."""
        r = self.results[stage]
        pairs = [p for p in r.get("pairs", ()) if "int8_vs_fp32" in p]
        if not pairs or "int8" not in r:
            return None
        ratio = middle(p["int8_vs_fp32"] for p in pairs)
        comp, run = r["components"], r["int8"]
        sets = self.machine.get("int8_instruction_sets")
        cpu = (f"{self.machine.get('cpu_model', '?')}, "
               + ("instruction sets unknown" if sets is None else
                  "VNNI" if any("vnni" in x for x in sets) else "no VNNI"))
        ok = ratio > T_INT8_VS_FP32
        return Row(f"{label}: INT8 ({comp['int8_model']}) vs FP32 ({comp['model']}), end to "
                   "end", _n(run["n_items"]), _rate(run["rate"]),
                   f"{len(pairs)} alternating pairs of whole `astrocat infer` processes on "
                   "the same inputs, each INT8 run right after its FP32 run; FP32 s / INT8 "
                   "s: " + ", ".join(f"{p['astrocat_seconds']:.1f} / {p['int8_seconds']:.1f}"
                                     for p in pairs) + f"; CPU: {cpu}",
                   f"{ratio:.2f}x", f"> {T_INT8_VS_FP32:.2f}x", ok,
                   "" if ok else "see Misses")

    def _memory_vs_seed_row(self, stage: str, label: str) -> Row | None:
        """Peak RSS of the whole `astrocat infer` process tree (FP32) against the studies'
        script on the same inputs."""
        r = self.results[stage]
        theirs = r["seed"].get("process_peak_rss")
        ours = r["run"].get("peak_rss")
        if not theirs or not ours:
            return None
        ratio = ours / theirs
        return Row(f"{label}: peak RSS of the whole `astrocat infer` process tree (FP32) vs "
                   "the studies' script", _n(r["run"]["n_items"]), _rate(r["run"]["rate"]),
                   f"astrocat {ours / MiB:,.0f} MiB; the studies' script "
                   f"{theirs / MiB:,.0f} MiB", f"{ratio:.2f}", "<= 1.00", ratio <= 1.0,
                   "" if ratio <= 1.0 else "see Misses")

    def rows(self) -> list[Row | str]:
        res = self.results
        rows: list[Row | str] = []
        for stage, label, how, whole, seed_how, target, target_int8 in STAGE_ROWS:
            if stage not in res:
                continue
            rows.append(self._limit_row(stage, label, how))
            if (inter := self._interleaved_row(stage, label)) is not None:
                rows.append(inter)
            if "int8" in res[stage]:
                rows.append(self._limit_row(stage, label, how, int8=True))
            rows.append(self._whole_row(stage, whole, seed_how, target))
            if "int8" in res[stage]:
                rows.append(self._whole_row(stage, whole, seed_how, target_int8, int8=True))
            if (int8_row := self._int8_vs_fp32_row(stage, whole)) is not None:
                rows.append(int8_row)
            if stage == "fits":
                memory = self._memory_vs_seed_row(stage, whole)
                if memory is not None:
                    rows.append(memory)
        if "fits" in res:
            comp = res["fits"]["components"]
            rs = comp["readers_s"]
            ours, ref = list(rs.values())
            rows.append(Row("3. FITS readers, one file at a time, 1 core", _n(comp["sample"]),
                            _rate(1 / ours), "; ".join(f"{k}: {_ms(v)}/file"
                                                         for k, v in rs.items()),
                            f"{ref / ours:.1f}x astropy", "fast paths where faster, "
                            "same pixels", comp["fitsio_matches_astropy"],
                            "identical pixels on every file of the sample"
                            if comp["fitsio_matches_astropy"] else "PIXELS DIFFER"))
        if "memory" in res:
            m = res["memory"]
            a, b = m["n"], m["10n"]
            ratio = b["peak_rss"] / a["peak_rss"]
            rows.append(Row(
                "4. Peak RSS of the whole process tree, images",
                f"{_n(a['n_items'])} / {_n(b['n_items'])}",
                f"{_rate(a['rate'])} / {_rate(b['rate'])}",
                f"peak at N: {a['peak_rss'] / MiB:,.0f} MiB ({a['execution']}); at 10 x N: "
                f"{b['peak_rss'] / MiB:,.0f} MiB ({b['execution']})",
                f"{ratio:.3f}", f"<= {T_MEMORY:.2f}", ratio <= T_MEMORY,
                "" if ratio <= T_MEMORY else "see Misses"))
        if "scaling" in res:
            sc = res["scaling"]
            w1, w2, ext = sc["w1"], sc["w2"], sc["scheduler"]
            rows.append(Row(
                "5. Scaling: `--workers 2` (two processes) vs the default (one worker, "
                "decoder and engine threads), images", _n(w2["n_items"]), _rate(w2["rate"]),
                f"default: {_rate(w1['rate'])}", f"{w2['rate'] / w1['rate']:.2f}x",
                "- (report)", None))
            rows.append(Row(
                "5. Existing scheduler (`dask scheduler` + 2 x `dask worker --nthreads 2`) "
                "vs the default, images", _n(ext["n_items"]), _rate(ext["rate"]),
                f"default: {_rate(w1['rate'])} (cluster start {ext['cluster_start_s']:.1f} "
                "s not in the existing-scheduler time)",
                f"{ext['rate'] / w1['rate']:.2f}x", "- (report)", None))
        if "startup" in res:
            st = res["startup"]
            h = st["help_median_s"]
            rows.append(Row("6. Start-up: `astrocat --help`", "median of 5", "-",
                            "runs: " + ", ".join(f"{x:.3f}" for x in st["help_s"]) + " s",
                            f"{h:.3f} s", f"< {T_HELP} s", h < T_HELP,
                            "" if h < T_HELP else "see Misses"))
            ten = st["infer10"]
            rows.append(Row("6. Fixed cost: `astrocat infer` on 10 JPEGs, whole process",
                            "10", _rate(ten["rate"]), ten["execution"],
                            f"{ten['seconds']:.2f} s", f"<= {T_FIXED} s",
                            ten["seconds"] <= T_FIXED,
                            "" if ten["seconds"] <= T_FIXED else "see Misses"))
        return rows

    # ------------------------------------------------------------------ misses
    def _cpu_account(self, stage: str, run: dict, each_s: float) -> str:
        """Where a run's core-seconds went: the components, other work, idle cores."""
        cores = self.machine["cores"]
        have = run["seconds"] * cores
        busy = run.get("machine_cpu") or sum((run.get("cpu_by_process") or {}).values())
        comp = run["n_items"] * each_s
        other = max(0.0, busy - comp - run.get("other_cpu", 0.0))
        idle = max(0.0, have - busy)
        by = ", ".join(f"{k.split(' ', 1)[1]} {v:.1f}" for k, v in sorted(
            (run.get("cpu_by_process") or {}).items(), key=lambda kv: -kv[1])[:4])
        return (f"of {run['seconds']:.1f} s x {cores} cores = {have:.1f} core-seconds, the "
                f"components (describe, read/decode, prepare, model, timed alone) account "
                f"for {comp:.1f} ({comp / have:.0%}), other work of this run for {other:.1f} "
                f"({other / have:.0%}: imports, model load, Dask, Python bookkeeping, Parquet "
                f"parts and the commit), idle cores for {idle:.1f} ({idle / have:.0%}: "
                f"start-up before the pipeline fills and its drain at the end); CPU by "
                f"process: {by}")

    def misses(self) -> list[str]:
        out: list[str] = []
        res = self.results
        fixed = res.get("startup", {}).get("infer10", {}).get("seconds")
        for row in self.rows():
            if not isinstance(row, Row) or row.met is not False:
                continue
            out.append(f"**{row.what}**: {row.ratio}, target {row.target}.")
            stage = {"1": "images", "2": "spectra", "3": "fits"}.get(row.what[0])
            if stage and "INT8 (" in row.what and "vs FP32" in row.what:
                comp = res[stage]["components"]
                out.append(f"- The models alone, one core each: FP32 {_ms(comp['model_s'])}/"
                           f"item, INT8 {_ms(comp['int8_model_s'])}/item "
                           f"({comp['model_s'] / comp['int8_model_s']:.2f}x); with decoding "
                           f"the component limits are {_rate(comp['limit_rate'])} and "
                           f"{_rate(comp['int8_limit_rate'])} "
                           f"({comp['int8_limit_rate'] / comp['limit_rate']:.2f}x): the most "
                           "INT8 can gain end to end here.")
                out.append("")
                continue
            if stage and "interleaved bound" in row.what:
                _, inter, pairs, run = self._vs_interleaved(stage)
                each = self.machine["cores"] / inter
                out.append("- Measured, with the interleaved bound's time per item as the "
                           "components': " + self._cpu_account(stage, run, each) + ".")
                out.append(f"- Execution: {run.get('execution') or '?'}"
                           + _switches_text(run, pairs) + ".")
                if steps := res[stage]["components"].get("cpu_per_step"):
                    out.append("- " + _steps_text(steps))
                out.append("")
                continue
            if stage and "component limit" in row.what:
                r = res[stage]
                int8 = "(INT8)" in row.what
                run = r["int8" if int8 else "run"]
                limit = r["components"]["int8_limit_rate" if int8 else "limit_rate"]
                each = self.machine["cores"] / limit
                out.append("- Measured: " + self._cpu_account(stage, run, each) + ".")
                comp = r["components"]
                if not int8 and comp.get("model_together_s"):
                    alone, together = comp["model_s"], comp["model_together_s"]
                    out.append(
                        f"- The model alone on 1 core: {_ms(alone)}/item; one engine per core, "
                        f"all {self.machine['cores']} at once: {_ms(together)}/item of wall "
                        f"time, {alone / (together * self.machine['cores']):.0%} of "
                        f"{self.machine['cores']} x alone (the limit assumes 100 %)"
                        + (f"; {comp['macs_per_item'] * 2 / alone / 1e9:.0f} GFLOP/s on one "
                           "core" if comp.get("macs_per_item") else "") + ".")
                cores = self.machine["cores"]
                for key, what, why in (  # other yardsticks the run is measured against
                        ("model_only_rate", f"The model alone on all {cores} cores at once "
                         f"(its best batch, {comp.get('model_only_batch', '?')})",
                         " (which adds up each core's speed alone)"),
                        ("interleaved_rate", f"The same components done in turn by {cores} "
                         "processes, one per core, each on its own files (no GIL shared, no "
                         "Dask, no Parquet, no out-of-domain statistics)",
                         ", while decoding and the model share each core's caches")):
                    if not int8 and comp.get(key):
                        rate = comp[key]
                        out.append(f"- {what}: {_rate(rate)}, {rate / limit:.0%} of the "
                                   f"limit{why}; this run reached {run['rate'] / rate:.0%} "
                                   "of that.")
                ideal = run["n_items"] / limit
                if fixed:
                    out.append(f"- At the limit these {run['n_items']:,} items take "
                               f"{ideal:.1f} s; {T_LIMIT.get(stage, T_VS_LIMIT):.0%} of it "
                               f"allows {ideal / T_LIMIT.get(stage, T_VS_LIMIT):.1f} s "
                               f"of wall time, of which the fixed cost of any run (the "
                               f"10-file run, section 6) is {fixed:.1f} s.")
            elif stage and "whole" in row.what and "peak RSS" not in row.what:
                r = res[stage]
                seed = r["seed"]
                comp = r["components"]
                best_limit = (comp["int8_limit_rate"] if "INT8" in row.what
                              else comp["limit_rate"])
                theirs = seed["n"] / seed["process_seconds"]
                out.append(f"- Even at 100 % of the component limit ({_rate(best_limit)}) "
                           f"astrocat would be {best_limit / theirs:.2f}x the studies' whole "
                           f"process here; {row.target[3:]} needs "
                           f"{float(row.target[3:-1]) * theirs:,.0f}/s, which is "
                           f"{float(row.target[3:-1]) * theirs / best_limit:.0%} of what "
                           f"this machine's cores can decode and infer.")
                out.append(f"- The studies' loop alone runs at {_rate(seed['rate'])}; their "
                           f"process spends {seed['model_load_seconds']:.1f} s loading the "
                           f"Keras model and the rest importing TensorFlow.")
            elif stage and "peak RSS" in row.what:
                r = res[stage]
                parts = r["run"].get("peak_by_process", {})
                out.append("- astrocat's peak was made of: " + ", ".join(
                    f"{k.split(' ', 1)[1]} {v / MiB:,.0f} MiB" for k, v in sorted(parts.items()))
                    + ".")
            elif row.what.startswith("4."):
                m = res["memory"]
                for key in ("n", "10n"):
                    parts = m[key].get("peak_by_process", {})
                    out.append(f"- At {m[key]['n_items']:,} items the peak was made of: "
                               + ", ".join(f"{k.split(' ', 1)[1]} {v / MiB:,.0f} MiB"
                                           for k, v in sorted(parts.items())) + ".")
            elif row.what.startswith("6. Fixed"):
                b = res["startup"]["breakdown"]
                dask = (f"Dask's threaded scheduler imported "
                        f"{b['dask_threaded_import_s']:.2f} s, "
                        if b.get("dask_in_small_run", True) else "")
                out.append(f"- Pieces, each in a fresh interpreter: interpreter "
                           f"{b['interpreter_s']:.2f} s, driver imports "
                           f"{b['driver_imports_s']:.2f} s, the gz2-cnn card verified and "
                           f"checked {b['verify_card_s']:.2f} s, {dask}worker imports "
                           f"{b['worker_imports_s']:.2f} s.")
                tl = b.get("timeline")
                if tl:
                    out.append("- In order: " + "; ".join(
                        f"{x['step']} {x['seconds']:.2f} s" for x in tl["steps"]) + ".")
            elif row.what.startswith("6."):
                out.append("- `astrocat --help` imports only click and the CLI module; the "
                           "time is the interpreter start and the console-script entry point.")
            out.append("")
        return out

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
            r_items = self.results[stage]["run"]["n_items"] if d is not None else 0
            if d is not None:
                spent = (f"Per item the process used {_ms(d.driver_cpu / r_items)} of CPU."
                         if d.in_process and d.driver_cpu else
                         f"Per item the workers spent {_ms(d.per_item_worker)} of one core.")
                out.append(f"Whole `astrocat infer` run of section "
                           f"{ {'images': 1, 'spectra': 2, 'fits': 3}[stage]}: {d.text()}. "
                           + spent)
                out.append("")
            out.append(
                f"Inside one worker (`run_partition` in-process, 1 decoder thread feeding "
                f"1 engine thread, so steps overlap: the total is the wall time per item, "
                f"and the rest is negative by the overlap; "
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
            dask = ("Dask's threaded scheduler imported (a run this small starts no "
                    "cluster)", b["dask_threaded_import_s"])
            small_run_dask = b.get("dask_in_small_run", True)  # astrocat < 0.5: it did
            pieces = [
                ("Python interpreter start", b["interpreter_s"]),
                ("driver imports (click, astrocat.pipeline.run: pyarrow, ...)",
                 b["driver_imports_s"]),
                ("the card the plan uses (gz2-cnn): weights sha256, graph checked",
                 b["verify_card_s"]),
                *([dask] if small_run_dask else []),
                ("worker-side imports on the first partition (astrocat worker, "
                 "onnxruntime, pandas: pyarrow's pa.array imports it)" if small_run_dask else
                 "worker-side imports on the first partition (astrocat worker, onnxruntime)",
                 b["worker_imports_s"]),
                ("model load (gz2-cnn ONNX session)", load),
            ]
            known = sum(v for _, v in pieces)
            pieces.append(("the rest: 10 describes and reads, plan, predict, part, publish, "
                           "exit, overlap", ten - known))
            if not small_run_dask:
                pieces.append(("for comparison, not in this run (one partition runs in the "
                               "calling thread): Dask's threaded scheduler imported, as runs "
                               "of two or more partitions do", dask[1]))
            pieces.append(("for comparison, not in this run: an embedded LocalCluster with "
                           "2 worker processes up / down",
                           b["cluster_up_s"] + b["cluster_down_s"]))
            out.append("### Start-up: the fixed cost of a run")
            out.append("")
            out.append(f"`astrocat infer` on 10 JPEGs took {ten:.2f} s (median of three fresh "
                       "runs). Each piece below is "
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
            *([f"* **Bytecode:** {m['bytecode']}."] if m.get("bytecode") else []),
            "",
            "## Results",
            "",
            _table(["what", "N", "items/s", "comparison", "ratio", "target", "met?"],
                   [r.cells() for r in rows if isinstance(r, Row)]),
            "",
            "Rates are end to end: the wall time of the `astrocat infer --quiet` process "
            "from spawn to exit (imports, planning, cluster start, all partitions, commit), "
            "as a user sees it. Where a row says *steady state*, the fixed cost of the "
            "10-file run (section 6) is taken off the wall time. The FP32 image and FITS "
            "runs are the median of three: on this shared machine the same run's wall time "
            "and CPU time vary by up to a quarter from one minute to the next (the "
            "hypervisor reports no steal time), and each figure is measured at its own "
            "minute.",
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


#: End to end against the component limit, per input kind (issue 29: images and FITS
#: >= 80 %, spectra >= 90 %), and against the interleaved bound (one process per core doing
#: the same components in turn on its own files: what whole items per core can reach).
T_LIMIT = {"images": 0.80, "spectra": 0.90, "fits": 0.80}
T_VS_LIMIT = 0.80  # the default
T_VS_INTERLEAVED = 0.90  # images and FITS, FP32
T_IMAGES_VS_SEED = 3.0  # whole processes, FP32 (and INT8)
T_FITS_VS_SEED = 3.0  # whole processes, FP32 (and INT8)

T_INT8_VS_FP32 = 1.0  # INT8 end to end must be faster than FP32, on a CPU without VNNI

T_FIXED = 1.0  # seconds: `astrocat infer` on 10 files
T_MEMORY = 1.10
T_HELP = 0.5

#: Each input kind's rows: (stage, label, the components of its limit, the whole-process
#: label, the studies' way, the whole-process targets (FP32, INT8) or None).
STAGE_ROWS = (
    ("images", "1. Images (JPEG)", "describe + draft decode + prepare", "1. Images",
     "seed-style PIL crop+resize generator -> Keras predict", T_IMAGES_VS_SEED,
     T_IMAGES_VS_SEED),
    ("spectra", "2. Spectra (one Parquet table)", "row-range read + min-max", "2. Spectra",
     "seed-style whole-table load -> min-max -> Keras predict", None, None),
    ("fits", "3. FITS cut-outs", "describe + read_plane + prepare", "3. FITS",
     "seed-style astropy getdata -> standardise -> Keras predict", T_FITS_VS_SEED,
     T_FITS_VS_SEED),
)

#: The GPU rows, planned on paper (kept as Markdown beside this file).
GPU_PLAN = (Path(__file__).with_name("gpu_plan.md")).read_text().rstrip()

METHOD = """## How each number is measured

* **`astrocat infer` rows:** the real CLI as a subprocess,
  `astrocat infer --quiet --input @list.txt --out CATALOG` (the spectra table is passed
  as the file itself), a fresh catalog and parts directory each time; every row must come
  back `ok` (the harness stops otherwise). Wall time from spawn to exit: imports, listing,
  cluster start, every partition, the commit, teardown. Defaults throughout: runs of more
  than 2,048 items use one Dask worker process whose decoder threads and engine threads
  share the {cores} cores; `--precision int8` rows use the bundled INT8 variants that
  passed their science gates. Images and FITS run three times in each precision,
  alternating: each FP32 run is followed at once by the interleaved bound, an INT8 run
  and the studies' script on the same inputs, and the rows against the bound, INT8 vs
  FP32 and the whole-process rows are the medians of those adjacent ratios (the
  machine's speed changes from minute to minute, much less within one).
* **Peak RSS:** a thread samples the summed RSS of the `astrocat infer` process and all of
  its descendants (Dask's worker processes, multiprocessing helpers) every 50 ms with
  psutil; the peak sample is reported, with what each process held at that moment.
* **Component limit:** on a sample of the same inputs, one core each, best of 3 passes:
  `describe` (what the file is) + the reader (`read_rgb`'s draft decode, `read_plane`, the
  row-range table read) + `prepare`, and the model alone in an ONNX Runtime session with
  1 intra-op thread at its fastest batch (of the one `astrocat infer` chooses, 16, 32 and
  128; all are in RESULTS.json); limit = {cores} cores / (their sum). This is the rate at
  which this machine's cores could do nothing but the unavoidable work.
* **Interleaved bound (images, FITS):** {cores} processes at once, one per core, each
  doing describe, read, prepare and the model in turn, batch by batch, on its own share
  of the sample (the batch `astrocat infer` uses; 8 s after every process has imported
  and loaded its engine): the rate whole items per core can reach while decoding and the
  model share each core's caches, with no GIL, Dask, Parquet or trust columns.
* **The studies' pipelines, whole processes:** `python -m benchmarks.measure seed-...` as
  a subprocess, timed from spawn to exit like `astrocat infer` (TensorFlow's import, the
  Keras model load and the loop). Images: PIL open -> centre crop -> `resize((64, 64))` ->
  numpy / 255, batches of 128 from a Python generator into `model.predict`. FITS:
  `astropy.io.fits.getdata` -> standardise with the card's mean and sigma -> batches of
  128 into `model.predict`. Spectra: `pyarrow.parquet.read_table` of the whole table ->
  min-max -> `model.predict` with Keras' default batch of 32. TF uses all cores.
* **FITS readers:** per file on one core over the sample: astrocat's `read_plane`
  (cfitsio through fitsio, the plain-TAN centre computed directly, astropy for anything
  else) and the astropy reference (memory map + a full astropy `WCS`); the pixels are
  compared file by file.
* **Profiles:** `astrocat.pipeline.worker.run_partition` in-process with one decoder and
  one engine thread on the stage's first partitions (after one warm-up partition), with
  read/decode, preprocess, model, Arrow table build and Parquet write each timed by
  wrapping the function; the rest is per-row Python bookkeeping and batch stacking. The
  same partitions are then run under cProfile.
* **Scaling:** the default (one worker) vs `--workers 2` (two worker processes, each with
  half the cores). The existing scheduler is `dask scheduler --host 127.0.0.1 --port 0`
  plus two `dask worker --nworkers 1 --nthreads 2`, started before timing; the run uses
  `--scheduler ADDRESS`.
* **Start-up:** `astrocat --help` six times, the first discarded (cold file cache), median
  of the other five; `astrocat infer` on 10 JPEGs end to end (the fixed cost of any run),
  broken into pieces each timed in a fresh interpreter, and as a timeline of the driver's
  steps."""
