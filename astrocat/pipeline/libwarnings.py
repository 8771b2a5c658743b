"""Library warnings during a run go to a log beside the parts, never to the terminal.

Pillow, astropy and numpy warn about things in one input among millions (a palette PNG,
a non-standard header, a malformed MPO file); printed mid-run they break the progress bar
and say nothing a person can act on at that moment. While a run (or a worker's
partition) is under way, every warning is recorded with the input being read when it
was raised, appended to ``warnings.log`` beside the parts, and counted in the run's
summary line.

The ``warnings`` module is process-wide, so the hook is installed once for however many
partitions run at once in this process (threads), and removed when the last one ends;
which input a warning concerns is known per thread (the decoder thread reading it).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The log's name, beside the parts (``errors.log`` holds failed tasks' tracebacks).
WARNINGS_LOG = "warnings.log"

_lock = threading.Lock()
_active = 0
_saved: warnings.catch_warnings | None = None
_local = threading.local()
_unattributed: list[str] = []


class Recorder:
    """Warnings raised while one partition (or the driver) was working."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @contextmanager
    def reading(self, source: str) -> Iterator[None]:
        """Warnings raised by this thread inside the block concern ``source``."""
        before = getattr(_local, "where", None)
        _local.where = (self, source)
        try:
            yield
        finally:
            _local.where = before

    def write(self, directory: str | Path) -> int:
        """Append the lines (and any no thread claimed) to the log; how many there were."""
        with _lock:
            self.lines.extend(_unattributed)
            _unattributed.clear()
        if self.lines:
            with open(Path(directory) / WARNINGS_LOG, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in self.lines))
        n, self.lines = len(self.lines), []
        return n


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    text = f"{category.__name__}: {str(message).strip()} ({Path(filename).name}:{lineno})"
    where = getattr(_local, "where", None)
    if where is None:
        with _lock:
            _unattributed.append(text)
    else:
        recorder, source = where
        recorder.lines.append(f"{source}: {text}")


@contextmanager
def captured() -> Iterator[None]:
    """Route warnings to recorders while the block runs (re-entrant across threads)."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = warnings.catch_warnings()  # saves and restores filters and the hook
            _saved.__enter__()
            warnings.showwarning = _show
            # every occurrence is recorded (not once per code location), except the
            # deprecation notices Python hides from users anyway
            warnings.simplefilter("always")
            for quiet in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                          ResourceWarning):
                warnings.simplefilter("ignore", quiet)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                _saved.__exit__(None, None, None)
                _saved = None
