"""The same job on an existing Dask cluster: a real `dask scheduler` and two `dask worker`
processes on 127.0.0.1, reached through `astrocat infer --scheduler`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from astrocat.cli import main


def _dask(*args: str, log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("dask")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "dask", *args]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture
def external_cluster(tmp_path):
    sched_file = tmp_path / "scheduler.json"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                   "--scheduler-file", str(sched_file), log=tmp_path / "scheduler.log")]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), (tmp_path / "scheduler.log").read_text()
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.append(_dask("worker", address, "--nworkers", "1", "--nthreads", "1",
                               "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}",
                               log=tmp_path / f"worker{i}.log"))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_infer_on_existing_scheduler_matches_local_run(sample_dir, have_models,
                                                       external_cluster, tmp_path):
    src = sample_dir / "lenses"
    remote = tmp_path / "remote.parquet"
    r = CliRunner().invoke(main, ["infer", "-q", "--input", str(src), "--out", str(remote),
                                  "--scheduler", external_cluster, "--partition-size", "8"])
    assert r.exit_code == 0, r.output
    local = tmp_path / "local.parquet"
    r = CliRunner().invoke(main, ["infer", "-q", "--input", str(src), "--out", str(local),
                                  "--workers", "1"])
    assert r.exit_code == 0, r.output
    a, b = pq.read_table(remote), pq.read_table(local)
    assert a.column("object_id").to_pylist() == b.column("object_id").to_pylist()
    assert np.allclose(a.column("p_lens").to_numpy(), b.column("p_lens").to_numpy(), atol=1e-5)
    prov = json.loads(pq.read_schema(remote).metadata[b"astrocat"])
    assert prov["execution"].startswith(external_cluster)
    assert prov["execution_reason"].startswith("an existing Dask scheduler was named")
    assert json.loads(pq.read_schema(local).metadata[b"astrocat"])["execution_reason"] \
        .startswith("--workers 1: as many worker processes as asked")
    # the parts really ran on both external workers
    manifest = json.loads((tmp_path / "remote.parquet.parts" / "manifest.json").read_text())
    assert len(manifest["workers"]) == 2, manifest["workers"]
    # each worker's parts carry their own sketch of ood_distance; merged on the driver they
    # give the drift of one local run over the same files
    here = json.loads(pq.read_schema(local).metadata[b"astrocat"])
    drift_remote = prov["models"]["lens-lastro"]["drift"]
    drift_local = here["models"]["lens-lastro"]["drift"]
    assert drift_remote["n"] == a.num_rows - a.column("status").to_pylist().count("error")
    for key in ("verdict", "n", "statistic", "median_ratio", "beyond_q95"):
        assert drift_remote[key] == pytest.approx(drift_local[key], abs=1e-3), key


def test_unreachable_scheduler_is_a_clear_error(sample_dir, have_models, tmp_path):
    r = CliRunner().invoke(main, ["infer", "-q", "--input", str(sample_dir / "fields"),
                                  "--out", str(tmp_path / "c.parquet"),
                                  "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 2 and "cannot reach the Dask scheduler" in r.output


#: Preloaded into every worker process: the process that writes a second part dies
#: (``os._exit``, as a worker killed by the kernel would) the first time only, after noting
#: the sources of the one part it did write.
_DIE_ON_SECOND_PART = '''
import json, os
from pathlib import Path
from astrocat.pipeline import worker

MARK = Path(os.environ["ASTROCAT_TEST_DIED"])
real = worker.__dict__.setdefault("_real_write", worker._write)  # preloads may run twice
written = []

def _write(part, *args, **kwargs):
    if written and not MARK.exists():
        MARK.write_text(json.dumps(written[0]))
        os._exit(1)
    stats = real(part, *args, **kwargs)
    written.append([s.unit.source for s in part.slices])
    return stats

worker._write = _write
'''


def test_a_worker_that_dies_mid_task_loses_only_the_parts_it_had_not_written(
        sample_dir, have_models, tmp_path):
    """A cluster's task streams several partitions (``cluster.STRETCH``) and writes each
    part as it finishes. When its worker process dies mid-task (a real LocalCluster
    worker, ``--workers 1``; the scheduler gives up on the task at once), the parts it had
    written are kept, and only the rest become error rows to retry; every input is in the
    catalog once, and the next run recomputes only those."""
    preload = tmp_path / "die.py"
    preload.write_text(_DIE_ON_SECOND_PART)
    mark = tmp_path / "died.json"
    env = {**os.environ, "ASTROCAT_TEST_DIED": str(mark), "OMP_NUM_THREADS": "1",
           "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps([str(preload)]),
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    out = tmp_path / "cat.parquet"
    cmd = [sys.executable, "-m", "astrocat.cli", "infer", "-q", "--input",
           str(sample_dir / "lenses"), "--out", str(out), "--workers", "1",
           "--partition-size", "2"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert mark.exists(), r.stderr[-3000:]  # the worker really died
    assert "Traceback" not in r.stdout + r.stderr
    kept = set(json.loads(mark.read_text()))  # the one part written before it died
    t = pq.read_table(out).to_pandas()
    n_inputs = len(list((sample_dir / "lenses").iterdir()))
    assert len(t) == t["source"].nunique() == n_inputs  # every input once
    failed = t[t["status"] == "error"]
    assert len(failed) and all(e.startswith("the worker processing this input failed")
                               for e in failed["error"])
    assert kept and set(t.loc[t["source"].isin(kept), "status"]) == {"ok"}
    prov = json.loads(pq.read_schema(out).metadata[b"astrocat"])
    assert prov["execution"].startswith("embedded LocalCluster")

    again = subprocess.run(cmd, env={**env, "DASK_DISTRIBUTED__WORKER__PRELOAD":
                                                  "[]"}, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    t = pq.read_table(out).to_pandas()
    assert len(t) == n_inputs and set(t["status"]) == {"ok"}
