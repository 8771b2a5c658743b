"""Fine-tuning measured on a simulated survey shift (issue 27, item 3).

    python -m benchmarks.finetune [--size full|tiny] [--data DIR] [--out benchmarks/RESULTS.md]
                                  [--note TEXT] [--reuse-models] [--render]

Everything here is simulated. "The real survey" is astrocat's galaxy simulator seen
through a shifted camera (``CAMERA``: a wider PSF, more sky noise, coarser pixels, other
band gains; ``astrocat simulate galaxies --camera``): the same law of objects and labels
as the bundled ``gz2-cnn`` was trained on (seed 0), rendered differently. A labelled
pool (seed 31) and a separate test set (seed 32) come from it; the test set's objects
are also rendered through the default camera (same seed: the same galaxies, the same
labels), to say how much the shift costs the bundled model.

The task: spirals against everything else, from the truth CSV (``SPIRAL_RULE``), as a
folder per class. On the fixed shifted test set, the AUROC of the spiral score of

* zero-shot: the bundled ``gz2-cnn``'s ``gz_spiral_yes`` (the real ``astrocat infer``);
* fine-tuned: ``astrocat train finetune --from gz2-cnn`` (the real CLI) on 250, 1,000 and
  4,000 training labels, then ``astrocat infer --model OUT``'s ``p_spirals``;
* from scratch: the same architecture and head, random initialisation, every layer
  trained at 1e-3, the same labels, splits, early stopping and budget of epochs
  (``astrocat.models.finetune.finetune(from_scratch=True)``), scored the same way;

with a bootstrap 95 % interval (scipy, resampling the test set), the paired differences,
each training's wall time and epochs, and the drift verdict each ``infer`` run recorded
for the test set (``models.<name>.drift`` in the catalog's provenance).

"N labels" are training labels: ``astrocat train finetune`` splits the labelled set it is
given 70/15/15 (train / early-stopping validation / its own held-out metrics, stratified
by class), so it is given ``ceil(N / 0.70)`` labelled images, the first of the pool (the
sets are nested).

Writes ``benchmarks/FINETUNE.json`` and the "Fine-tuning on a shifted survey" section of
``RESULTS.md`` (the rest of that file is left as it was).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
HEADING = "## Fine-tuning on a shifted survey"
PARENT = "gz2-cnn"
#: The shifted camera standing in for the real survey: factors on the default camera's.
CAMERA = "psf=1.6,noise=2.5,pixel_scale=1.4,colour=1.25/1/0.8"
#: Seeds of the labelled pool and of the test set: not 0 (training), 99 (evaluation),
#: 123 or 2026 (used elsewhere).
POOL_SEED, TEST_SEED = 31, 32
LABELS = "training_solutions_rev1.csv"
#: A spiral: at least 0.3 of the weighted votes (cumulative, as Kaggle's Class4.1 is:
#: features or disk, not edge-on, spiral arms) say it has spiral arms.
SPIRAL_COLUMN, SPIRAL_THRESHOLD = "Class4.1", 0.3
SPIRAL_RULE = f"{SPIRAL_COLUMN} >= {SPIRAL_THRESHOLD}"
ZERO_SHOT_SCORE = "gz_spiral_yes"
SCORE = "p_spirals"
TRAIN_SHARE = 0.70  # astrocat.models.finetune.SPLIT[0]


@dataclass(frozen=True)
class Size:
    labels: tuple[int, ...]  # training labels per fine-tune
    test: int
    head_epochs: int | None  # None: finetune's defaults (10 head + 30 full)
    epochs: int | None
    resamples: int


SIZES = {"full": Size((250, 1000, 4000), 1000, None, None, 1000),
         "tiny": Size((24,), 24, 1, 1, 200)}


def log(msg: str) -> None:
    print(f"[finetune {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def labelled_size(n: int) -> int:
    """Labelled images that leave ``n`` for training after finetune's 70/15/15 split."""
    return math.ceil(n / TRAIN_SHARE)


def run(args: list[str], what: str) -> float:
    """Run a command (the real CLI: ``python -c 'from astrocat.cli import main; ...'``);
    its wall time. Exit 1 (some inputs unusable) is accepted for ``infer``."""
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if r.returncode not in ((0, 1) if "infer" in args[:4] else (0,)):
        raise RuntimeError(f"{what} failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                           f"{r.stderr[-6000:]}")
    return time.perf_counter() - t0


def astrocat(*args: str) -> float:
    if args[0] == "infer":  # always a fresh catalog
        out = Path(args[args.index("--out") + 1])
        out.unlink(missing_ok=True)
        shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    return run([sys.executable, "-c", "from astrocat.cli import main; main()", *args],
               "astrocat " + shlex.join(args))


# --------------------------------------------------------------------------- data


def simulate(folder: Path, n: int, seed: int, camera: str | None) -> None:
    if (folder / "simulation.json").is_file():
        return
    shutil.rmtree(folder, ignore_errors=True)
    log(f"simulating {n} galaxies, seed {seed}, camera {camera or 'default'}")
    astrocat("simulate", "galaxies", "--n", str(n), "--seed", str(seed), "--out", str(folder),
             "-q", *(["--camera", camera] if camera else []))


def read_labels(folder: Path) -> dict[str, bool]:
    """GalaxyID -> spiral, by ``SPIRAL_RULE``, in the CSV's order."""
    with open(folder / LABELS, newline="") as fh:
        return {r["GalaxyID"]: float(r[SPIRAL_COLUMN]) >= SPIRAL_THRESHOLD
                for r in csv.DictReader(fh)}


def class_folders(pool: Path, labels: dict[str, bool], n: int, out: Path) -> dict[str, int]:
    """The first ``n`` of the pool as ``out/spirals/`` and ``out/others/`` (hard links,
    copies where links fail); the count per class."""
    if not (out / ".done").is_file():
        shutil.rmtree(out, ignore_errors=True)
        for gid, spiral in list(labels.items())[:n]:
            target = out / ("spirals" if spiral else "others") / f"{gid}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(pool / f"{gid}.jpg", target)
            except OSError:
                shutil.copy(pool / f"{gid}.jpg", target)
        (out / ".done").write_text("")
    return {c: len(list((out / c).glob("*.jpg"))) for c in ("spirals", "others")}


# --------------------------------------------------------------------------- training


SCRATCH = """
import json, sys
from astrocat.models.finetune import finetune
a = json.loads(sys.argv[1])
finetune(a.pop("data"), a.pop("out"), from_model=a.pop("from_model"), from_scratch=True,
         progress=False, log=lambda m: print(m, file=sys.stderr), **a)
"""


def train(method: str, data: Path, out: Path, size: Size, reuse: bool) -> dict:
    """Fine-tune (the CLI) or train from scratch (finetune(from_scratch=True)) into
    ``out``; wall time, epochs and the card's [training]."""
    record = out / "benchmark.json"
    if reuse and record.is_file() and (out / "card.toml").is_file():
        return json.loads(record.read_text())
    shutil.rmtree(out, ignore_errors=True)
    epochs = [] if size.head_epochs is None else ["--head-epochs", str(size.head_epochs),
                                                  "--epochs", str(size.epochs)]
    if method == "fine-tuned":
        seconds = astrocat("train", "finetune", "--from", PARENT, "--data", str(data),
                           "--out", str(out), "-q", *epochs)
    else:
        args = {"data": str(data), "out": str(out), "from_model": PARENT,
                "command": f"benchmarks.finetune: finetune(from_scratch=True) on {data.name}"}
        if size.head_epochs is not None:
            args |= {"head_epochs": size.head_epochs, "epochs": size.epochs}
        seconds = run([sys.executable, "-c", SCRATCH, json.dumps(args)], f"scratch {out}")
    from astrocat.models.card import load_card

    t = load_card(out).training
    got = {"wall_s": round(seconds, 1), "card_seconds": t.get("seconds"),
           "epochs_head": t.get("epochs_head"), "epochs_full": t.get("epochs_full"),
           "weights_kept": t.get("weights_kept"), "n_train": t.get("n_train"),
           "n_validation": t.get("n_validation"), "n_test": t.get("n_test"),
           "parent": t.get("parent"), "initialisation": t.get("initialisation", "parent"),
           "card_metrics": dict(load_card(out).metrics)}
    record.write_text(json.dumps(got, indent=1))
    return got


# --------------------------------------------------------------------------- measuring


def scores(catalog: Path, column: str, labels: dict[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """The score and the label of each ok row, in ``labels``' order."""
    import pyarrow.parquet as pq

    t = pq.read_table(catalog, columns=["object_id", "status", column]).to_pandas()
    t = t[t.status == "ok"].set_index("object_id")
    keys = [k for k in labels if k in t.index]
    if len(keys) < len(labels):
        log(f"{catalog.name}: {len(labels) - len(keys)} of {len(labels)} test images "
            "without an ok row")
    return t.loc[keys, column].to_numpy(np.float64), np.array([labels[k] for k in keys])


def drift_of(catalog: Path, model: str) -> dict | None:
    """The run's drift record for ``model`` (its provenance), without the sketches."""
    import pyarrow.parquet as pq

    prov = json.loads(pq.read_schema(catalog).metadata[b"astrocat"])
    d = (prov.get("models", {}).get(model) or {}).get("drift")
    return None if d is None else {k: v for k, v in d.items()
                                   if k not in ("sketch", "reference", "test")}


def _auroc(score, y) -> float:
    from astrocat.science.stats import roc_auc

    return roc_auc(score, y)


def bootstrap(stat, data: tuple[np.ndarray, ...], resamples: int, seed: int = 0
              ) -> tuple[float, float]:
    """95 % percentile interval of ``stat`` over paired resamples of the test set
    (``scipy.stats.bootstrap``; the same seed: the same resamples for every score)."""
    from scipy import stats

    with np.errstate(all="ignore"):
        res = stats.bootstrap(data, stat, paired=True, vectorized=False,
                              n_resamples=resamples, confidence_level=0.95,
                              method="percentile", rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return _r(lo), _r(hi)


def _r(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(float(x)) else None


def auroc_entry(score: np.ndarray, y: np.ndarray, resamples: int) -> dict:
    return {"auroc": _r(_auroc(score, y)), "ci95": bootstrap(_auroc, (score, y), resamples),
            "n": len(y), "n_spirals": int(y.sum())}


def difference(a: np.ndarray, b: np.ndarray, y: np.ndarray, resamples: int) -> dict:
    """AUROC(a) - AUROC(b) on the same rows, with its paired bootstrap interval."""
    def stat(sa, sb, t):
        return _auroc(sa, t) - _auroc(sb, t)

    return {"difference": _r(stat(a, b, y)), "ci95": bootstrap(stat, (a, b, y), resamples)}


def evaluate(size: Size, data: Path, reuse: bool) -> dict:
    pool, test, fresh = data / "pool", data / "test", data / "fresh"
    n_pool = labelled_size(max(size.labels))
    simulate(pool, n_pool, POOL_SEED, CAMERA)
    simulate(test, size.test, TEST_SEED, CAMERA)
    simulate(fresh, size.test, TEST_SEED, None)  # the same objects, the default camera
    pool_labels, test_labels = read_labels(pool), read_labels(test)
    if read_labels(fresh) != test_labels:
        raise RuntimeError("the camera changed the labels: it must not")
    results: dict = {
        "camera": CAMERA, "pool_seed": POOL_SEED, "test_seed": TEST_SEED,
        "rule": SPIRAL_RULE, "spiral_share_pool": round(float(np.mean(list(
            pool_labels.values()))), 4),
        "spiral_share_test": round(float(np.mean(list(test_labels.values()))), 4),
        "rows": [], "differences": []}
    runs = data / "runs"
    runs.mkdir(exist_ok=True)

    def infer(model: str, folder: Path, name: str) -> Path:
        out = runs / f"{name}.parquet"
        log(f"infer {name}")
        astrocat("infer", "-q", "--model", model, "--input", str(folder), "--out", str(out))
        return out

    # zero-shot, on the shifted test set and on the same objects unshifted
    zs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for where, folder in (("unshifted", fresh), ("shifted", test)):
        cat = infer(PARENT, folder, f"zero-shot-{where}")
        zs[where] = scores(cat, ZERO_SHOT_SCORE, test_labels)
        results["rows"].append({"labels": 0, "method": "zero-shot", "test_set": where,
                                **auroc_entry(*zs[where], size.resamples),
                                "drift": drift_of(cat, PARENT)})
    if len(zs["shifted"][1]) == len(zs["unshifted"][1]):  # paired: the same objects
        results["shift_cost"] = difference(zs["unshifted"][0], zs["shifted"][0],
                                           zs["shifted"][1], size.resamples)
    for n in size.labels:
        folder = data / "labelled" / str(n)
        counts = class_folders(pool, pool_labels, labelled_size(n), folder)
        got: dict[str, np.ndarray] = {}
        for method, tag in (("fine-tuned", "finetuned"), ("from scratch", "scratch")):
            out = data / "models" / f"{tag}-{n}"
            log(f"{method}, {n} training labels ({sum(counts.values())} labelled: {counts})")
            trained = train(method, folder, out, size, reuse)
            cat = infer(str(out), test, f"{tag}-{n}")
            score, y = scores(cat, SCORE, test_labels)
            got[method] = score
            results["rows"].append({"labels": n, "labelled": sum(counts.values()),
                                    "labelled_per_class": counts, "method": method,
                                    "test_set": "shifted", **auroc_entry(score, y,
                                                                         size.resamples),
                                    **trained, "drift": drift_of(cat, out.name)})
        y = scores(runs / f"finetuned-{n}.parquet", SCORE, test_labels)[1]
        base = zs["shifted"][0] if len(zs["shifted"][0]) == len(y) else None
        results["differences"].append({
            "labels": n,
            "finetuned_minus_scratch": difference(got["fine-tuned"], got["from scratch"], y,
                                                  size.resamples),
            "finetuned_minus_zero_shot": None if base is None else difference(
                got["fine-tuned"], base, y, size.resamples)})
    return results


# --------------------------------------------------------------------------- report


def _ci(e: dict) -> str:
    lo, hi = e["ci95"]
    if e.get("auroc") is None:
        return "-"
    return f"{e['auroc']:.3f} [{'-' if lo is None else f'{lo:.3f}'}, " \
           f"{'-' if hi is None else f'{hi:.3f}'}]"


def _diff(e: dict | None) -> str:
    if not e or e["difference"] is None:
        return "-"
    lo, hi = e["ci95"]
    return (f"{e['difference']:+.3f} [{'-' if lo is None else f'{lo:+.3f}'}, "
            f"{'-' if hi is None else f'{hi:+.3f}'}]")


def _drift(d: dict | None) -> str:
    if not d:
        return "-"
    ratio = d.get("median_ratio")
    return f"{d.get('verdict', '-')}" + ("" if ratio is None else f" ({ratio}x)")


def _epochs(r: dict) -> str:
    if r["method"] == "zero-shot":
        return "-"
    if r["method"] == "from scratch":
        return f"{r['epochs_full']}"
    return f"{r['epochs_head']} + {r['epochs_full']} (kept: {r['weights_kept']})"


def _camera_words(text: str) -> str:
    from astrocat.simulate.galaxies import Camera

    c = Camera.parse(text)
    return (f"PSF {c.psf:g}x wider, sky noise {c.noise:g}x, pixels {c.pixel_scale:g}x "
            f"larger so objects look {c.pixel_scale:g}x smaller, g/r/i gains "
            f"{'/'.join(f'{g:g}' for g in c.colour)}")


def markdown(rec: dict) -> str:
    """The "Fine-tuning on a shifted survey" section of RESULTS.md, from FINETUNE.json."""
    res, m = rec["results"], rec["machine"]
    head, full = rec["epochs"]["head"], rec["epochs"]["full"]
    command = rec["command"]
    if rec.get("note"):  # said in full below
        command = command.replace(shlex.quote(rec["note"]), "TEXT")
    zero = {r["test_set"]: r for r in res["rows"] if r["method"] == "zero-shot"}
    lines = [
        HEADING, "",
        "**Everything here is simulated.** The \"real survey\" is astrocat's galaxy "
        f"simulator seen through a shifted camera (`--camera {res['camera']}`: "
        f"{_camera_words(res['camera'])}), standing in for a real survey that differs "
        "from the one the "
        f"bundled `{PARENT}` was trained on (the default camera, seed 0). The shift keeps "
        "the objects and their labels; only how they look changes.", "",
        f"Produced by `{command}` on {rec['started'][:16].replace('T', ' ')} UTC "
        f"({rec['seconds'] / 60:.1f} min; size `{rec['size']}`), astrocat "
        f"{rec['astrocat_version']}, on {m['cpus']} cores ({m['platform']}; load average "
        f"{m['load_start']} at the start, {m['load_end']} at the end)."
        + (f" {rec['note']}" if rec.get("note") else ""), "",
        f"Labels: spiral if `{res['rule']}` in the truth CSV (cumulative weighted vote "
        "fractions, Kaggle's GZ2 columns), else other: "
        f"{res['spiral_share_pool']:.0%} spirals in the labelled pool (seed "
        f"{res['pool_seed']}), {res['spiral_share_test']:.0%} in the test set (seed "
        f"{res['test_seed']}, {zero['shifted']['n']} images). \"Labels\" are training "
        "labels: `astrocat train finetune` splits what it is given 70/15/15 (train / "
        "early-stopping validation / its own held-out metrics), so it was given "
        "ceil(N / 0.7) labelled images, nested subsets of the pool, as a folder per class "
        "(its split rounds per class, so a few fewer are trained on: the table says how "
        "many).",
        "", "Score: zero-shot, the bundled model's `gz_spiral_yes` (Class4.1); fine-tuned "
        "and from scratch, the new head's `p_spirals`; every score from the real `astrocat "
        "infer` on the fixed shifted test set. Fine-tuned: `astrocat train finetune --from "
        f"{PARENT}` (a new softmax head on its 64 penultimate features, the head alone at "
        "1e-3 then everything but batch normalisation at 1e-4, early stopping on the "
        f"validation loss, patience 5, at most {head} + {full} epochs). From scratch: the "
        "same architecture (`gz_custom_cnn`) and head, random initialisation, every layer "
        "trained at 1e-3, the same labels, splits, early stopping and budget (at most "
        f"{head + full} epochs), "
        "`astrocat.models.finetune.finetune(from_scratch=True)`. AUROC intervals: 95 % "
        f"percentile bootstrap, {rec['resamples']} resamples of the test set "
        "(`scipy.stats.bootstrap`, paired for differences). Wall time: the whole "
        "training process (TensorFlow's start, reading the images, training, the ONNX "
        "export and the reference statistics). Drift: the verdict the `infer` run recorded "
        "for the test set (`models.<name>.drift` in the catalog's provenance) and its "
        "median ood_distance over the model's reference's; a fine-tuned model's reference "
        "comes from its own (shifted) labelled images.", "",
        "| labels | method | AUROC [95 % CI] | epochs | wall time | drift verdict of the test "
        "set |", "|---|---|---|---|---|---|"]
    u = zero["unshifted"]
    lines.append(f"| - | zero-shot `{PARENT}`, **unshifted** simulator (the same objects, "
                 f"default camera) | {_ci(u)} | - | - | {_drift(u.get('drift'))} |")
    for r in res["rows"]:
        if r["test_set"] != "shifted":
            continue
        labels = "0" if r["method"] == "zero-shot" else (
            f"{r['labels']:,} ({r['labelled']:,} given, {r['n_train']:,} trained on)")
        method = f"zero-shot `{PARENT}`" if r["method"] == "zero-shot" else r["method"]
        wall = "-" if r["method"] == "zero-shot" else f"{r['wall_s'] / 60:.1f} min"
        lines.append(f"| {labels} | {method} | {_ci(r)} | {_epochs(r)} | {wall} | "
                     f"{_drift(r.get('drift'))} |")
    lines += ["", "| labels | fine-tuned - from scratch | fine-tuned - zero-shot |",
              "|---|---|---|"]
    for d in res["differences"]:
        lines.append(f"| {d['labels']:,} | {_diff(d['finetuned_minus_scratch'])} | "
                     f"{_diff(d['finetuned_minus_zero_shot'])} |")
    capped = [f"{r['method']} on {r['labels']:,}" for r in res["rows"]
              if r["method"] == "fine-tuned" and r["epochs_head"] >= head
              and r["epochs_full"] >= full
              or r["method"] == "from scratch" and r["epochs_full"] >= head + full]
    if capped:
        lines += ["", "Runs that used their whole budget of epochs (early stopping never "
                  f"ended a stage): {', '.join(capped)}."]
    if "shift_cost" in res:
        lines += ["", f"The shift costs the bundled model {_diff(res['shift_cost'])} AUROC "
                  "(unshifted - shifted, the same objects, paired bootstrap)."]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {"cpus": os.cpu_count(), "platform": platform.platform(terse=True),
            "load_start": f"{load[0]:.1f}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.finetune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--data", type=Path, default=BENCH / ".data" / "finetune")
    ap.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    ap.add_argument("--note", default="",
                    help="a sentence for the section, e.g. what else loaded the machine")
    ap.add_argument("--reuse-models", action="store_true",
                    help="keep models already trained into DATA (after an interrupted run)")
    ap.add_argument("--render", action="store_true",
                    help="only re-render RESULTS.md's section from FINETUNE.json")
    args = ap.parse_args(argv)
    from benchmarks.trust import section_main

    size, mach = SIZES[args.size], machine()

    def extra() -> dict:
        from astrocat import __version__
        from astrocat.models import finetune as finetune_mod

        load_end = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "-"
        return {"astrocat_version": __version__, "machine": {**mach, "load_end": load_end},
                "note": args.note, "resamples": size.resamples,
                "epochs": {"head": size.head_epochs or finetune_mod.HEAD_EPOCHS,
                           "full": size.epochs or finetune_mod.EPOCHS}}

    section_main("finetune", args, argv, "FINETUNE.json", HEADING, markdown,
                 lambda data: evaluate(size, data, args.reuse_models), extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
