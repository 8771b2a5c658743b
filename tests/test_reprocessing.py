"""Scheduled survey reprocessing: job files, versions, history, diff, one run at a time,
a killed run's successor, scheduler entries. Real files, real processes (``kill -9``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from astrocat.cli import main
from astrocat.models.zoo import bundled

ASTROCAT = [sys.executable, "-m", "astrocat.cli"]


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def _job(tmp: Path, extra: str = "", **keys) -> Path:
    lines = {"name": '"nightly"', "input": '["survey"]', "out": '"store"',
             "layout": '"dataset"', "retention": "10", **keys}
    path = tmp / "job.toml"
    path.write_text("[job]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items()) + extra)
    return path


def _table(store: Path, version: int):
    import pyarrow.dataset as ds

    return ds.dataset(store / "versions" / f"{version:06d}", format="parquet").to_table()


@pytest.fixture
def night(sample_dir, tmp_path) -> Path:
    """A survey of 40 galaxy JPEGs and 10 lens cut-outs, and its job file."""
    survey = tmp_path / "survey"
    (survey / "galaxies").mkdir(parents=True)
    (survey / "lenses").mkdir()
    for p in sorted((sample_dir / "galaxies").glob("*.jpg"))[:40]:
        shutil.copy(p, survey / "galaxies")
    for p in sorted((sample_dir / "lenses").glob("*.fits"))[:10]:
        shutil.copy(p, survey / "lenses")
    _job(tmp_path)
    return tmp_path


def _new_gz2_version(tmp: Path) -> Path:
    """gz2-cnn 0.2.0: the same network with its weights nudged (a retrained model)."""
    import onnx
    from onnx import numpy_helper

    from astrocat.models.card import sha256_file

    src = bundled()["gz2-cnn"].directory
    dst = tmp / "gz2-v2"
    dst.mkdir()
    model = onnx.load(str(src / "model.onnx"))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.03),
                                          init.name))
    onnx.save(model, str(dst / "model.onnx"))
    shutil.copy(src / "reference.npz", dst)  # a retrained model would recompute it
    text = (src / "card.toml").read_text().replace('version = "0.1.0"', 'version = "0.2.0"', 1)
    text = text.replace('keras = "model.keras"\n', "", 1)
    lines = [ln for ln in text.splitlines() if not ln.startswith("keras = ")]
    text = "\n".join(lines).replace(bundled()["gz2-cnn"].sha256["onnx"],
                                    sha256_file(dst / "model.onnx"))
    (dst / "card.toml").write_text(text + "\n")
    return dst / "card.toml"


def test_a_month_of_nights(night, deny_reading):
    job = night / "job.toml"
    store, survey = night / "store", night / "survey"
    gals = survey / "galaxies"

    def run(*extra: str) -> tuple[int, str]:
        return _cli("run", str(job), *extra)

    assert run()[0] == 0                                            # night 1: v1
    for i, p in enumerate(sorted(gals.glob("*.jpg"))[:5]):          # night 2: 5 new files
        shutil.copy(p, gals / f"9{i:05d}.jpg")
    assert run()[0] == 0                                            # v2
    for p in sorted(gals.glob("2*.jpg"))[:3]:                       # night 3: 3 removed
        p.unlink()
    assert run()[0] == 0                                            # v3
    code, output = run()                                            # night 4: nothing new
    assert code == 0 and "no changes" in output and "nothing published" in output
    card = _new_gz2_version(night)                                  # night 5: new model
    _job(night, models=f'["{card}"]')
    assert run()[0] == 0                                            # v4
    flaky = sorted(gals.glob("*.jpg"))[7]                           # night 6: I/O fails
    deny_reading(flaky)
    (survey / "galaxies" / "late.jpg").write_bytes(flaky.read_bytes())  # a new file too
    code, output = run()
    assert code == 1, output                                        # v5, one error row
    deny_reading(None)
    code, output = run("--retry-errors")                            # v6: recovered
    assert code == 0, output

    code, output = _cli("history", str(store), "--json")
    assert code == 0
    h = json.loads(output)
    assert [v["version"] for v in h] == [1, 2, 3, 4, 5, 6]
    rows = [v["rows"] for v in h]
    assert rows == [50, 55, 52, 52, 53, 53]
    assert [v["errors"] for v in h] == [0, 0, 0, 0, 1, 0]
    assert [(v["inputs"]["added"], v["inputs"]["removed"], v["inputs"]["changed"])
            for v in h] == [(50, 0, 0), (5, 0, 0), (0, 3, 0), (0, 0, 0), (1, 0, 0),
                            (0, 0, 0)]
    assert h[3]["models"]["gz2-cnn"]["version"] == "0.2.0"
    assert h[2]["models"]["gz2-cnn"]["version"] == "0.1.0"
    assert h[3]["models"]["lens-lastro"] == h[2]["models"]["lens-lastro"]
    assert 0 < h[3]["computed"] < h[3]["n_parts"]  # the lens rows were not recomputed
    assert all(v["host"] and v["command"] and v["seconds"] > 0 for v in h)
    assert h[-1]["latest"] and not h[0]["latest"]

    # diff v3 -> v4 (the new model) against numbers computed here from the two versions
    code, output = _cli("diff", f"{store}@3", f"{store}@4", "--json")
    assert code == 0, output
    d = json.loads(output)
    a, b = _table(store, 3).to_pandas(), _table(store, 4).to_pandas()
    m = a.merge(b, on=["source", "hdu", "row"], suffixes=("_a", "_b"))
    assert (d["rows_in_both"], d["added"], d["removed"]) == (len(m), 0, 0)
    assert d["status"]["ok_to_error"] == 0 and d["status"]["error_to_ok"] == 0
    for col in ("gz_smooth", "gz_odd_merger", "p_lens"):
        both = (m.status_a == "ok") & (m.status_b == "ok")
        delta = (m[f"{col}_b"] - m[f"{col}_a"])[both].dropna().astype(float)
        got = d["columns"][col]
        assert got["compared"] == len(delta)
        assert got["moved"] == int((delta.abs() > 1e-4).sum())
        assert got["max_abs_change"] == pytest.approx(float(delta.abs().max()), abs=1e-7)
    assert d["columns"]["p_lens"]["moved"] == 0 and d["columns"]["gz_smooth"]["moved"] > 0
    mo = d["morphology"]
    for side, t in (("merger_a", a), ("merger_b", b)):
        g = t[(t.kind == "rgb_image") & (t.status == "ok")]
        assert mo[side]["n"] == len(g)
        assert mo[side]["k"] == int((g.gz_odd_merger >= 0.3).sum())
    became = int(((m.gz_odd_merger_b >= 0.3) & (m.gz_odd_merger_a < 0.3)).sum())
    assert mo["became_mergers"] == became
    # diff STORE alone: latest against the one before it (v6 against v5)
    code, output = _cli("diff", str(store), "--json")
    d = json.loads(output)
    assert d["status"]["error_to_ok"] == 1 and d["added"] == 0
    assert d["status"]["error_to_ok_reasons"] == {  # the whole reason, never cut
        "cannot read file: permission denied; fix the permissions and re-run: it is "
        "retried": 1}
    code, output = _cli("diff", f"{store}@1", f"{store}@2")
    assert code == 0 and "5 added" in output
    # summarize and DuckDB read the store's latest version
    import duckdb

    n = duckdb.sql(f"select count(*) from read_parquet('{store}/latest/**/*.parquet')")
    assert n.fetchall()[0][0] == 53
    assert _cli("summarize", str(store), "--json")[0] == 0
    runs = sorted((store / "runs").glob("*.json"))
    assert len(runs) == 7 and json.loads(runs[3].read_text())["status"] == "unchanged"


def test_a_second_run_is_refused_while_one_runs(night):
    job = night / "job.toml"
    lenses = night / "survey" / "lenses"
    for i in range(200):  # enough work that the first run is still going
        shutil.copy(next(lenses.glob("*.fits")), lenses / f"imageEUC_VIS-{500000 + i}.fits")
    first = subprocess.Popen([*ASTROCAT, "run", "--quiet", str(job)], stderr=subprocess.PIPE,
                             text=True)
    lock = night / "store" / "lock"
    deadline = time.time() + 60
    while time.time() < deadline and not (lock.is_file() and lock.stat().st_size):
        time.sleep(0.05)
    code, output = _cli("run", str(job))
    first.wait(timeout=300)
    assert first.returncode == 0, first.stderr
    assert code == 3, output
    assert f"pid {first.pid}" in output and "another astrocat run holds" in output
    runs = [json.loads(p.read_text()) for p in (night / "store" / "runs").glob("*.json")]
    assert sorted(r["status"] for r in runs) == ["locked", "ok"]


def test_kill_9_mid_run_then_one_new_version_nothing_lost(night):
    job = _job(night, workers="2", partition_size="8")
    lenses = night / "survey" / "lenses"
    for i in range(150):
        shutil.copy(next(lenses.glob("*.fits")), lenses / f"imageEUC_VIS-{600000 + i}.fits")
    n_inputs = len(list((night / "survey").rglob("*.*")))
    proc = subprocess.Popen([*ASTROCAT, "run", "--quiet", str(job)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = night / "store"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(store.glob("part-*.parquet"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask workers
    proc.wait()
    finished = len(list(store.glob("part-*.parquet")))
    assert finished >= 3 and not (store / "latest").exists()
    code, output = _cli("run", str(job))
    assert code == 0, output
    assert "took over the lock" in output
    h = json.loads(_cli("history", str(store), "--json")[1])
    assert [v["version"] for v in h] == [1]
    assert finished < h[0]["n_parts"]  # killed in the middle, not after the last part
    assert h[0]["reused"] >= finished - 1  # a part being renamed at the kill may be redone
    t = _table(store, 1)
    sources = t.column("source").to_pylist()
    assert len(sources) == len(set(sources)) == n_inputs  # nothing lost, nothing twice


def test_job_file_errors_name_the_key(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "n"\ninput = "x"\nout = "s"\nlayuot = "file"\n')
    code, output = _cli("run", str(job))
    assert code == 2 and "layuot" in output and "layout" in output
    job.write_text('[job]\nname = "n"\ninput = "x"\nout = "s"\nlayout = "tree"\n')
    code, output = _cli("run", str(job))
    assert code == 2 and "layout" in output and "'tree'" in output
    job.write_text('[job]\nname = "n"\ninput = "x"\nout = "s"\n[cluster]\nkind = "scheduler"\n')
    code, output = _cli("run", str(job))
    assert code == 2 and "address" in output
    job.write_text('[job]\nname = "n"\ninput = "x"\nout = "s"\nretention = 0\n')
    code, output = _cli("run", str(job))
    assert code == 2 and "retention" in output


def test_schedule_entries_are_ready_to_install(night, tmp_path):
    job = _job(night, extra='[schedule]\ncron = "30 3 * * *"\non_calendar = "*-*-* 03:30:00"\n'
                           'slurm_partition = "batch"\n')
    code, out = _cli("schedule", str(job), "--cron")
    assert code == 0
    line = [ln for ln in out.splitlines() if ln.startswith("30 3 * * *")][0]
    assert str(job) in line and " run --quiet " in line
    written = tmp_path / "units"
    code, out = _cli("schedule", str(job), "--systemd", "--write", str(written))
    assert code == 0 and "OnCalendar=*-*-* 03:30:00" in out
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify",
                            str(written / "astrocat-nightly.service"),
                            str(written / "astrocat-nightly.timer")],
                           capture_output=True, text=True)
        problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                    if "astrocat-nightly" in ln]
        assert r.returncode == 0 and not problems, r.stdout + r.stderr
    code, out = _cli("schedule", str(job), "--slurm")
    assert code == 0
    assert "#SBATCH --dependency=singleton" in out and "#SBATCH --partition=batch" in out
    assert "#SCRON --job-name=astrocat-nightly" in out and f"run --quiet {job}" in out


def test_slurm_cluster_job_script_from_the_cluster_table(night):
    pytest.importorskip("dask_jobqueue")
    from astrocat.jobs.jobfile import load_job
    from astrocat.pipeline.cluster import slurm_cluster

    job = _job(night, extra='[cluster]\nkind = "slurm"\ncores = 16\nmemory = "64GB"\n'
                           'queue = "gpu"\nwalltime = "02:00:00"\njobs = 4\n')
    spec = load_job(job).cluster
    cluster = slurm_cluster(spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p gpu" in script and "#SBATCH -t 02:00:00" in script
    assert "#SBATCH --cpus-per-task=16" in script or "#SBATCH -n 1" in script
    assert "--nworkers 16" in script or "--nprocs 16" in script
    assert spec.options["jobs"] == 4
