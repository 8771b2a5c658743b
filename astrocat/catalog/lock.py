"""One run at a time per store: a lock file held with ``flock`` and a holder record.

The kernel releases an ``flock`` when its process dies, ``kill -9`` included, so a lock
left by a killed run is recognised as stale by simply getting it; its record (host, pid,
start) is then reported as taken over. Where ``flock`` does not reach across machines
(some NFS mounts), the record decides: a holder on another host whose heartbeat (the
file's mtime, touched every ``HEARTBEAT_S``) is fresh still holds the store.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path

from astrocat.errors import AstrocatError

LOCK_FILE = "lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 5 * HEARTBEAT_S


class LockHeld(AstrocatError):
    """Another run holds the store (exit code 3)."""

    def __init__(self, holder: dict, path: Path) -> None:
        super().__init__(
            f"another astrocat run holds {path.parent} (host {holder.get('host', '?')}, pid "
            f"{holder.get('pid', '?')}, started {holder.get('started_utc', '?')}: "
            f"{holder.get('command', '')}); this run did nothing. If that run is gone for "
            f"good on another machine, remove {path}")
        self.holder = holder


class StoreLock:
    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_FILE
        self._fd: int | None = None
        self._stop = threading.Event()
        self.taken_over: dict | None = None  # the record of a dead holder, if any

    def _record(self) -> dict:
        try:
            return json.loads(os.pread(self._fd, 1 << 16, 0) or b"{}")
        except ValueError:
            return {}

    def acquire(self, command: str) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            raise LockHeld(holder, self.path) from None
        self._fd = fd
        old = self._record()
        if old and not self._is_stale(old):
            self.release(clear=False)
            raise LockHeld(old, self.path)
        self.taken_over = old or None
        me = {"host": socket.gethostname(), "pid": os.getpid(),
              "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        threading.Thread(target=self._beat, daemon=True, name="astrocat-lock").start()
        return self

    def _is_stale(self, rec: dict) -> bool:
        """Having the flock settles it on this host (the kernel drops a dead holder's);
        a holder on another host is alive while its heartbeat is fresh."""
        if rec.get("host") == socket.gethostname():
            return True
        return time.time() - self.path.stat().st_mtime > STALE_AFTER_S

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self, clear: bool = True) -> None:
        """Unlock; ``clear`` empties the record, so that a record left behind always
        means a run that did not end cleanly."""
        self._stop.set()
        if self._fd is None:
            return
        if clear:
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
