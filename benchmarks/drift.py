"""How often a fresh survey like the training data reads ``in_domain``: the false-alarm
rate of the drift verdict (``kernels.drift``), per bundled model.

    python -m benchmarks.drift [--size full|tiny] [--data DIR] [--out benchmarks/RESULTS.md]

Per model, a fresh simulated survey (seed 123: never used in training, in the models'
reference statistics or in the trust benchmark) goes once through the real
``astrocat infer``. Its rows are then cut into runs of 500: disjoint runs, as many as the
survey holds, and further shuffles of the survey until there are 100 (the spectra's
50,000 rows give 100 disjoint runs; 10,000 images give 20 per shuffle, five shuffles).
Each run's verdict is made from its rows' ``ood_distance`` exactly as the pipeline makes
it (a sketch of the run against the reference's held-out distances). Three runs of 500
files also go through ``astrocat infer`` end to end, and the verdict their catalogs
record must be the one made here from their rows. The whole survey's verdict (10,000 or
50,000 rows) shows that significance alone never makes a shift.

The shifted and foreign sets, which must not read ``in_domain``, are the trust
benchmark's (``python -m benchmarks.trust``).

Writes ``benchmarks/DRIFT.json`` and the "Drift per run" section of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.trust import astrocat, section_main

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SEED = 123
HEADING = "## Drift per run: fresh surveys"
#: Share of fresh runs of RUN_ROWS rows that must read in_domain.
TARGET = 0.99
RUN_ROWS = 500
N_RUNS = 100
N_END_TO_END = 3


@dataclass(frozen=True)
class Size:
    galaxies: int
    lenses: int
    fields: int
    spectra: int
    run_rows: int
    n_runs: int


SIZES = {"full": Size(10_000, 10_000, 10_000, 50_000, RUN_ROWS, N_RUNS),
         "tiny": Size(60, 60, 60, 400, 30, 6)}
MODELS = {"gz2-cnn": "galaxies", "lens-lastro": "lenses", "cosmo-cnn": "fields",
          "redshift-cnn1d": "spectra"}


def log(msg: str) -> None:
    print(f"[drift {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def simulate(size: Size, data: Path) -> dict[str, Path]:
    out = {}
    for model, kind in MODELS.items():
        folder = data / kind
        if not (folder / "simulation.json").is_file():
            n = getattr(size, kind)
            log(f"simulating {n} {kind} (seed {SEED})")
            extra = ["--merger-fraction", "0.08"] if kind == "galaxies" else []
            astrocat("simulate", kind, "--n", str(n), "--seed", str(SEED), "--out",
                     str(folder), "-q", *extra)
        out[model] = folder
    return out


def _inputs(folder: Path) -> list[Path]:
    """The survey's input files (not its truth tables or record)."""
    if (folder / "spectra.parquet").is_file():
        return [folder / "spectra.parquet"]
    return sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".fits", ".npy"))


def _distances(catalog: Path, model: str) -> np.ndarray:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(catalog, columns=["model", "status", "ood_distance"])
    keep = pc.and_(pc.equal(t["model"], model), pc.equal(t["status"], "ok"))
    return t.filter(keep)["ood_distance"].to_numpy()


def runs_of(distances: np.ndarray, rows: int, n_runs: int, seed: int = 0) -> list[np.ndarray]:
    """``n_runs`` runs of ``rows`` rows: disjoint within each shuffle of the survey."""
    rng = np.random.default_rng(seed)
    per = len(distances) // rows
    if per < 1:
        raise ValueError(f"{len(distances)} rows: fewer than one run of {rows}")
    out: list[np.ndarray] = []
    while len(out) < n_runs:
        order = rng.permutation(len(distances))
        out += [distances[order[i * rows:(i + 1) * rows]] for i in range(per)]
    return out[:n_runs]


def calibrate(model: str, distances: np.ndarray, size: Size) -> dict:
    from astrocat.kernels import drift
    from astrocat.models import reference_stats
    from astrocat.models.zoo import resolve

    base = reference_stats.of(resolve(model)).baseline()
    records = [drift.compare(drift.Sketch.of(d), base)
               for d in runs_of(distances, size.run_rows, size.n_runs)]
    verdicts = [r["verdict"] for r in records]
    whole = drift.compare(drift.Sketch.of(distances), base)
    per = len(distances) // size.run_rows
    return {
        "survey_rows": int(len(distances)), "run_rows": size.run_rows, "runs": len(records),
        "shuffles": math.ceil(len(records) / per), "independent": per >= len(records),
        "verdicts": {v: verdicts.count(v) for v in drift.VERDICTS if v in verdicts},
        "in_domain_share": verdicts.count("in_domain") / len(verdicts),
        "min_p_value": min(r["p_value"] for r in records),
        "max_statistic": max(r["statistic"] for r in records),
        "max_beyond_q95": max(r["beyond_q95"] for r in records),
        "median_ratio_range": [min(r["median_ratio"] for r in records),
                               max(r["median_ratio"] for r in records)],
        "whole_survey": whole,
    }


def end_to_end(model: str, folder: Path, work: Path, size: Size) -> list[dict]:
    """Runs of ``run_rows`` inputs through ``astrocat infer``: their recorded verdict and
    the one made here from their own rows."""
    import pyarrow.parquet as pq

    from astrocat.kernels import drift
    from astrocat.models import reference_stats
    from astrocat.models.zoo import resolve

    base = reference_stats.of(resolve(model)).baseline()
    files = _inputs(folder)
    out = []
    for i in range(min(N_END_TO_END, len(files) // size.run_rows or N_END_TO_END)):
        src = work / f"{model}-run{i}"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        if files[0].name == "spectra.parquet":
            t = pq.read_table(files[0])
            pq.write_table(t.slice(i * size.run_rows, size.run_rows), src / "spectra.parquet")
        else:
            for p in files[i * size.run_rows:(i + 1) * size.run_rows]:
                (src / p.name).symlink_to(p)
        cat = work / f"{model}-run{i}.parquet"
        astrocat("infer", "-q", "--model", model, "--input", str(src), "--out", str(cat))
        prov = json.loads(pq.read_schema(cat).metadata[b"astrocat"])
        recorded = prov["models"][model]["drift"]
        here = drift.compare(drift.Sketch.of(_distances(cat, model)), base)
        out.append({"n": recorded["n"], "verdict": recorded["verdict"],
                    "statistic": recorded["statistic"], "p_value": recorded["p_value"],
                    "same_as_recomputed": all(recorded[k] == here[k] for k in
                                              ("verdict", "n", "statistic", "p_value"))})
    return out


def evaluate(size: Size, data: Path) -> dict:
    surveys = simulate(size, data)
    work = data / "runs"
    work.mkdir(exist_ok=True)
    results = {}
    for model, folder in surveys.items():
        cat = work / f"{model}-survey.parquet"
        log(f"{model}: the whole fresh survey through astrocat infer")
        seconds = astrocat("infer", "-q", "--model", model, "--input", str(folder), "--out",
                           str(cat), "--exclude", "*.csv", "--exclude", "*.json")
        entry = calibrate(model, _distances(cat, model), size)
        entry["infer_seconds"] = round(seconds, 1)
        log(f"{model}: {entry['verdicts']} over {entry['runs']} runs; end-to-end runs")
        entry["end_to_end"] = end_to_end(model, folder, work, size)
        results[model] = entry
    return results


def markdown(r: dict) -> str:
    from astrocat.kernels import drift

    res = r["results"]
    lines = [HEADING, "",
             f"Produced by `{r['command']}` on {r['started'][:16].replace('T', ' ')} UTC "
             f"({r['seconds'] / 60:.1f} min; size `{r['size']}`). Fresh simulated surveys "
             f"(seed {SEED}, never used in training, in the references or in the trust "
             "benchmark), each through the real `astrocat infer` once, then cut into runs of "
             f"{r['results'][next(iter(res))]['run_rows']} rows; each run's verdict is made "
             "from its own rows as the pipeline makes it. Target: at least "
             f"{TARGET:.0%} of fresh runs read `in_domain`.", "",
             f"Thresholds (`astrocat/kernels/drift.py`): shifted when p < {drift.ALPHA:g} "
             f"and (KS >= {drift.MIN_STATISTIC} or >= {drift.MIN_BEYOND:.0%} beyond the "
             f"reference's 95 % quantile); far when >= {drift.FAR_BEYOND:.0%} beyond it.", "",
             "| model | survey rows | runs (shuffles) | in_domain | other verdicts | min p | "
             "max KS | max beyond 95 % | median ratio range | whole survey | end to end | "
             "met? |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, e in res.items():
        others = ", ".join(f"{v} {n}" for v, n in e["verdicts"].items() if v != "in_domain")
        w = e["whole_survey"]
        e2e = e["end_to_end"]
        lines.append(
            f"| {model} | {e['survey_rows']:,} | {e['runs']} ({e['shuffles']}) | "
            f"{e['in_domain_share']:.0%} | {others or '-'} | {e['min_p_value']:.2g} | "
            f"{e['max_statistic']:.3f} | {100 * e['max_beyond_q95']:.1f}% | "
            f"{e['median_ratio_range'][0]:.3f}-{e['median_ratio_range'][1]:.3f} | "
            f"{w['verdict']} (KS {w['statistic']}, p {w['p_value']:.2g}, median x"
            f"{w['median_ratio']}) | "
            f"{sum(x['verdict'] == 'in_domain' for x in e2e)}/{len(e2e)} in_domain, "
            f"{'same' if all(x['same_as_recomputed'] for x in e2e) else '**differs**'} | "
            f"{'yes' if e['in_domain_share'] >= TARGET else '**no**'} |")
    lines += ["", "Runs from one survey overlap across shuffles (an image is in one run of "
              "each shuffle), so the shuffled runs are not independent samples of the sky; "
              "the spectra's 100 runs are disjoint. The shifted and foreign sets are in "
              "\"Trust per row\" (drift table)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.drift", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--data", type=Path, default=BENCH / ".data" / "drift")
    ap.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    ap.add_argument("--render", action="store_true",
                    help="only re-render RESULTS.md's section from DRIFT.json")
    args = ap.parse_args(argv)
    section_main("drift", args, argv, "DRIFT.json", HEADING, markdown,
                 lambda data: evaluate(SIZES[args.size], data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
