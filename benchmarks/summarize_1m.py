"""Benchmark: ``astrocat summarize`` on a synthetic 1,000,000-row catalog.

Writes a catalog with every task's columns (37 Galaxy Zoo answers, z_pred and a carried
true z, p_lens, Omega_m/sigma_8; 1 % error rows) through the project's own writer (parts,
then ``commit``), optionally with truth CSVs in the published layouts, then runs
``astrocat summarize`` in a fresh process and prints its wall time and peak RSS
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``).

    python benchmarks/summarize_1m.py [--rows N] [--truth] [--plots] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from astrocat.catalog.layouts.file import commit
from astrocat.catalog.schema import BASE_COLUMNS, Column, to_field
from astrocat.catalog.writer import write_part
from astrocat.kernels.gz_tree import galaxy_zoo2

SHARES = {"rgb_image": 0.40, "spectrum": 0.30, "mono_image": 0.25, "density_field": 0.05}
PART_ROWS = 100_000


def _ids(kind: str, start: int, n: int) -> list[str]:
    prefix = {"rgb_image": "", "spectrum": "", "mono_image": "imageEUC_VIS-",
              "density_field": "field_"}[kind]
    return [f"{prefix}{i}" for i in range(start, start + n)]


def make_catalog(out: Path, rows: int, truth_dir: Path | None, seed: int = 0) -> Path:
    """Write the catalog (and, with truth_dir, the truth CSVs); returns the catalog path."""
    parts, outputs, truth = make_parts(out.with_name(out.name + ".parts"), rows, PART_ROWS,
                                       seed, keep_truth=truth_dir is not None)
    commit(out, parts, outputs, {"input_root": str(out.parent), "command": "benchmark"})
    if truth_dir is not None:
        _write_truth(truth_dir, truth, galaxy_zoo2())
    return out


def make_parts(parts_dir: Path, rows: int, part_rows: int, seed: int = 0,
               keep_truth: bool = False, sky: bool = False
               ) -> tuple[list[Path], list[str], dict]:
    """Synthetic parts as the workers write them: (paths, output names, truth); ``sky``:
    every row at a random position on the sky."""
    tree = galaxy_zoo2()
    rng = np.random.default_rng(seed)
    outputs = [*tree.catalog_columns, "z_pred", "p_lens", "omega_m_pred", "sigma_8_pred"]
    cols = [*BASE_COLUMNS] + [Column(o, pa.float32()) for o in outputs] + [
        Column("z", pa.float64())]
    schema = pa.schema([to_field(c) for c in cols])
    carried = schema.field("z").with_metadata({b"carried": b"1"})
    schema = schema.set(schema.get_field_index("z"), carried)
    parts_dir.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    counts = {k: int(round(v * rows)) for k, v in SHARES.items()}
    counts["rgb_image"] += rows - sum(counts.values())
    truth: dict[str, list] = {k: [] for k in SHARES}
    first_id = {"rgb_image": 100_000, "spectrum": 10**9, "mono_image": 100_000,
                "density_field": 0}
    for kind, n_kind in counts.items():
        for a in range(0, n_kind, part_rows):
            n = min(part_rows, n_kind - a)
            ids = _ids(kind, first_id[kind] + a, n)
            status = np.where(rng.random(n) < 0.01, "error", "ok")
            data = {c.name: None for c in cols}
            data.update(object_id=ids, source=[f"{kind}/{i}" for i in ids],
                        hdu=np.full(n, -1, np.int32), row=np.full(n, -1, np.int64),
                        kind=[kind] * n, model=["bench"] * n,
                        ra=rng.uniform(0, 360, n) if sky else np.full(n, np.nan),
                        dec=(np.degrees(np.arcsin(rng.uniform(-1, 1, n))) if sky
                             else np.full(n, np.nan)), status=status,
                        error=np.where(status == "error", "could not read: benchmark", ""))
            nan = np.full(n, np.nan, np.float32)
            for o in outputs:
                data[o] = nan
            data["z"] = np.full(n, np.nan)
            if kind == "rgb_image":
                t = tree.normalise(rng.gamma(0.6, 1.0, (n, 37)))
                p = np.clip(t + rng.normal(0, 0.05, t.shape), 0, 1).astype(np.float32)
                for j, c in enumerate(tree.catalog_columns):
                    data[c] = p[:, j]
                if keep_truth:
                    truth[kind].append((ids, t))
            elif kind == "spectrum":
                zt = rng.uniform(0, 0.5, n)
                data["z"] = zt
                data["z_pred"] = (zt + rng.normal(0, 0.02, n)).astype(np.float32)
            elif kind == "mono_image":
                y = rng.random(n) < 0.5
                data["p_lens"] = np.clip(rng.normal(np.where(y, 0.7, 0.3), 0.2), 0, 1).astype(
                    np.float32)
                truth[kind].append((ids, y))
            else:
                om, s8 = rng.uniform(0.1, 0.5, n), rng.uniform(0.6, 1.0, n)
                data["omega_m_pred"] = (om + rng.normal(0, 0.02, n)).astype(np.float32)
                data["sigma_8_pred"] = (s8 + rng.normal(0, 0.02, n)).astype(np.float32)
                truth[kind].append((ids, np.column_stack([om, s8])))
            table = pa.Table.from_arrays([pa.array(data[c.name], c.type) for c in cols],
                                         schema=schema)
            path = parts_dir / f"part-{len(parts):05d}.parquet"
            write_part(table, path, {"n_rows": n, "string_lengths": {
                "object_id": 24, "source": 40, "kind": 13, "model": 5, "status": 5,
                "error": 25}})
            parts.append(path)
    return parts, outputs, truth


def _write_truth(d: Path, truth: dict, tree) -> None:
    d.mkdir(parents=True, exist_ok=True)
    ids = [int(i) for ch, _ in truth["rgb_image"] for i in ch]
    t = np.concatenate([v for _, v in truth["rgb_image"]])
    cols = {"GalaxyID": ids, **{c: t[:, j] for j, c in enumerate(tree.kaggle_columns)}}
    pacsv.write_csv(pa.table(cols), d / "training_solutions_rev1.csv")
    ids = [int(i.rsplit("-", 1)[1]) for ch, _ in truth["mono_image"] for i in ch]
    y = np.concatenate([v for _, v in truth["mono_image"]]).astype(int)
    pacsv.write_csv(pa.table({"ID": ids, "is_lens": y, "Einstein_area": np.ones(len(y)),
                              "numb_pix_lensed_image": np.ones(len(y), int),
                              "flux_lensed_image_in_sigma": np.ones(len(y))}),
                    d / "lens_labels.csv")
    ids = [int(i.rsplit("_", 1)[1]) for ch, _ in truth["density_field"] for i in ch]
    c = np.concatenate([v for _, v in truth["density_field"]])
    pacsv.write_csv(pa.table({"ID": ids, "omega_m": c[:, 0], "sigma_8": c[:, 1]}),
                    d / "fields_truth.csv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--truth", action="store_true", help="also write and pass truth CSVs")
    ap.add_argument("--plots", action="store_true", help="also draw the figures")
    ap.add_argument("--keep", type=Path, default=None, help="work in DIR and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cat = work / "catalog.parquet"
        t0 = time.perf_counter()
        if not cat.exists():
            make_catalog(cat, args.rows, work / "truth" if args.truth else None)
        build = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "astrocat.cli", "summarize", str(cat), "--json"]
        if args.truth:
            cmd += [a for f in sorted((work / "truth").glob("*.csv")) for a in ("--truth", str(f))]
        if args.plots:
            cmd += ["--plots", str(work / "plots")]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"summarize failed ({r.returncode}): {r.stderr[-2000:]}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        rep = json.loads(r.stdout)
        print(f"summarize {rep['rows']:,} rows (catalog {cat.stat().st_size / 1e6:.0f} MB, "
              f"built in {build:.1f}s){' with truth' if args.truth else ''}"
              f"{' and plots' if args.plots else ''}: wall {wall:.2f}s, "
              f"peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
