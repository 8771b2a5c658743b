"""A real one-node Slurm cluster for the tests: munge with a generated key, slurmctld and
slurmd in the foreground under the test's control, a minimal slurm.conf in a temporary
directory (this host as the only node, its state and spool beside the conf), torn down
by PID. Debian's packages: ``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs
them when it runs as root).

Pitfalls this avoids (each seen): every client needs ``SLURM_CONF``; the node name must be
``hostname -s``; without ``DefMemPerCPU`` a job without ``--mem`` takes the whole node; the
munge socket's directory must be traversable by everyone; on a 2-core machine dask-jobqueue
workers and a batch job need more CPUs than the node has (``config_overrides`` lets the
node claim ``CPUS``); ``scontrol shutdown`` can hang on a stuck step, so the daemons are
ended by PID after a grace period. The node and controller are given 127.0.0.1, so no
name lookup of the host is needed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo",
            "scancel", "scontrol")
#: CPUs the node claims (more than a small CI machine has: workers mostly wait on I/O).
CPUS = 8
PARTITION = "debug"


#: Where Debian puts the daemons, whether or not the caller's PATH has it.
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin",
                          "/usr/bin"])


def which(binary: str) -> str | None:
    return shutil.which(binary, path=SEARCH)


def missing() -> list[str]:
    return [b for b in BINARIES if which(b) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OneNodeSlurm:
    """``with OneNodeSlurm(tmp) as slurm: subprocess.run([...], env=slurm.env)``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.procs: list[subprocess.Popen] = []
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": SEARCH}

    def run(self, *cmd: str, timeout: float = 30, check: bool = True
            ) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=check)

    def __enter__(self) -> OneNodeSlurm:
        r = self.root
        for d in ("state", "spool", "munge"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o755)  # clients (jobs) must reach the socket
        os.chmod(r, 0o755)
        key = r / "munge" / "munge.key"
        subprocess.run([which("mungekey"), "--create", "--keyfile", str(key)], check=True)
        os.chmod(key, 0o600)
        socket_path = r / "munge" / "munge.socket"
        self._start([which("munged"), "--foreground", "--force", f"--key-file={key}",
                     f"--socket={socket_path}", f"--pid-file={r / 'munge' / 'munged.pid'}",
                     f"--log-file={r / 'munge' / 'munged.log'}",
                     f"--seed-file={r / 'munge' / 'munged.seed'}"], r / "munged.out")
        _wait(lambda: socket_path.exists(), 10, "munged did not create its socket")
        import psutil

        memory_mb = int(psutil.virtual_memory().total / 2**20 * 0.8)
        self.conf.write_text(f"""ClusterName=astrocat-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'slurmctld.log'}
SlurmdLogFile={r / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
DefMemPerCPU=256
MinJobAge=30
KillWait=2
InactiveLimit=0
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self._start([which("slurmctld"), "-D", "-i", "-f", str(self.conf)],
                    r / "slurmctld.out")
        self._start([which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)],
                    r / "slurmd.out")
        _wait(self._idle, 60, f"the Slurm node did not become idle (see {r}/slurm*.log)")
        return self

    def _idle(self) -> bool:
        r = self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10)
        return r.returncode == 0 and r.stdout.strip() in ("idle", "mixed")

    def _start(self, cmd: list[str], log: Path) -> None:
        with open(log, "w") as out:
            self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                               env=self.env, start_new_session=True))

    def jobs(self) -> list[dict[str, str]]:
        """squeue's jobs: id, name, state, reason."""
        r = self.run("squeue", "-h", "-o", "%i|%j|%T|%r")
        return [dict(zip(("id", "name", "state", "reason"), line.split("|"), strict=True))
                for line in r.stdout.splitlines() if line.strip()]

    def __exit__(self, *exc) -> None:
        self.run("scancel", "--user", os.environ.get("USER", "root"), check=False)
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        subprocess.run(["pkill", "-KILL", "-f", str(self.conf)], check=False)


def _wait(ok, seconds: float, message: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if ok():
            return
        time.sleep(0.2)
    raise RuntimeError(message)
