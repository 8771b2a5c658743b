"""astrocat's Slurm paths on a real one-node Slurm (``one_node_slurm``): Dask workers as
Slurm jobs through dask-jobqueue, a worker job cancelled mid-run, the batch script of
``astrocat schedule --slurm`` submitted with sbatch (``--dependency=singleton`` holding two
submissions apart), and the errors a user can meet, each one line with exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from one_node_slurm import PARTITION, OneNodeSlurm, missing

pytestmark = pytest.mark.slurm
ASTROCAT = [str(Path(sys.executable).with_name("astrocat"))]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    absent = missing()
    if absent:
        pytest.skip(f"Slurm is not installed here (missing {', '.join(absent)}): "
                    "apt-get install slurmctld slurmd slurm-client munge (.ci/run does)")
    with OneNodeSlurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def _astrocat(slurm, *args: str, wait: bool = True, env: dict | None = None):
    cmd = [*ASTROCAT, *args]
    kwargs = dict(env=env or slurm.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                  text=True, cwd=slurm.root)  # worker jobs write slurm-<id>.out here
    if not wait:
        return subprocess.Popen(cmd, **kwargs)
    return subprocess.run(cmd, timeout=300, **kwargs)


def _survey(sample_dir: Path, dest: Path, copies: int = 1) -> Path:
    dest.mkdir(parents=True)
    for k in range(copies):
        for p in sorted((sample_dir / "galaxies").glob("*.jpg")):
            shutil.copy(p, dest / f"{k}{p.name}")
    return dest


def _job(path: Path, survey: Path, cluster: str = "", schedule: str = "", **job) -> Path:
    keys = {"name": '"nightly"', "input": f'"{survey}"', "out": f'"{path.parent / "store"}"',
            **job}
    path.write_text("[job]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
                    + cluster + schedule)
    return path


def _slurm_cluster(jobs: int = 2, **extra: str) -> str:
    keys = {"kind": '"slurm"', "cores": "1", "memory": '"1GB"', "jobs": str(jobs),
            "queue": f'"{PARTITION}"', "walltime": '"00:20:00"', **extra}
    return "[cluster]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def _catalog(store: Path):
    return pq.read_table(_latest(store)).to_pandas().sort_values("source")


def _latest(store: Path) -> Path:
    return store / "latest" / "catalog.parquet"


def _wait_gone(slurm, name: str, seconds: float = 20) -> list[dict]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        left = [j for j in slurm.jobs() if name in j["name"]]
        if not left:
            return []
        time.sleep(0.5)
    return left


def test_a_run_on_slurm_workers_equals_a_local_run(slurm, sample_dir, tmp_path):
    survey = _survey(sample_dir, tmp_path / "survey")
    job = _job(tmp_path / "job.toml", survey, _slurm_cluster(), partition_size="20")
    proc = _astrocat(slurm, "run", str(job), wait=False)
    seen: set[str] = set()
    while proc.poll() is None:  # the workers are Slurm jobs, seen in squeue
        seen |= {j["id"] for j in slurm.jobs() if j["name"] == "dask-worker"}
        time.sleep(0.3)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    assert len(seen) == 2, seen
    assert _wait_gone(slurm, "dask-worker") == []  # no worker job outlives the run
    slurm_cat = _catalog(tmp_path / "store")
    meta = json.loads(pq.read_schema(_latest(tmp_path / "store")).metadata[b"astrocat"])
    assert meta["execution"].startswith("tcp://") and "workers" in meta["execution"]
    assert meta["execution_reason"].startswith("the job file's [cluster] asks for Slurm")
    local = tmp_path / "local.parquet"
    r = _astrocat(slurm, "infer", "-q", "--input", str(survey), "--out", str(local))
    assert r.returncode == 0, r.stdout
    local_cat = pq.read_table(local).to_pandas().sort_values("source")
    assert list(slurm_cat.source) == list(local_cat.source) and len(slurm_cat) == 150
    cols = [c for c in local_cat.columns if c.startswith("gz_")] + ["ood_distance"]
    assert np.allclose(slurm_cat[cols].to_numpy(), local_cat[cols].to_numpy(), atol=1e-6)
    assert (slurm_cat.ood_flag.to_numpy() == local_cat.ood_flag.to_numpy()).all()


def test_a_worker_job_cancelled_mid_run_loses_nothing(slurm, sample_dir, tmp_path):
    survey = _survey(sample_dir, tmp_path / "survey", copies=6)
    job = _job(tmp_path / "job.toml", survey, _slurm_cluster(), partition_size="10",
               batch_size="4")
    proc = _astrocat(slurm, "run", str(job), wait=False)
    parts = tmp_path / "store"
    cancelled = None
    while proc.poll() is None and cancelled is None:
        workers = [j for j in slurm.jobs() if j["name"] == "dask-worker"
                   and j["state"] == "RUNNING"]
        if len(workers) == 2 and any(parts.glob("part-*.parquet")):
            cancelled = workers[0]["id"]
            slurm.run("scancel", cancelled)
        time.sleep(0.1)
    proc.wait(timeout=300)
    out = proc.stdout.read()
    assert cancelled is not None, "the run ended before a worker could be cancelled"
    assert proc.returncode in (0, 1), out
    assert cancelled not in {j["id"] for j in slurm.jobs()}
    cat = _catalog(tmp_path / "store")
    assert len(cat) == 900 and cat.source.is_unique  # every input exactly once
    errors = cat[cat.status == "error"]
    assert all("re-run" in e for e in errors.error), errors.error.unique()
    r = _astrocat(slurm, "run", str(job))  # what failed is retried, and only that
    assert r.returncode == 0, r.stdout
    assert (_catalog(tmp_path / "store").status == "ok").all()
    assert _wait_gone(slurm, "dask-worker") == []


def test_schedule_slurm_runs_through_sbatch_and_singleton_serialises(slurm, sample_dir,
                                                                     tmp_path):
    survey = _survey(sample_dir, tmp_path / "survey")
    schedule = ('[schedule]\nslurm_cpus = 1\nslurm_mem = "1G"\nslurm_time = "00:10:00"\n'
                f'slurm_partition = "{PARTITION}"\nlog = "{tmp_path / "nightly.log"}"\n')
    job = _job(tmp_path / "job.toml", survey, schedule=schedule)
    entries = tmp_path / "entries"
    r = _astrocat(slurm, "schedule", str(job), "--slurm", "--write", str(entries))
    assert r.returncode == 0, r.stdout
    script = entries / "astrocat-nightly.sbatch"

    def submit() -> str:
        return slurm.run("sbatch", "--parsable", str(script)).stdout.strip().split(";")[0]

    def wait_done(ids: list[str], seconds: float = 240) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline and {j["id"] for j in slurm.jobs()} & set(ids):
            time.sleep(0.5)
        assert not {j["id"] for j in slurm.jobs()} & set(ids), slurm.jobs()

    first = submit()  # night 1: a version
    wait_done([first])
    runs = sorted((tmp_path / "store" / "runs").glob("*.json"))
    assert [json.loads(p.read_text())["version"] for p in runs] == [1], \
        (tmp_path / "nightly.log").read_text()
    for p in sorted(survey.glob("*.jpg"))[:5]:  # night 2: new files, two submissions at once
        shutil.copy(p, survey / f"new{p.name}")
    a, b = submit(), submit()
    reasons: set[str] = set()
    states: list[tuple[str, str]] = []
    deadline = time.time() + 240
    while time.time() < deadline and {j["id"] for j in slurm.jobs()} & {a, b}:
        jobs = {j["id"]: j for j in slurm.jobs()}
        running = [i for i in (a, b) if jobs.get(i, {}).get("state") == "RUNNING"]
        assert len(running) <= 1, jobs  # never together
        if b in jobs:
            reasons.add(jobs[b]["reason"])
        states.append(tuple(jobs.get(i, {}).get("state", "gone") for i in (a, b)))
        time.sleep(0.2)
    wait_done([a, b])
    assert "Dependency" in reasons, (reasons, states)
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "store" /
                                                            "runs").glob("*.json"))]
    assert len(records) == 3
    second, third = sorted(records[1:], key=lambda r: r["started_utc"])
    assert second["finished_utc"] <= third["started_utc"]  # one after the other
    assert second["version"] == 2 and second["inputs"]["added"] == 5
    assert third["status"] == "unchanged"  # the second submission found nothing new
    # the scrontab entry: #SCRON options sbatch accepts, then one crontab line
    scron = (entries / "scrontab").read_text().splitlines()
    options = [ln.removeprefix("#SCRON ") for ln in scron if ln.startswith("#SCRON ")]
    entry = [ln for ln in scron if ln and not ln.startswith("#")]
    assert len(entry) == 1 and len(entry[0].split()) > 5
    assert not any(o.startswith("--dependency") for o in options)
    r = slurm.run("sbatch", "--test-only", *options, "--wrap", "true", check=False)
    assert r.returncode == 0, r.stderr


def test_slurm_errors_are_one_line_and_exit_2(slurm, sample_dir, tmp_path):
    survey = _survey(sample_dir, tmp_path / "survey")

    def run(cluster: str, env: dict | None = None) -> str:
        job = _job(tmp_path / "job.toml", survey, cluster)
        t0 = time.time()
        r = _astrocat(slurm, "run", str(job), env=env)
        assert r.returncode == 2, r.stdout
        assert time.time() - t0 < 120
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in r.stdout, r.stdout
        return lines[0]

    bare = {**slurm.env, "PATH": str(Path(sys.executable).parent)}
    assert "sbatch" in run(_slurm_cluster(), env=bare)
    msg = run(_slurm_cluster(queue='"nosuchpartition"'))
    assert "Slurm refused" in msg and "nosuchpartition" in msg
    msg = run(_slurm_cluster(memory='"900TB"'))
    assert "Slurm refused" in msg and "node configuration" in msg
    # a worker job that cannot start: its id and squeue's reason, after start_timeout
    msg = run(_slurm_cluster(jobs=1, start_timeout="5",
                             job_extra_directives='["--begin=now+1hour"]'))
    assert "no Dask worker started within 5 s" in msg and "PENDING: BeginTime" in msg, msg
    assert _wait_gone(slurm, "dask-worker") == []


def test_fixture_skips_cleanly_without_slurm(monkeypatch):
    import one_node_slurm

    monkeypatch.setattr(shutil, "which", lambda name, **where: None)
    assert set(one_node_slurm.missing()) == set(one_node_slurm.BINARIES)
    assert os.environ.get("SLURM_CONF") is None  # the tests never leak it
