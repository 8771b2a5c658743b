"""A progress bar on stderr, or in the notebook cell: items/s, ETA and errors so far
(rich, imported only when a bar is asked for: a quiet run is spared its 30 ms)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def _notebook(console: Console) -> bool:
    """A Jupyter kernel that can show a live bar (rich draws it in an ipywidgets Output)."""
    if not console.is_jupyter:
        return False
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


class RunProgress:
    def __init__(self, total: int, enabled: bool = True) -> None:
        self.errors = 0
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            console = Console(file=sys.stderr)
            self._progress = Progress(
                TextColumn("[bold]infer"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} items/s"),
                TextColumn("[red]{task.fields[errors]} errors"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
                disable=not (console.is_terminal or _notebook(console)),
            )
            self._task = self._progress.add_task("infer", total=total, errors=0, rate="-")

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, items: int, errors: int) -> None:
        self.errors += errors
        if self._progress is None:
            return
        self._progress.update(self._task, advance=items, errors=self.errors)
        task = self._progress.tasks[0]
        speed = task.speed
        self._progress.update(self._task, rate=f"{speed:,.0f}" if speed else "-")
