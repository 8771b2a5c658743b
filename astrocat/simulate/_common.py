"""Shared plumbing for the simulators: seeding, chunked process pools, progress bars.

Every object draws from its own generator seeded by ``(seed, kind salt, index)`` so a
survey is identical whatever the worker count or chunking.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

#: Distinct stream per simulator, so kinds sharing a seed do not share random numbers.
SALT = {"galaxies": 1, "spectra": 2, "lenses": 3, "fields": 4, "sample": 5}


def object_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """Generator for one object: independent of how the survey is split across workers."""
    return np.random.default_rng([int(seed), SALT[kind], int(index)])


def kind_rng(seed: int, kind: str) -> np.random.Generator:
    """Generator for survey-wide draws (e.g. which objects are mergers)."""
    return np.random.default_rng([int(seed), SALT[kind], 2**32 - 1])


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(n)``."""
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def chunk_size(n: int, workers: int, cap: int = 64) -> int:
    """Small enough to balance the pool and move the bar, big enough to amortise IPC."""
    return max(1, min(cap, math.ceil(n / max(1, workers * 8))))


def resolve_workers(workers: int | None) -> int:
    return max(1, int(workers if workers is not None else (os.cpu_count() or 1)))


@contextmanager
def progress_bar(description: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)``; draws a rich bar on stderr only when enabled."""
    if not enabled:
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda k: bar.advance(task, k)


def iter_chunked(
    func: Callable[..., R],
    ranges: Sequence[tuple[int, int]],
    args: tuple[Any, ...],
    *,
    workers: int,
    progress: bool,
    description: str,
) -> Iterator[R]:
    """Yield ``func(start, stop, *args)`` for each range, in range order.

    One worker runs in-process (no pickling, no fork): that is what tests use. With a
    pool, at most ``4 * workers`` chunks are in flight so memory stays flat.
    """
    total = sum(b - a for a, b in ranges)
    if workers <= 1 or len(ranges) <= 1:
        with progress_bar(description, total, progress) as advance:
            for a, b in ranges:
                yield func(a, b, *args)
                advance(b - a)
        return
    order = list(ranges)
    # Processes are started (forked) on the first submit, before the bar's thread.
    pool = ProcessPoolExecutor(max_workers=min(workers, len(order)))
    pending: dict[Future[R], int] = {}
    ready: dict[int, R] = {}
    submitted = emitted = 0
    limit = 4 * workers

    def top_up() -> None:
        nonlocal submitted
        while submitted < len(order) and submitted - emitted < limit:
            a, b = order[submitted]
            pending[pool.submit(func, a, b, *args)] = submitted
            submitted += 1

    try:
        top_up()
        with progress_bar(description, total, progress) as advance:
            while emitted < len(order):
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    ready[i] = fut.result()
                    advance(order[i][1] - order[i][0])
                while emitted in ready:
                    yield ready.pop(emitted)
                    emitted += 1
                top_up()
    finally:
        # On error or early exit, drop queued chunks instead of finishing them.
        pool.shutdown(wait=True, cancel_futures=True)


def run_chunked(
    func: Callable[..., list[T]],
    ranges: Sequence[tuple[int, int]],
    args: tuple[Any, ...],
    *,
    workers: int,
    progress: bool,
    description: str,
) -> list[T]:
    """Concatenate the per-chunk lists of :func:`iter_chunked`, in index order."""
    out: list[T] = []
    for part in iter_chunked(
        func, ranges, args, workers=workers, progress=progress, description=description
    ):
        out.extend(part)
    return out


def write_csv(path: os.PathLike[str] | str, header: Sequence[str], rows: Sequence[str]) -> None:
    """Plain CSV with ``\\n`` line ends: byte-identical on every platform."""
    with open(path, "w", newline="\n", encoding="ascii") as fh:
        fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(row + "\n")
