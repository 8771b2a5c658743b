"""The HATS layout is ready for crossmatches: astrocat publishes a collection with a margin
cache, and an LSDB crossmatch of another survey against it finds every pair a brute-force
search over all pairs finds, including pairs split by HEALPix partition borders (which the
catalog without its margin misses: the border pairs are real). Both builders (LSDB's
writer, hats-import on a Dask client), the HATS provenance keys, astrocat's own reader,
and the margin option."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from astrocat.catalog import layouts
from astrocat.catalog.layouts import PublishContext, prepare
from astrocat.catalog.schema import BASE_COLUMNS, Column, to_field
from astrocat.catalog.store import Store
from astrocat.catalog.writer import write_part
from astrocat.errors import AstrocatError

lsdb = pytest.importorskip("lsdb")  # the [hats] extra, which [dev] includes
from astrocat.catalog.layouts import hats  # noqa: E402  (needs the [hats] extra)

RADIUS = 10.0  # arcsec: the crossmatch radius, the default margin's
N_UNPLACED = 7
PROVENANCE_KEYS = ("hats_builder", "hats_creation_date", "hats_estsize",
                   "hats_release_date", "hats_version")


# --------------------------------------------------------------------------- the sky


def _offset(ra, dec, sep_arcsec, angle):
    """Points ``sep_arcsec`` from (ra, dec) towards position angle ``angle`` (exact, on
    the sphere)."""
    r, d, s = np.radians(ra), np.radians(dec), np.radians(sep_arcsec / 3600)
    d2 = np.arcsin(np.sin(d) * np.cos(s) + np.cos(d) * np.sin(s) * np.cos(angle))
    r2 = r + np.arctan2(np.sin(angle) * np.sin(s) * np.cos(d),
                        np.cos(s) - np.sin(d) * np.sin(d2))
    return np.degrees(r2) % 360, np.degrees(d2)


def _sep_arcsec(ra1, dec1, ra2, dec2):
    """Haversine separations, broadcast (float64, good to ~1e-10 arcsec here)."""
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600


def _brute_pairs(sra, sdec, sid, cra, cdec, cid, radius):
    """Every (survey, catalog) pair within ``radius`` arcsec, and each pair's separation,
    from all pairs (in blocks of survey rows)."""
    pairs = {}
    for lo in range(0, len(sra), 256):
        sep = _sep_arcsec(sra[lo:lo + 256, None], sdec[lo:lo + 256, None], cra[None], cdec[None])
        for i, j in zip(*np.nonzero(sep <= radius * (1 + 1e-9)), strict=True):
            pairs[(sid[lo + i], cid[j])] = float(sep[i, j])
    return pairs


@pytest.fixture(scope="module")
def sky():
    """~3,000 catalog positions around (90, 60) in degrees, where the meridian ra = 90
    is the border of HEALPix base pixels 0 and 1 (a partition border at every order), and
    a survey of offset counterparts (some across that meridian) and random points."""
    rng = np.random.default_rng(18)
    n_field, n_border = 2800, 120
    ra = rng.uniform(86, 94, n_field)
    dec = rng.uniform(57, 63, n_field)
    # straddlers: the catalog row just east of ra = 90, the survey's point just west
    bdec = rng.uniform(57.5, 62.5, n_border)
    east = rng.uniform(0.3, 4.0, n_border)  # arcsec from the meridian
    bra = 90 + east / 3600 / np.cos(np.radians(bdec))
    cat_ra, cat_dec = np.concatenate([ra, bra]), np.concatenate([dec, bdec])
    cat_id = np.array([f"g{i:05d}" for i in range(len(cat_ra))])
    west = rng.uniform(0.3, 9.0 - east)  # the pair stays inside the radius
    s_bra = 90 - west / 3600 / np.cos(np.radians(bdec))
    # counterparts of random catalog rows, 0.3-9.5 arcsec away in any direction
    pick = rng.choice(n_field, 700, replace=False)
    c_ra, c_dec = _offset(ra[pick], dec[pick], rng.uniform(0.3, 9.5, len(pick)),
                          rng.uniform(0, 2 * np.pi, len(pick)))
    # and field points with no intended counterpart
    f_ra, f_dec = rng.uniform(86, 94, 1200), rng.uniform(57, 63, 1200)
    s_ra = np.concatenate([s_bra, c_ra, f_ra])
    s_dec = np.concatenate([bdec, c_dec, f_dec])
    s_id = np.array([f"s{i:05d}" for i in range(len(s_ra))])
    brute = _brute_pairs(s_ra, s_dec, s_id, cat_ra, cat_dec, cat_id, RADIUS)
    straddlers = {(s_id[i], cat_id[n_field + i]) for i in range(n_border)}
    assert straddlers <= set(brute)
    return {"cat": (cat_ra, cat_dec, cat_id), "survey": (s_ra, s_dec, s_id),
            "brute": brute, "straddlers": straddlers}


def _parts(tmp_path, ra, dec, ids, n_parts=4):
    """astrocat parts (the columns a run writes) holding these positions, plus rows with
    no sky position (an error row, a JPEG without a WCS) for the unplaced file."""
    ra = np.concatenate([ra, np.full(N_UNPLACED, np.nan)])
    dec = np.concatenate([dec, np.full(N_UNPLACED, np.nan)])
    ids = np.concatenate([ids, [f"nowcs{i}" for i in range(N_UNPLACED)]])
    paths = []
    for k, rows in enumerate(np.array_split(np.arange(len(ra)), n_parts)):
        n = len(rows)
        cols = {
            "object_id": ids[rows].tolist(), "source": [f"img{r}.fits" for r in rows],
            "hdu": [0] * n, "row": [-1] * n, "kind": ["image"] * n,
            "model": ["galaxy-morphology"] * n, "ra": ra[rows], "dec": dec[rows],
            "status": ["ok"] * n, "error": [""] * n,
        }
        fields = [to_field(c) for c in BASE_COLUMNS]
        arrays = [pa.array(cols[c.name], c.type) for c in BASE_COLUMNS]
        fields.append(to_field(Column("p_spiral", pa.float32(), "", "P(spiral)")))
        arrays.append(pa.array(np.linspace(0, 1, n), pa.float32()))
        path = tmp_path / f"part-{k:03d}.parquet"
        write_part(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path,
                   {"n_rows": n, "n_errors": 0, "models": ["galaxy-morphology"],
                    "string_lengths": {"object_id": 7, "error": 1, "source": 14,
                                       "kind": 5, "model": 17, "status": 2}})
        paths.append(path)
    return paths


def _publish(tmp_path, name, ra, dec, ids, client=None, **options):
    """A HATS version published through astrocat's layout, as ``infer`` publishes it."""
    d = tmp_path / name
    d.mkdir()
    parts = _parts(d, ra, dec, ids)
    pub = prepare(parts, ["p_spiral"], {"astrocat_version": "test", "models": {
        "galaxy-morphology": {"version": "1.2"}}})
    store = Store(d / "store")
    store.root.mkdir()
    number, staged = store.staging()
    got = hats.publish(pub, staged, PublishContext(store, client, options))
    return store.publish(number, staged, {"published": got}), got


@pytest.fixture(scope="module")
def by_lsdb(sky, tmp_path_factory):
    ra, dec, ids = sky["cat"]
    return _publish(tmp_path_factory.mktemp("margin"), "lsdb", ra, dec, ids,
                    hats_partition_rows=500)


@pytest.fixture(scope="module")
def by_hats_import(sky, tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    ra, dec, ids = sky["cat"]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        return _publish(tmp_path_factory.mktemp("margin"), "import", ra, dec, ids,
                        client=lambda: client, hats_lsdb_max_rows=0,
                        hats_partition_rows=500)


# --------------------------------------------------------------------------- checks


def _props(path):
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _crossmatch(survey, catalog):
    """{(survey id, catalog id): separation} of LSDB's crossmatch, the catalog on the
    right (so its margin is the one used)."""
    import pandas as pd

    s_ra, s_dec, s_id = survey
    left = lsdb.from_dataframe(pd.DataFrame({"ra": s_ra, "dec": s_dec, "sid": s_id}),
                               ra_column="ra", dec_column="dec", catalog_name="survey",
                               margin_threshold=None)
    xm = left.crossmatch(catalog, radius_arcsec=RADIUS, n_neighbors=16, suffixes=("_s", "_c"),
                         suffix_method="all_columns").compute(progress_bar=False)
    return dict(zip(zip(xm["sid_s"], xm["object_id_c"], strict=True),
                    xm["_dist_arcsec"].astype(float), strict=True))


def _partition_of(catalog, ra, dec):
    """The catalog partition (order, pixel) holding each position, or None."""
    from hats.pixel_math.healpix_shim import radec2pix

    pixels = {(p.order, p.pixel) for p in catalog.get_healpix_pixels()}
    orders = sorted({o for o, _ in pixels})
    at = {o: radec2pix(o, np.asarray(ra), np.asarray(dec)) for o in orders}
    return [next(((o, int(at[o][i])) for o in orders if (o, int(at[o][i])) in pixels), None)
            for i in range(len(ra))]


def _check_complete(sky, dest):
    """LSDB's crossmatch against the published collection = the brute-force pairs."""
    catalog = lsdb.open_catalog(dest)
    assert catalog.margin is not None
    assert catalog.margin.hc_structure.catalog_info.margin_threshold == RADIUS
    got = _crossmatch(sky["survey"], catalog)
    brute = sky["brute"]
    assert max(Counter(s for s, _ in brute).values()) < 16  # n_neighbors leaves none out
    # every pair within the radius (a pair within 1e-9 of it may fall either way)
    inside = {k for k, sep in brute.items() if sep < RADIUS * (1 - 1e-9)}
    assert inside - set(got) == set(), sorted(inside - set(got))[:10]
    assert set(got) <= set(brute)
    for k, sep in got.items():
        assert sep == pytest.approx(brute[k], abs=1e-6)
    return catalog, got


def test_lsdb_crossmatch_with_the_margin_finds_every_brute_force_pair(sky, by_lsdb):
    dest, published = by_lsdb
    catalog, got = _check_complete(sky, dest)
    assert len(catalog.get_healpix_pixels()) >= 8  # several partitions, several borders
    assert published["builder"] == "lsdb.from_dataframe + to_hats"
    assert published["margin_arcsec"] == RADIUS and published["margin_rows"] > 0

    # the border pairs are real: which partition holds each end of every pair
    s_ra, s_dec, s_id = sky["survey"]
    c_ra, c_dec, c_id = sky["cat"]
    s_at = dict(zip(s_id, _partition_of(catalog, s_ra, s_dec), strict=True))
    c_at = dict(zip(c_id, _partition_of(catalog, c_ra, c_dec), strict=True))
    border = {k for k in sky["brute"] if s_at[k[0]] != c_at[k[1]]}
    assert sky["straddlers"] <= border  # ra = 90 splits base pixels
    assert len(border - sky["straddlers"]) > 10  # and the field's pairs cross others
    assert border <= set(got)

    # without its margin (the catalog alone), the crossmatch misses border pairs, and only
    # them: the margin is what makes the crossmatch complete
    alone = lsdb.open_catalog(dest / hats.CATALOG_NAME)
    assert alone.margin is None
    without = _crossmatch(sky["survey"], alone)
    missed = set(sky["brute"]) - set(without)
    assert missed and missed <= border
    assert sky["straddlers"] <= missed


def test_hats_import_builds_the_same_collection_with_its_margin(sky, by_hats_import):
    dest, published = by_hats_import
    assert published["builder"] == "hats-import pipeline_with_client"
    catalog, _ = _check_complete(sky, dest)
    assert len(catalog.get_healpix_pixels()) >= 8
    margin = _props(dest / hats.margin_name(RADIUS) / "hats.properties")
    assert margin["hats_builder"].startswith("astrocat ") and "via hats-import v" in \
        margin["hats_builder"]
    assert margin["hats_primary_table_url"] == hats.CATALOG_NAME  # not the staging path


@pytest.mark.parametrize("built", ["by_lsdb", "by_hats_import"])
def test_collection_layout_properties_and_validation(request, built):
    from hats.io.validation import is_valid_catalog, is_valid_collection

    dest, published = request.getfixturevalue(built)
    margin_dir = dest / hats.margin_name(RADIUS)
    assert margin_dir.name == "astrocat_10arcs"
    assert (dest / "collection.properties").is_file()
    assert (dest / hats.CATALOG_NAME / "hats.properties").is_file()
    assert (margin_dir / "hats.properties").is_file()
    assert list((margin_dir / "dataset").rglob("Npix=*.parquet"))
    assert is_valid_collection(str(dest), strict=True)
    assert is_valid_catalog(str(dest), strict=True)
    assert is_valid_catalog(str(dest / hats.CATALOG_NAME), strict=True)
    assert is_valid_catalog(str(margin_dir), strict=True)

    coll = _props(dest / "collection.properties")
    assert coll["hats_primary_table_url"] == hats.CATALOG_NAME
    assert coll["default_margin"] == coll["all_margins"] == margin_dir.name
    main = _props(dest / hats.CATALOG_NAME / "hats.properties")
    margin = _props(margin_dir / "hats.properties")
    assert main["dataproduct_type"] == "object" and margin["dataproduct_type"] == "margin"
    assert float(margin["hats_margin_threshold"]) == RADIUS
    assert int(main["hats_nrows"]) == published["placed"] == \
        len(lsdb.open_catalog(dest).compute(progress_bar=False))
    assert int(margin["hats_nrows"]) == published["margin_rows"] > 0
    import astrocat

    for props, where in ((coll, dest), (main, dest / "astrocat"), (margin, margin_dir)):
        for key in PROVENANCE_KEYS:
            assert props.get(key), (where, key)
        assert props["hats_builder"].startswith(f"astrocat {astrocat.__version__} via ")
        assert ", hats v" in props["hats_builder"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dUTC", props["hats_creation_date"])
        assert props["hats_version"].startswith("v1")
        size = sum(f.stat().st_size for f in where.rglob("*") if f.is_file())
        assert abs(int(props["hats_estsize"]) - size // 1024) <= 2, where
        assert "galaxy-morphology 1.2" in props["obs_description"]


@pytest.mark.parametrize("built", ["by_lsdb", "by_hats_import"])
def test_astrocat_reads_the_catalog_once_not_its_margin(sky, request, built):
    from astrocat.catalog.reader import open_catalog

    dest, published = request.getfixturevalue(built)
    reader = open_catalog(dest)
    assert reader.layout == "hats"
    assert not any(hats.margin_name(RADIUS) in str(f) for f in reader.files)
    ids = [i for b in reader.batches(["object_id"]) for i in b.column(0).to_pylist()]
    assert len(ids) == len(set(ids)) == published["rows"] == len(sky["cat"][2]) + N_UNPLACED
    assert set(ids) == set(sky["cat"][2]) | {f"nowcs{i}" for i in range(N_UNPLACED)}
    assert (dest / hats.UNPLACED).is_file() and published["unplaced"] == N_UNPLACED
    assert reader.provenance.get("models")  # the schema's provenance is found


def test_margin_option_zero_writes_none_and_bad_values_are_refused(tmp_path):
    from hats.io.validation import is_valid_catalog

    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(10, 12, 200), rng.uniform(-1, 1, 200)
    ids = np.array([f"x{i}" for i in range(200)])
    dest, published = _publish(tmp_path, "none", ra, dec, ids, hats_margin_arcsec=0)
    assert published["margin_rows"] == 0 and published["margin_arcsec"] == 0
    assert not list(dest.glob("astrocat_*arcs"))
    assert "all_margins" not in _props(dest / "collection.properties")
    assert is_valid_catalog(str(dest), strict=True)
    assert lsdb.open_catalog(dest).margin is None

    dest, published = _publish(tmp_path, "wide", ra, dec, ids, hats_margin_arcsec=30)
    assert (dest / "astrocat_30arcs").is_dir()
    assert lsdb.open_catalog(dest).margin.hc_structure.catalog_info.margin_threshold == 30

    for bad in (-1, 0.5, 61, "ten", None):
        with pytest.raises(AstrocatError, match="hats_margin_arcsec"):
            layouts.margin_arcsec({"hats_margin_arcsec": bad})
    assert layouts.margin_arcsec({}) == layouts.MARGIN_ARCSEC == RADIUS


def test_a_catalog_far_from_any_border_has_an_empty_valid_margin(tmp_path):
    from hats.io.validation import is_valid_catalog

    ra, dec = np.array([45.0, 45.001]), np.array([20.0, 20.001])  # one pixel, mid-pixel
    dest, published = _publish(tmp_path, "one", ra, dec, np.array(["a", "b"]))
    assert published["placed"] == 2 and published["margin_rows"] == 0
    assert is_valid_catalog(str(dest), strict=True)
    assert len(lsdb.open_catalog(dest).compute(progress_bar=False)) == 2
    assert math.isclose(published["margin_arcsec"], RADIUS)


def test_a_lone_hats_catalog_of_earlier_versions_still_reads(tmp_path):
    """Before the margin cache, ``--layout hats`` wrote a lone catalog at OUT (no
    collection): astrocat's reader and LSDB still open it, with the same rows."""
    import pandas as pd

    from astrocat.catalog.reader import open_catalog

    rng = np.random.default_rng(2)
    df = pd.DataFrame({"object_id": [f"o{i}" for i in range(50)],
                       "ra": rng.uniform(0, 360, 50), "dec": rng.uniform(-80, 80, 50)})
    lsdb.from_dataframe(df, ra_column="ra", dec_column="dec", catalog_name="astrocat") \
        .write_catalog(tmp_path / "old", catalog_name="astrocat", as_collection=False)
    assert not (tmp_path / "old" / "collection.properties").exists()
    reader = open_catalog(tmp_path / "old")
    assert reader.layout == "hats"
    ids = [i for b in reader.batches(["object_id"]) for i in b.column(0).to_pylist()]
    assert sorted(ids) == sorted(df["object_id"])


def test_hats_margin_option_from_the_cli(tmp_path):
    """``--hats-margin`` sets the radius; a bad one fails before any input is read."""
    from click.testing import CliRunner

    from astrocat.cli import main

    sample = str(Path(__file__).resolve().parents[1] / "examples" / "sample" / "lenses")
    bad = CliRunner().invoke(main, ["infer", "--input", sample, "--out", str(tmp_path / "b"),
                                    "--layout", "hats", "--hats-margin", "100"])
    assert bad.exit_code == 2 and "--hats-margin" in bad.output
    assert not (tmp_path / "b.parts").exists()
    ok = CliRunner().invoke(main, ["infer", "--input", sample, "--out", str(tmp_path / "c"),
                                   "--layout", "hats", "--hats-margin", "5", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "c" / "astrocat_5arcs" / "hats.properties").is_file()
    assert lsdb.open_catalog(tmp_path / "c").margin.hc_structure.catalog_info \
        .margin_threshold == 5
