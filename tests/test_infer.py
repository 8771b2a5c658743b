"""`astrocat infer` end to end on real files, with the bundled models and a real Dask
LocalCluster (separate worker processes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from astropy.table import Table
from click.testing import CliRunner

from astrocat.catalog.reader import provenance
from astrocat.cli import main
from astrocat.sources.describe import describe
from astrocat.sources.discover import resolve_inputs


def _expected_rows(root: Path) -> int:
    _, files = resolve_inputs(str(root))
    return sum(max(1, u.n_items) if u.kind else 1 for u in (describe(p, root) for p in files))


def _infer(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["infer", "--quiet", "--workers", "2", *args])
    return result.exit_code, result.output


def test_every_input_exactly_once(sample_dir, sample_catalog):
    t = pq.read_table(sample_catalog)
    assert t.num_rows == _expected_rows(sample_dir)
    keys = list(zip(t.column("source").to_pylist(), t.column("row").to_pylist(), strict=True))
    assert len(set(keys)) == len(keys)
    kinds = set(t.column("kind").to_pylist())
    assert {"rgb_image", "mono_image", "spectrum", "density_field"} <= kinds


def test_bad_inputs_are_error_rows_with_actionable_messages(sample_catalog):
    t = pq.read_table(sample_catalog).to_pylist()
    errors = [r for r in t if r["status"] == "error"]
    assert errors, "the sample's broken/ folder must produce error rows"
    for r in errors:
        assert r["error"] and "Traceback" not in r["error"]
        assert np.isnan(r.get("p_lens", np.nan))
    broken = {r["source"] for r in errors}
    assert any(s.startswith("broken/") for s in broken)
    ok = [r for r in t if r["status"] == "ok"]
    assert all(r["error"] == "" for r in ok)


def test_outputs_are_in_range_and_tree_consistent(sample_catalog):
    from astrocat.kernels.gz_tree import galaxy_zoo2

    t = pq.read_table(sample_catalog)
    ok = np.array(t.column("status").to_pylist()) == "ok"
    kind = np.array(t.column("kind").to_pylist())
    tree = galaxy_zoo2()
    gz = np.column_stack([t.column(c).to_numpy() for c in tree.catalog_columns])[
        ok & (kind == "rgb_image")]
    assert len(gz) > 0 and tree.violations(gz).max() < 1e-4
    p = t.column("p_lens").to_numpy()[ok & (kind == "mono_image")]
    assert len(p) > 0 and ((p >= 0) & (p <= 1)).all()
    z = t.column("z_pred").to_numpy()[ok & (kind == "spectrum")]
    assert len(z) > 0 and np.isfinite(z).all()
    om = t.column("omega_m_pred").to_numpy()[ok & (kind == "density_field")]
    assert len(om) > 0 and np.isfinite(om).all()


def test_astropy_sees_units_descriptions_and_provenance(sample_catalog):
    at = Table.read(sample_catalog)
    assert str(at["ra"].unit) == "deg"
    assert "Class8.6" in at["gz_odd_merger"].description
    prov = at.meta["astrocat"]
    assert {"gz2-cnn", "lens-lastro", "redshift-cnn1d", "cosmo-cnn"} <= set(prov["models"])
    assert all(len(m["sha256"]) == 64 for m in prov["models"].values())
    assert prov["command"].startswith("astrocat")
    # FITS WCS positions and table ra/dec both arrive
    lens_ra = at["ra"][(at["kind"] == "mono_image") & (at["status"] == "ok")]
    assert np.isfinite(lens_ra).all()
    spec = at[(at["kind"] == "spectrum") & (at["status"] == "ok")]
    assert np.isfinite(spec["ra"]).all() and "z" in at.colnames  # carried truth column


def test_rerun_reuses_parts_and_is_reproducible(sample_dir, sample_catalog, tmp_path):
    out = tmp_path / "again.parquet"
    parts = sample_catalog.with_name(sample_catalog.name + ".parts")
    shutil.copytree(parts, out.with_name(out.name + ".parts"))
    before = pq.read_table(sample_catalog)
    code, _ = _infer("--input", str(sample_dir), "--out", str(out))
    assert code == 1
    manifest = json.loads((out.with_name(out.name + ".parts") / "manifest.json").read_text())
    assert manifest["rows"] == before.num_rows
    after = pq.read_table(out)
    for col in ("object_id", "status", "gz_smooth", "z_pred", "p_lens"):
        assert after.column(col).to_pylist() == before.column(col).to_pylist() or np.allclose(
            after.column(col).to_numpy(), before.column(col).to_numpy(), equal_nan=True)


def test_incremental_rerun_only_processes_new_inputs(sample_dir, have_models, tmp_path):
    src = tmp_path / "survey"
    shutil.copytree(sample_dir / "galaxies", src / "galaxies")
    out = tmp_path / "cat.parquet"
    assert _infer("--input", str(src), "--out", str(out), "--partition-size", "16")[0] == 0
    parts = out.with_name(out.name + ".parts")
    mtimes = {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*.parquet")}
    first = next(iter(sorted((src / "galaxies").glob("*.jpg"))))
    shutil.copy(first, src / "galaxies" / "999999999.jpg")
    code, output = _infer("--input", str(src), "--out", str(out), "--partition-size", "16")
    assert code == 0, output
    now = {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*.parquet")}
    kept = [n for n in now if mtimes.get(n) == now[n]]
    assert len(kept) >= len(mtimes) - 2  # one or two partitions changed, not all
    assert pq.read_table(out).num_rows == len(list((src / "galaxies").glob("*.jpg")))


def test_bad_arguments_exit_2_without_traceback(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["infer", "--input", str(tmp_path / "nope"), "--out",
                             str(tmp_path / "c.parquet")])
    assert r.exit_code == 2 and "Traceback" not in r.output and "error:" in r.output
    r = runner.invoke(main, ["infer", "--input", str(tmp_path), "--out",
                             str(tmp_path / "c.parquet"), "--model", "no-such-model"])
    assert r.exit_code == 2 and "unknown model" in r.output
    r = runner.invoke(main, ["summarize", str(tmp_path / "missing.parquet")])
    assert r.exit_code == 2 and "no catalog" in r.output


def test_help_and_cpu_inference_do_not_import_tensorflow(sample_dir, have_models, tmp_path):
    code = f"""
import sys
from click.testing import CliRunner
from astrocat.catalog.reader import provenance
from astrocat.cli import main
assert CliRunner().invoke(main, ['--help']).exit_code == 0
from astrocat.pipeline.run import build_routing
from astrocat.pipeline.plan import plan_partitions
from astrocat.pipeline.worker import Job, run_partition
from astrocat.sources.describe import describe
from astrocat.sources.discover import resolve_inputs
root, files = resolve_inputs({str(sample_dir)!r})
routing = build_routing(None)
cards = {{c.name: c for c in routing.values()}}
units = [describe(p, root) for p in files]
job = Job(cards=cards, engines={{n: 'onnxruntime' for n in cards}}, parts_dir={str(tmp_path)!r},
          output_order=tuple(cards))
for part in plan_partitions(units, routing, 64):
    run_partition(part, job)
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tensorrt'))
assert not bad, bad[:5]
print('clean')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr[-2000:]


def test_catalog_inside_the_input_directory_is_not_an_input(sample_dir, have_models, tmp_path):
    src = tmp_path / "survey"
    shutil.copytree(sample_dir / "fields", src)
    out = src / "catalog.parquet"
    for _ in range(2):  # the second run sees the first run's catalog and parts beside the maps
        code, output = _infer("--input", str(src), "--out", str(out))
        assert code == 0, output
        assert pq.read_table(out).num_rows == len(list(src.glob("*.npy")))


def test_own_output_sees_through_links(tmp_path):
    """The catalog, its parts and temporaries are recognised by real path, also through a
    linked file or a linked directory inside the input tree."""
    from astrocat.pipeline.own_files import OwnFiles

    out = tmp_path / "catalog.parquet"
    parts = tmp_path / "catalog.parquet.parts"
    parts.mkdir()
    out.write_bytes(b"x")
    (parts / "part-1.parquet").write_bytes(b"x")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.jpg").write_bytes(b"x")
    (inputs / "cat.parquet").symlink_to(out)
    (inputs / "partsdir").symlink_to(parts, target_is_directory=True)
    own = OwnFiles(out, parts)
    assert not own(str(inputs / "a.jpg"))
    assert own(str(out)) and own(str(inputs / "cat.parquet"))
    assert own(str(inputs / "partsdir" / "part-1.parquet"))
    assert own(str(tmp_path / ".catalog.parquet.tmp-123"))
    assert not own(str(parts))  # the directory itself is never listed as a file


def test_a_catalog_with_its_store_beside_it_is_not_an_input(tmp_path, monkeypatch):
    """Another run's catalog (``old.parquet`` beside its store ``old.parquet.parts``) is
    recognised from one listing of its directory; a file merely named like one beside a
    directory that is no store is an input; a directory that cannot be listed falls back
    to looking beside each file."""
    from astrocat.catalog.names import VERSIONS
    from astrocat.pipeline.own_files import CATALOG, OwnFiles

    inputs = tmp_path / "inputs"
    (inputs / "old.parquet.parts" / VERSIONS).mkdir(parents=True)
    (inputs / "plain.parquet.parts").mkdir()  # not a store: no markers
    for name in ("old.parquet", "plain.parquet", "a.jpg"):
        (inputs / name).write_bytes(b"x")
    out = tmp_path / "new.parquet"
    own = OwnFiles(out, tmp_path / "new.parquet.parts")
    assert own(str(inputs / "old.parquet")) == CATALOG
    assert own(str(inputs / "plain.parquet")) is None and own(str(inputs / "a.jpg")) is None
    assert own.parts_names[str(inputs.resolve())] == {"old.parquet.parts",
                                                     "plain.parquet.parts"}

    def unlistable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("astrocat.pipeline.own_files.os.scandir", unlistable)
    again = OwnFiles(out, tmp_path / "new.parquet.parts")
    assert again(str(inputs / "old.parquet")) == CATALOG
    assert again(str(inputs / "plain.parquet")) is None
    assert again.parts_names[str(inputs.resolve())] is None


def test_a_small_run_needs_neither_pandas_nor_dask(sample_dir, have_models, tmp_path):
    """The fixed cost of a small run: one partition runs in the calling thread (no Dask
    import, 0.1 s) and its columns are built without pandas (0.3 s with its exit); the
    provenance says where it ran, and a run of several partitions still uses Dask."""
    ten = tmp_path / "ten"
    ten.mkdir()
    for path in sorted((sample_dir / "galaxies").glob("*.jpg"))[:10]:
        shutil.copy(path, ten)
    code = f"""
import json, sys
from astrocat import api
api.infer({str(ten)!r}, {str(tmp_path / "one.parquet")!r}, progress=False)
print(json.dumps({{"pandas": "pandas" in sys.modules, "dask": "dask" in sys.modules}}))
api.infer({str(ten)!r}, {str(tmp_path / "two.parquet")!r}, progress=False, partition_size=4)
print(json.dumps({{"dask": "dask" in sys.modules}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    first, second = (json.loads(line) for line in r.stdout.strip().splitlines()[-2:])
    assert first == {"pandas": False, "dask": False}
    assert second == {"dask": True}
    one, two = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("one", "two"))
    for table, where, why in ((one, "in-process, the run's one partition", "one partition"),
                              (two, "Dask threaded scheduler", "core(s): one process keeps")):
        assert provenance(table.schema)["execution"].startswith(where)
        assert why in provenance(table.schema)["execution_reason"]
    cols = ["object_id", "source", "status", "error", "model", "gz_smooth", "ood_distance"]
    assert one.select(cols).sort_by("object_id").equals(two.select(cols).sort_by("object_id"))
    assert one.num_rows == 10
