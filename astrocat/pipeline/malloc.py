"""Batch arrays on the heap in Dask's worker processes.

Dask's nanny starts every worker process with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
``distributed.nanny.pre-spawn-environ``), to hand freed memory back to the system. Setting
that variable also turns off glibc's sliding mmap threshold, which stays at 128 KiB: every
batch array a worker makes (megabytes of pixels, activations, columns) is then a fresh
``mmap`` whose pages fault in zero-filled, unmapped again when freed. On 6,000 JPEGs with
``--workers 2`` (2-core AMD EPYC, 3 alternating pairs with and without this module) the
run took 12.1-12.9 s with 3.0-3.1 s of system time, and 10.4-11.5 s with 1.1-1.3 s.

A worker's batches are bounded (``feed.IN_FLIGHT``), so its memory stays flat either way:
:func:`keep_batches_on_the_heap` gives glibc back the thresholds its sliding rule reaches
for large arrays (32 MiB mmap threshold, twice that kept on trimming), once per process,
where the environment set the trim threshold and left the mmap threshold alone (whoever
sets both has tuned glibc on purpose). Dask's own workers, ``dask worker``, dask-jobqueue
and dask-cuda workers all get it, since it runs where the partitions run.
"""

from __future__ import annotations

import os
import sys
import threading

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the most its sliding rule reaches.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

_DONE: list[bool] = []
_LOCK = threading.Lock()


def needed() -> bool:
    """Whether this process runs with a fixed trim threshold and glibc's small mmap one."""
    return (sys.platform.startswith("linux") and "MALLOC_TRIM_THRESHOLD_" in os.environ
            and "MALLOC_MMAP_THRESHOLD_" not in os.environ)


def keep_batches_on_the_heap() -> bool:
    """Raise glibc's mmap and trim thresholds in this process where :func:`needed`; True
    if they were set here (now or earlier)."""
    with _LOCK:
        if not _DONE:
            _DONE.append(needed() and _mallopt(MMAP_THRESHOLD, TRIM_THRESHOLD))
        return _DONE[0]


def _mallopt(mmap_threshold: int, trim_threshold: int) -> bool:
    import ctypes  # here: the driver imports this module, and never needs it
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to undo
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)
                and mallopt(M_TRIM_THRESHOLD, trim_threshold))
