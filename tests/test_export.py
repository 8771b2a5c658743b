"""``astrocat export``: FITS, VOTable and ECSV that TOPCAT/STILTS and astropy open with the
units, UCDs, descriptions and provenance; UCDs in the Parquet itself (VOParquet); rows
streamed in bounded memory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from astrocat import api
from astrocat.catalog.reader import open_catalog
from astrocat.catalog.schema import BASE_COLUMNS, columns_of
from astrocat.errors import AstrocatError

STILTS = shutil.which("stilts")
needs_stilts = pytest.mark.skipif(STILTS is None, reason="STILTS not installed (Debian's "
                                  "'stilts' package; .ci/run installs it)")
EXPECTED_UCDS = {"object_id": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main",
                 "dec": "pos.eq.dec;meta.main", "z_pred": "src.redshift",
                 "p_lens": "stat.probability;src.class",
                 "gz_smooth": "stat.probability;src.morph", "omega_m_pred": "stat.fit.param"}


@pytest.fixture(scope="module")
def exports(sample_catalog, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    return {fmt: api.export(sample_catalog, out / f"catalog.{suffix}").path
            for fmt, suffix in (("fits", "fits"), ("votable", "vot"), ("ecsv", "ecsv"))}


def _values(col) -> np.ndarray:
    """Comparable values: masked (ECSV's empty fields) as '', text as str."""
    if isinstance(col, np.ma.MaskedArray) and col.dtype.kind in "US":
        col = col.filled("")
    arr = np.asarray(col)
    return arr.astype(str) if arr.dtype.kind in "USO" else arr


@pytest.mark.parametrize("fmt", ["fits", "votable", "ecsv"])
def test_astropy_reads_every_value_unit_and_description_back(exports, sample_catalog, fmt):
    ours = Table.read(sample_catalog)
    theirs = Table.read(exports[fmt])
    assert theirs.colnames == ours.colnames
    assert len(theirs) == len(ours) > 400
    for name in ours.colnames:
        a, b = _values(ours[name]), _values(theirs[name])
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b.astype(a.dtype), err_msg=f"{fmt} {name}")
        else:
            assert (a == b).all(), f"{fmt} {name}: {a[a != b][:3]} != {b[a != b][:3]}"
        assert (ours[name].unit or None) == (theirs[name].unit or None), name
    if fmt != "fits":  # astropy's FITS reader keeps neither UCDs nor TCOMM descriptions
        for name, ucd in EXPECTED_UCDS.items():
            assert theirs[name].meta.get("ucd") == ucd, (fmt, name)
        assert theirs["z_pred"].description == "Predicted redshift"


def test_fits_carries_ucds_descriptions_and_provenance_in_its_headers(exports, sample_catalog):
    with fits.open(exports["fits"]) as hdus:
        assert hdus[0].header["VOTMETA"] is True  # FITS-plus: the VOTable header in the primary
        votable = hdus[0].data.tobytes().decode()
        table = hdus[1].header
        ucds = {table[f"TTYPE{i}"]: table.get(f"TUCD{i}") for i in range(1, table["TFIELDS"] + 1)}
        assert table["NAXIS2"] == len(Table.read(sample_catalog))
        provenance = json.loads(table["PROVJSON"])
    for name, ucd in EXPECTED_UCDS.items():
        assert ucds[name] == ucd
        assert f'name="{name}"' in votable and f'ucd="{ucd}"' in votable
    assert provenance == open_catalog(sample_catalog).provenance
    assert set(provenance["models"]) <= {"gz2-cnn", "lens-lastro", "redshift-cnn1d", "cosmo-cnn"}


def _stilts(*args: str) -> str:
    done = subprocess.run([STILTS, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_stilts
@pytest.mark.parametrize("fmt,ifmt", [("fits", "fits-plus"), ("votable", "votable")])
def test_stilts_opens_exports_with_units_ucds_and_row_count(exports, sample_catalog, fmt, ifmt):
    """The real STILTS (Debian's 3.4.7 has no Parquet handler: the reason for the exports)."""
    path = str(exports[fmt])
    count = _stilts("tpipe", f"in={path}", f"ifmt={ifmt}", "omode=count")
    assert f"rows: {len(Table.read(sample_catalog))}" in count
    meta = Table.read(_stilts("tpipe", f"in={path}", f"ifmt={ifmt}",
                              "cmd=meta Name Units UCD Description", "ofmt=csv"),
                      format="ascii.csv")
    rows = {r["Name"]: r for r in meta}
    for name, ucd in EXPECTED_UCDS.items():
        assert rows[name]["UCD"] == ucd, (fmt, name)
    assert rows["ra"]["Units"] == "deg"
    assert rows["ood_distance"]["Description"].endswith("or the row is an error)")  # whole
    # the values as STILTS reads them
    values = Table.read(_stilts("tpipe", f"in={path}", f"ifmt={ifmt}",
                                "cmd=keepcols 'object_id ra z_pred'", "ofmt=csv"),
                        format="ascii.csv")
    ours = Table.read(sample_catalog)
    assert list(values["object_id"].astype(str)) == list(ours["object_id"])
    np.testing.assert_allclose(np.ma.filled(values["ra"], np.nan), ours["ra"], rtol=1e-12)


def test_parquet_carries_ucds_as_voparquet(sample_catalog):
    """IVOA VOParquet: a DATA-less VOTable in the key-value metadata, read by astropy."""
    meta = pq.read_schema(sample_catalog).metadata
    assert meta[b"IVOA.VOTable-Parquet.version"] == b"1.0"
    t = Table.read(sample_catalog, format="parquet.votable")
    for name, ucd in EXPECTED_UCDS.items():
        assert t[name].meta["ucd"] == ucd
    assert t["ra"].unit == "deg"
    plain = Table.read(sample_catalog)  # astropy's own Parquet header keeps them too
    assert plain["ra"].meta["ucd"] == "pos.eq.ra;meta.main"
    fields = {c.name: c.ucd for c in columns_of(pq.read_schema(sample_catalog))}
    assert fields["z_pred"] == "src.redshift"


def test_every_bundled_ucd_is_in_the_ucd1_vocabulary():
    from astropy.io.votable.ucd import check_ucd

    from astrocat.catalog.schema import TRUST_COLUMNS, output_columns
    from astrocat.models import zoo

    columns = [*BASE_COLUMNS, *TRUST_COLUMNS]
    for card in zoo.bundled().values():
        assert all(o.ucd for o in card.outputs), card.name
        columns += output_columns(card)
    for col in columns:
        assert col.ucd, col.name
        assert check_ucd(col.ucd, check_controlled_vocabulary=True), (col.name, col.ucd)


def _synthetic_catalog(path: Path, rows: int) -> None:
    """A file-layout catalog of ``rows`` rows under the base columns, written in chunks."""
    schema = pa.schema([pa.field(c.name, c.type) for c in BASE_COLUMNS])
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            ids = np.arange(start, start + n)
            w.write_table(pa.table({
                "object_id": pa.array([f"obj-{i:09d}" for i in ids]),
                "source": pa.array([f"tiles/t{i % 977:04d}/img_{i}.jpg" for i in ids]),
                "hdu": pa.array(np.full(n, -1, np.int32)),
                "row": pa.array(np.full(n, -1, np.int64)),
                "kind": pa.array(["rgb_image"] * n),
                "model": pa.array(["gz2-cnn"] * n),
                "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-90, 90, n),
                "status": pa.array(["ok"] * n),
                "error": pa.array(["" if i % 50 else "unreadable JPEG: truncated; re-download "
                                   "it" for i in ids]),
            }, schema=schema))


_PEAK = textwrap.dedent("""
    import resource, sys
    from astrocat.catalog.export import export
    export(sys.argv[1], sys.argv[2])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _peak_kib(catalog: Path, out: Path) -> int:
    done = subprocess.run([sys.executable, "-c", _PEAK, str(catalog), str(out)],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.parametrize("suffix", ["fits", "vot"])
def test_export_memory_stays_flat_as_the_catalog_grows(tmp_path, suffix):
    """3x the rows (1.2M, ~150 MB of records) cost nothing more: past its first batches
    (65,536 rows each) the exporter's peak stays where it was."""
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    _synthetic_catalog(small, 400_000)
    _synthetic_catalog(large, 1_200_000)
    peak_small = _peak_kib(small, tmp_path / f"small.{suffix}")
    peak_large = _peak_kib(large, tmp_path / f"large.{suffix}")
    assert peak_large - peak_small < 25 * 1024, (peak_small, peak_large)
    if suffix == "fits":  # (astropy parses a VOTable this long for a minute)
        assert len(Table.read(tmp_path / f"large.{suffix}")) == 1_200_000


def test_text_is_ascii_in_fits_and_votable(tmp_path):
    path = tmp_path / "c.parquet"
    _synthetic_catalog(path, 3)
    t = pq.read_table(path)
    t = t.set_column(0, "object_id", pa.array(["M31", "Andromède", "NGC 224"]))
    pq.write_table(t, path)
    for suffix in ("fits", "vot"):
        out = api.export(path, tmp_path / f"c.{suffix}").path
        assert list(Table.read(out)["object_id"]) == ["M31", "Androm\\xe8de", "NGC 224"]


def test_export_errors_are_messages(tmp_path, sample_catalog):
    with pytest.raises(AstrocatError, match="cannot tell the format"):
        api.export(sample_catalog, tmp_path / "c.txt")
    with pytest.raises(AstrocatError, match="no column nope"):
        api.export(sample_catalog, tmp_path / "c.fits", columns=["object_id", "nope"])
    api.export(sample_catalog, tmp_path / "c.fits", columns=["object_id", "ra"])
    with pytest.raises(AstrocatError, match="exists; give --overwrite"):
        api.export(sample_catalog, tmp_path / "c.fits")
    assert Table.read(tmp_path / "c.fits").colnames == ["object_id", "ra"]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind
    done = subprocess.run([sys.executable, "-m", "astrocat.cli", "export", str(sample_catalog),
                           str(tmp_path / "c.vot")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and Table.read(tmp_path / "c.vot", format="votable")


def test_reused_parts_from_before_ucds_publish_with_the_cards_ucds():
    """A part written by an earlier astrocat (column records without UCDs) is reused, not
    recomputed, and the published columns still carry the UCDs of today's cards."""
    from astrocat.catalog.schema import Column
    from astrocat.catalog.writer import final_columns

    old_part = [["object_id", "string", "", "Identifier", False],
                ["z_pred", "float", "", "Predicted redshift", False],
                ["source_id", "int64", "", "", True]]
    z = Column("z_pred", pa.float32(), "", "Predicted redshift", "src.redshift")
    cols = {c.name: c for c in final_columns([old_part], [z])}
    assert cols["object_id"].ucd == "meta.id;meta.main"
    assert cols["z_pred"].ucd == "src.redshift"
    assert cols["source_id"].ucd == ""
