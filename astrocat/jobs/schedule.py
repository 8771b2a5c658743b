"""``astrocat schedule JOB.toml``: entries for the schedulers a site already runs.

astrocat never schedules anything itself: it prints a crontab line, a systemd service and
timer pair, or a Slurm batch script (``--dependency=singleton``: one at a time per job
name) and ``scrontab`` entry, all running ``astrocat run JOB.toml`` with absolute paths.
Exit codes the entries can act on: 0 ok, 1 finished with error rows (the catalog is
published), 2 could not run, 3 another run holds the store. A job's ``[schedule]`` table
sets the times (``cron``, ``on_calendar``) and the Slurm resources.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from astrocat.jobs.jobfile import JobSpec

DEFAULT_CRON = "0 2 * * *"
DEFAULT_ON_CALENDAR = "*-*-* 02:00:00"


@dataclass(frozen=True)
class Entry:
    """One file (or crontab text) a scheduler takes, and where it usually goes."""

    name: str
    text: str
    install: str  # how to install it


def command(job: JobSpec) -> list[str]:
    """The run command with absolute paths: this environment's astrocat."""
    script = Path(sys.executable).with_name("astrocat")
    exe = [str(script)] if script.is_file() else [sys.executable, "-m", "astrocat.cli"]
    return [*exe, "run", "--quiet", str(job.path)]


def _log(job: JobSpec) -> str:
    return job.schedule.get("log", str(job.out.parent / f"astrocat-{job.name}.log"))


def cron(job: JobSpec) -> list[Entry]:
    when = job.schedule.get("cron", DEFAULT_CRON)
    line = (f"{when} cd {shlex.quote(str(job.path.parent))} && {shlex.join(command(job))} "
            f">> {shlex.quote(_log(job))} 2>&1")
    return [Entry("crontab", f"# astrocat job {job.name} ({job.path})\n{line}\n",
                  "crontab -e, and add the line (or: (crontab -l; cat) | crontab -)")]


def systemd(job: JobSpec) -> list[Entry]:
    unit = f"astrocat-{job.name}"
    service = f"""[Unit]
Description=astrocat job {job.name} ({job.path})
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={job.path.parent}
ExecStart={shlex.join(command(job))}
# 1: finished, some inputs are error rows (the version is published): not a failure
SuccessExitStatus=1
Nice=10
"""
    timer = f"""[Unit]
Description=Run astrocat job {job.name} on schedule

[Timer]
OnCalendar={job.schedule.get("on_calendar", DEFAULT_ON_CALENDAR)}
Persistent=true
Unit={unit}.service

[Install]
WantedBy=timers.target
"""
    how = (f"copy both to ~/.config/systemd/user/ (or /etc/systemd/system/), then "
           f"systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer")
    return [Entry(f"{unit}.service", service, how), Entry(f"{unit}.timer", timer, how)]


def slurm(job: JobSpec) -> list[Entry]:
    s = job.schedule
    opts = [f"--job-name=astrocat-{job.name}", "--dependency=singleton",
            f"--time={s.get('slurm_time', '04:00:00')}",
            f"--cpus-per-task={s.get('slurm_cpus', 8)}", f"--mem={s.get('slurm_mem', '32G')}",
            f"--output={_log(job)}", "--open-mode=append"]
    if "slurm_partition" in s:
        opts.append(f"--partition={s['slurm_partition']}")
    script = "#!/bin/bash\n" + "".join(f"#SBATCH {o}\n" for o in opts) + (
        f"cd {shlex.quote(str(job.path.parent))}\nexec {shlex.join(command(job))}\n")
    cron_line = s.get("cron", DEFAULT_CRON)
    scron = "".join(f"#SCRON {o}\n" for o in opts if not o.startswith("--dependency")) + (
        f"{cron_line} {shlex.join(command(job))}\n")
    return [Entry(f"astrocat-{job.name}.sbatch", script,
                  "sbatch it once, or from cron; --dependency=singleton keeps one at a time"),
            Entry("scrontab", scron, "scrontab -e, and add these lines")]


SCHEDULERS = {"cron": cron, "systemd": systemd, "slurm": slurm}
