"""Job files: everything a scheduled run needs, in one TOML file, checked strictly.

```toml
[job]
name = "nightly-morphology"
input = ["/data/cutouts", "/data/spectra/*.parquet"]   # dirs, globs, @lists
exclude = ["*.tmp"]
out = "/data/catalogs/nightly"                         # the store: versions live inside
layout = "file"                                        # file | dataset | hats
models = ["gz2-cnn"]                                   # bundled names or card paths
retention = 30                                         # versions kept
hdu = "SCI"                                            # optional: FITS HDU, plane, mask

[cluster]                                              # optional: beyond one machine
kind = "slurm"                                         # local | scheduler | slurm
cores = 16
memory = "64GB"

[schedule]                                             # optional: for `astrocat schedule`
cron = "0 2 * * *"
```

Relative paths are relative to the job file's directory, so a job file and its data can
move together. A bad key or value is an error naming the key (``JobError``, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrocat.errors import AstrocatError
from astrocat.models.card import INPUT_FIELDS, hdu_value
from astrocat.pipeline.cluster import ClusterSpec
from astrocat.sources._fits import HduName
from astrocat.strict import Fields, check_table, one_of, read_toml, typed


class JobError(AstrocatError):
    """A job file that cannot be run as written."""


def _strs(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


def _int_at_least(n: int):
    return typed(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n,
                 f"an integer >= {n}")


_TEXT = typed(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string")
JOB_FIELDS: Fields = {
    "name": (True, typed(lambda v: isinstance(v, str) and v.replace("-", "").replace(
        "_", "").isalnum(), "a name of letters, digits, - and _ (it names the scheduler "
        "entries)")),
    "input": (True, typed(lambda v: _strs(v) and bool(v), "a path, glob or @list, or a list "
                          "of them")),
    "exclude": (False, typed(_strs, "a glob or a list of globs")),
    "out": (True, _TEXT),
    "layout": (False, one_of(("file", "dataset", "hats"))),
    "models": (False, typed(_strs, "a bundled model name or card path, or a list of them")),
    "engine": (False, one_of(("auto", "onnxruntime", "tensorflow", "tensorrt"))),
    "precision": (False, one_of(("fp32", "int8"))),
    "memory_budget": (False, _TEXT),
    "workers": (False, _int_at_least(1)),
    "partition_size": (False, _int_at_least(1)),
    "batch_size": (False, _int_at_least(1)),
    "positions": (False, _TEXT),
    "positions_id": (False, _TEXT),
    "retention": (False, _int_at_least(1)),
    "tta": (False, _int_at_least(1)),  # views averaged per item (--tta)
    # FITS products: as in a model card's [input], for every FITS model of the job
    **{k: INPUT_FIELDS[k] for k in ("hdu", "plane", "mask_hdu", "mask_bits")},
}
CLUSTER_FIELDS: Fields = {
    "kind": (True, one_of(("local", "scheduler", "slurm"))),
    "address": (False, _TEXT),  # kind = "scheduler": an existing Dask scheduler
    "cores": (False, _int_at_least(1)),  # slurm: per job
    "memory": (False, _TEXT),  # slurm: per job, e.g. "64GB"
    "queue": (False, _TEXT),  # slurm partition
    "walltime": (False, _TEXT),  # slurm: "04:00:00"
    "jobs": (False, _int_at_least(1)),  # slurm: jobs (nodes) to start
    "processes": (False, _int_at_least(1)),  # slurm: Dask worker processes per job
    "account": (False, _TEXT),
    "job_extra_directives": (False, typed(_strs, "a list of #SBATCH options")),
    "start_timeout": (False, _int_at_least(1)),  # slurm: seconds to wait for a worker job
    "log_directory": (False, _TEXT),  # slurm: the worker jobs' output [default: the cwd]
}
SCHEDULE_FIELDS: Fields = {
    "cron": (False, typed(lambda v: isinstance(v, str) and len(v.split()) == 5,
                          'five cron fields, e.g. "0 2 * * *"')),
    "on_calendar": (False, _TEXT),  # systemd OnCalendar=, e.g. "*-*-* 02:00:00"
    "log": (False, _TEXT),  # where cron/slurm write the run's output
    "slurm_time": (False, _TEXT),
    "slurm_cpus": (False, _int_at_least(1)),
    "slurm_mem": (False, _TEXT),
    "slurm_partition": (False, _TEXT),
}
TABLES = {"job": (True, typed(lambda v: isinstance(v, dict), "a [job] table")),
          "cluster": (False, typed(lambda v: isinstance(v, dict), "a [cluster] table")),
          "schedule": (False, typed(lambda v: isinstance(v, dict), "a [schedule] table"))}


@dataclass(frozen=True)
class JobSpec:
    path: Path  # the job file
    name: str
    inputs: tuple[str, ...]
    out: Path  # the store
    exclude: tuple[str, ...] = ()
    layout: str = "file"
    models: tuple[str, ...] = ()
    engine: str = "auto"
    precision: str = "fp32"
    memory_budget: str | None = None  # e.g. "4GB"
    workers: int | None = None
    partition_size: int = 256
    batch_size: int | None = None
    positions: str | None = None
    positions_id: str | None = None
    retention: int = 30
    hdu: HduName | None = None
    plane: int | str | None = None
    mask_hdu: HduName | None = None
    mask_bits: int | None = None
    tta: int = 1
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    schedule: dict[str, Any] = field(default_factory=dict)


def _list(v: Any) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v)


def _anchor(value: str, base: Path) -> str:
    """A relative path (or @list, or glob) made relative to the job file's directory."""
    at = value.startswith("@")
    p = Path(value[1:] if at else value).expanduser()
    if not p.is_absolute():
        p = base / p
    return ("@" if at else "") + str(p)


def load_job(path: str | Path) -> JobSpec:
    path = Path(path).resolve()
    data = read_toml(path, JobError, "job file")
    check_table(data, TABLES, str(path), JobError)
    job = data["job"]
    check_table(job, JOB_FIELDS, f"{path} [job]", JobError)
    cluster = data.get("cluster", {"kind": "local"})
    check_table(cluster, CLUSTER_FIELDS, f"{path} [cluster]", JobError)
    if cluster["kind"] == "scheduler" and "address" not in cluster:
        raise JobError(f"{path} [cluster]: kind = \"scheduler\" needs address = "
                       "\"tcp://host:8786\"")
    schedule = data.get("schedule", {})
    check_table(schedule, SCHEDULE_FIELDS, f"{path} [schedule]", JobError)
    base = path.parent
    models = tuple(m if "/" not in m and not m.endswith(".toml") else _anchor(m, base)
                   for m in _list(job.get("models", ())))
    return JobSpec(
        path=path, name=job["name"], inputs=tuple(_anchor(i, base) for i in _list(job["input"])),
        out=Path(_anchor(job["out"], base)), exclude=_list(job.get("exclude", ())),
        layout=job.get("layout", "file"), models=models, engine=job.get("engine", "auto"),
        precision=job.get("precision", "fp32"), memory_budget=job.get("memory_budget"),
        workers=job.get("workers"), partition_size=job.get("partition_size", 256),
        batch_size=job.get("batch_size"),
        positions=_anchor(job["positions"], base) if "positions" in job else None,
        positions_id=job.get("positions_id"), retention=job.get("retention", 30),
        hdu=hdu_value(job.get("hdu")), plane=job.get("plane"),
        mask_hdu=hdu_value(job.get("mask_hdu")), mask_bits=job.get("mask_bits"),
        tta=job.get("tta", 1),
        cluster=ClusterSpec(cluster["kind"], {k: v for k, v in cluster.items() if k != "kind"}),
        schedule=dict(schedule))

