"""Catalog layouts with the real libraries: the file (row groups of >= 128k rows), a
dataset directory (DuckDB, pyarrow.dataset, polars, pandas, astropy), a HATS catalog
(LSDB cone search and crossmatch, hats validation), --positions, and summarize reading
all three to the same numbers."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_catalog_writer import _part
from test_summary_frozen import assert_same

from astrocat.catalog.layouts import PublishContext, dataset, prepare
from astrocat.catalog.layouts.file import commit
from astrocat.catalog.store import Store
from astrocat.cli import main

pytest.importorskip("lsdb")  # the [hats] extra, which [dev] includes


def _infer(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["infer", *args])
    return r.exit_code, r.output


def _summary(path: Path) -> dict:
    r = CliRunner().invoke(main, ["summarize", str(path), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.fixture(scope="module")
def lenses(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lenses") / "survey"
    r = CliRunner().invoke(main, ["simulate", "lenses", "--n", "120", "--out", str(out),
                                  "--seed", "5", "-q"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def lens_catalogs(lenses, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lenscats")
    out = {}
    for layout in ("file", "dataset", "hats"):
        path = d / (f"{layout}.parquet" if layout == "file" else layout)
        code, output = _infer("-q", "--input", str(lenses), "--out", str(path), "--layout",
                              layout, "--exclude", "*.csv", "--exclude", "*.json")
        assert code == 0, output
        out[layout] = path
    return out


# --------------------------------------------------------------------------- file


def test_file_layout_row_groups_are_large_and_stream(tmp_path):
    parts = [_part(tmp_path, f"p{i:03d}", 1000) for i in range(300)]
    out = tmp_path / "cat.parquet"
    assert commit(out, parts, ["z_pred"], {"x": 1}) == 300_000
    md = pq.read_metadata(out)
    sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    assert sizes == [131_072, 131_072, 300_000 - 2 * 131_072]


# --------------------------------------------------------------------------- dataset


def test_dataset_counts_right_in_duckdb_pyarrow_polars_pandas_astropy(lens_catalogs):
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds
    from astropy.table import Table, vstack

    ref = pq.read_table(lens_catalogs["file"])
    out = lens_catalogs["dataset"]
    assert (out / "_metadata").is_file() and (out / "_common_metadata").is_file()
    got = duckdb.sql(f"select kind, status, count(*) from read_parquet('{out}/**/*.parquet') "
                     "group by all order by all").fetchall()
    want = ref.group_by(["kind", "status"]).aggregate([([], "count_all")]).sort_by(
        [("kind", "ascending"), ("status", "ascending")])
    assert got == [tuple(r.values()) for r in want.to_pylist()]
    assert ds.dataset(out, format="parquet").count_rows() == ref.num_rows
    assert pl.scan_parquet(f"{out}/*.parquet").select(pl.len()).collect().item() == ref.num_rows
    assert len(pd.read_parquet(out)) == ref.num_rows
    # _metadata names every file and row group: a reader can plan without opening them
    md = pq.read_metadata(out / "_metadata")
    assert md.num_rows == ref.num_rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = vstack([Table.read(f) for f in sorted(out.glob("*.parquet"))])  # the one-liner
    assert len(t) == ref.num_rows and str(t["ra"].unit) == "deg"
    meta = pq.read_schema(out / "_common_metadata").metadata
    assert json.loads(meta[b"astrocat"])["layout"] == "dataset"
    assert pq.read_schema(out / "_common_metadata").field("p_lens").metadata[b"description"]


def test_dataset_segments_are_reused_and_publishing_copies_no_rows(tmp_path):
    parts = [_part(tmp_path, f"p{i:03d}", 500) for i in range(60)]
    store = Store(tmp_path / "store")
    store.root.mkdir()
    ctx = PublishContext(store, options={"segment_rows": 4000})

    def publish(ps):
        n, staged = store.staging()
        got = dataset.publish(prepare(ps, ["z_pred"], {"run": n}), staged, ctx)
        store.publish(n, staged, {"segments": got["segments"]})
        return got

    first = publish(parts)
    assert first["files"] > 3 and first["segments_built"] == first["files"]
    assert first["rows"] == 30_000
    again = publish(parts)  # a new version of the same parts copies nothing
    assert again["segments_built"] == 0 and again["segments"] == first["segments"]
    extra = _part(tmp_path, "p030b", 500)  # one new part in the middle
    grown = publish(parts[:31] + [extra] + parts[31:])
    assert grown["segments_built"] <= 2
    assert len(set(grown["segments"]) - set(first["segments"])) <= 2
    # every published file is a hard link to a shared segment: no copy
    v = store.version_dir(store.latest())
    for f in v.glob("part-*.parquet"):
        assert f.stat().st_nlink >= 2


def test_a_failed_publish_leaves_the_previous_version_whole(lens_catalogs, lenses, tmp_path,
                                                            monkeypatch):
    out = tmp_path / "ds"
    assert _infer("-q", "--input", str(lenses), "--out", str(out), "--layout", "dataset",
                  "--exclude", "*.csv", "--exclude", "*.json")[0] == 0
    before = sorted(p.name for p in out.glob("*.parquet"))

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset.pq, "write_metadata", broken)
    shutil.copy(next(lenses.glob("*.fits")), lenses / "imageEUC_VIS-999999.fits")
    try:
        code, output = _infer("-q", "--input", str(lenses), "--out", str(out), "--layout",
                              "dataset", "--exclude", "*.csv", "--exclude", "*.json")
    finally:
        (lenses / "imageEUC_VIS-999999.fits").unlink()
    assert code == 2 and "No space left" in output
    assert sorted(p.name for p in out.glob("*.parquet")) == before  # still the old version
    import pyarrow.dataset as ds

    assert ds.dataset(out, format="parquet").count_rows() == 120


# --------------------------------------------------------------------------- hats


def _separation_deg(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def _check_hats(path: Path, ref: pa.Table) -> None:
    import lsdb
    from hats.io.validation import is_valid_catalog

    assert is_valid_catalog(str(path), strict=True)
    cat = lsdb.open_catalog(path)
    df = cat.compute()
    assert len(df) == ref.num_rows  # every lens cut-out has a WCS
    assert str(df["ra"].dtype).startswith("double") and str(df["dec"].dtype).startswith(
        "double")
    ra, dec = ref.column("ra").to_numpy(), ref.column("dec").to_numpy()
    ids = np.array(ref.column("object_id").to_pylist())
    for k, radius in ((0, 30.0), (40, 20.0), (80, 12.0)):  # centred on objects: never empty
        ra0, dec0 = float(ra[k]) + 1.0, float(dec[k]) - 0.5
        got = set(cat.cone_search(ra=ra0, dec=dec0, radius_arcsec=radius * 3600)
                  .compute()["object_id"])
        want = set(ids[_separation_deg(ra, dec, ra0, dec0) <= radius])
        assert got == want and want, (ra0, dec0, len(got), len(want))
    # a crossmatch against a few of the same objects, 0.2 arcsec away
    import pandas as pd

    pick = np.arange(0, ref.num_rows, 10)
    others = pd.DataFrame({"ra": ra[pick] + 0.2 / 3600 / math.cos(math.radians(30)),
                           "dec": dec[pick], "name": ids[pick]})
    xm = cat.crossmatch(lsdb.from_dataframe(others, ra_column="ra", dec_column="dec"),
                        radius_arcsec=2).compute()
    assert len(xm) == len(pick)


def test_hats_catalog_opens_in_lsdb_and_cone_search_is_exact(lens_catalogs):
    _check_hats(lens_catalogs["hats"], pq.read_table(lens_catalogs["file"]))


def test_hats_import_on_the_runs_own_client_gives_the_same_catalog(lenses, lens_catalogs,
                                                                   tmp_path):
    from astrocat.pipeline.run import InferOptions, infer

    out = tmp_path / "big"
    s = infer(InferOptions(input=str(lenses), out=out, layout="hats", quiet=True,
                           exclude=("*.csv", "*.json"),
                           layout_options={"hats_lsdb_max_rows": 0}))
    assert s.published["builder"] == "hats-import pipeline_with_client"
    _check_hats(out, pq.read_table(lens_catalogs["file"]))


# --------------------------------------------------------------------------- positions


@pytest.fixture(scope="module")
def galaxies(sample_dir, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gals") / "galaxies"
    shutil.copytree(sample_dir / "galaxies", d)
    return d


def test_positions_place_jpeg_rows_on_the_sky(galaxies, tmp_path):
    ids = sorted(p.stem for p in galaxies.glob("*.jpg"))
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, len(ids)), rng.uniform(-80, 80, len(ids))
    table = tmp_path / "gz_positions.csv"
    table.write_text("GalaxyID,ra,dec\n" + "".join(
        f"{i},{float(r)!r},{float(d)!r}\n" for i, r, d in zip(ids[2:], ra[2:], dec[2:],
                                                            strict=True)))
    out = tmp_path / "c.parquet"
    code, output = _infer("--input", str(galaxies), "--out", str(out), "--positions",
                          str(table))
    assert code == 0, output
    assert f"{len(ids) - 2} rows placed" in output and "2 without an entry" in output
    t = pq.read_table(out).to_pydict()
    at = dict(zip(t["object_id"], zip(t["ra"], t["dec"], strict=True), strict=True))
    for i, r, d in zip(ids, ra, dec, strict=True):
        if i in ids[:2]:
            assert math.isnan(at[i][0]) and math.isnan(at[i][1])
        else:
            assert at[i] == (r, d)
    # and they can live in HATS now
    hats_out = tmp_path / "h"
    code, output = _infer("-q", "--input", str(galaxies), "--out", str(hats_out),
                          "--layout", "hats", "--positions", str(table))
    assert code == 0, output
    import lsdb

    assert len(lsdb.open_catalog(hats_out).compute()) == len(ids) - 2
    unplaced = pq.read_table(hats_out / "_astrocat_unplaced.parquet")
    assert sorted(unplaced.column("object_id").to_pylist()) == ids[:2]


@pytest.mark.parametrize("body, phrase", [
    ("GalaxyID,ra,dec\n200000,1,2\n200000,3,4\n", "more than once"),
    ("GalaxyID,ra,dec\n200000,1,95\n", "outside"),
    ("GalaxyID,ra,dec\n200000,-10,5\n", "outside"),
    ("name,ra,dec\nx,1,2\n", "no ID column"),
    ("GalaxyID,alpha,delta\n200000,1,2\n", "no ra column"),
])
def test_a_bad_positions_table_is_a_clear_error(galaxies, tmp_path, body, phrase):
    table = tmp_path / "p.csv"
    table.write_text(body)
    code, output = _infer("--input", str(galaxies), "--out", str(tmp_path / "c.parquet"),
                          "--positions", str(table))
    assert code == 2 and phrase in output and "Traceback" not in output, output


# --------------------------------------------------------------------------- all three


def test_summarize_gives_the_same_numbers_on_all_three_layouts(sample_dir, tmp_path):
    reports = {}
    for layout in ("file", "dataset", "hats"):
        out = tmp_path / (f"{layout}.parquet" if layout == "file" else layout)
        code, output = _infer("-q", "--input", str(sample_dir), "--out", str(out),
                              "--layout", layout)
        assert code == 1, output  # the sample's broken files
        reports[layout] = _summary(out)
    # the HATS catalog is in sky order: per-object lists are compared as sets
    for r in reports.values():
        r["cosmology"]["fields"].sort(key=lambda f: f["object_id"])
    for layout in ("dataset", "hats"):
        assert_same(reports[layout], reports["file"], skip=("$.catalog",))
    for r in reports.values():  # each layout's provenance records the run's drift
        assert r["ood"]["models"]["gz2-cnn"]["drift"]["verdict"] == "in_domain"
        assert r["ood"]["models"]["gz2-cnn"]["drift"]["n"] == 150


def test_out_that_astrocat_did_not_write_is_refused(galaxies, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    code, output = _infer("--input", str(galaxies), "--out", str(out), "--layout", "dataset")
    assert code == 2 and "did not write" in output
    assert (out / "thesis.tex").is_file()
