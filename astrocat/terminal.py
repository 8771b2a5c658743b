"""Tables that fit the terminal: never a word cut, never a line wider than the console.

rich shrinks a table that is too wide by squeezing its widest columns, down to less than
their longest word, and then cuts words with "…". ``print_table`` instead gives every
column at least its longest word (its whole text where it must not wrap), lets text
wrap at spaces, and when even that is too wide splits the columns into several tables
that each repeat the first (key) column; a table whose key column alone cannot fit is
printed as one "header: value" line per cell. A table that fits as it is prints exactly
as rich prints it.

The console's width is rich's: the terminal's, or the ``COLUMNS`` environment variable
(which is how tests pin it), 80 when output is not a terminal.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: The compact look of every astrocat table: a rule under the header, no outer frame.
STYLE = {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True}


@dataclass(frozen=True)
class Col:
    header: str
    justify: str = "left"  # "right" for numbers
    no_wrap: bool = False  # the whole cell (and header) on one line


def console() -> Console:
    """The console commands print to (its width honours ``COLUMNS``)."""
    return Console()


def _longest_word(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def _longest_line(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _rich_table(title: str | None, cols: Sequence[Col], rows: Sequence[Sequence[str]],
                widths: Sequence[int] | None = None) -> Table:
    t = Table(title=title, **STYLE)
    for i, c in enumerate(cols):
        t.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap,
                     width=None if widths is None else widths[i])
    for row in rows:
        t.add_row(*(Text(v) for v in row))
    return t


@functools.lru_cache(maxsize=64)
def overhead(n: int) -> int:
    """Characters a table of ``n`` columns adds to its cells' widths (padding, rules)."""
    probe = Console(width=10_000, file=io.StringIO(), color_system=None, legacy_windows=False)
    with probe.capture() as cap:
        probe.print(_rich_table(None, [Col("x")] * n, [["x"] * n]))
    return max(cell_len(line) for line in cap.get().splitlines()) - n


def _bounds(cols: Sequence[Col], rows: Sequence[Sequence[str]]) -> tuple[list[int], list[int]]:
    """Per column: the least width that cuts no word (no_wrap: no line), and the width
    that wraps nothing."""
    mins, maxs = [], []
    for i, c in enumerate(cols):
        texts = [c.header, *(row[i] for row in rows)]
        most = max(max(_longest_line(t) for t in texts), 1)
        maxs.append(most)
        mins.append(most if c.no_wrap else max(max(_longest_word(t) for t in texts), 1))
    return mins, maxs


def _shrink(mins: list[int], maxs: list[int], room: int) -> list[int]:
    """Widths within ``room``: the widest column that is still above its minimum gives
    up one character at a time (as rich does, but never below a column's minimum)."""
    widths = list(maxs)
    excess = sum(widths) - room
    while excess > 0:
        i = max((j for j in range(len(widths)) if widths[j] > mins[j]),
                key=lambda j: (widths[j], j))
        widths[i] -= 1
        excess -= 1
    return widths


def _groups(mins: list[int], maxs: list[int], width: int) -> list[list[int]] | None:
    """The columns, in order, split into tables that each start with column 0 and fit
    ``width`` (each column whole where it can be; else at its minimum); None when
    column 0 and some other column cannot share a line."""
    def fits(group: list[int], by: list[int]) -> bool:
        return sum(by[j] for j in group) + overhead(len(group)) <= width

    groups: list[list[int]] = []
    current = [0]
    for i in range(1, len(mins)):
        trial = [*current, i]
        # whole where it fits; a column that would wrap even beside column 0 alone
        # wraps here, where it fits
        if fits(trial, maxs) or (not fits([0, i], maxs) and fits(trial, mins)):
            current.append(i)
        elif len(current) > 1 and fits([0, i], mins):
            groups.append(current)
            current = [0, i]
        else:
            return None
    groups.append(current)
    return groups


def _print_one(c: Console, title: str | None, cols: Sequence[Col],
               rows: Sequence[Sequence[str]], widths: list[int] | None, table_width: int) -> None:
    # a title wraps at the table's width: a word longer than that would be cut, so such
    # a title goes on its own lines above the table instead
    if title and _longest_word(title) > table_width:
        c.print(Text(title, style="italic"))
        title = None
    c.print(_rich_table(title, cols, rows, widths))


def print_table(c: Console, title: str | None, cols: Sequence[Col],
                rows: Sequence[Sequence[str]], width: int | None = None) -> None:
    """``rows`` (plain text, no markup) as one or more tables no wider than ``width``
    (the console's) that cut no word."""
    width = c.width if width is None else width
    rows = [[str(v) for v in row] for row in rows]
    mins, maxs = _bounds(cols, rows)
    n = len(cols)
    if sum(maxs) + overhead(n) <= width:  # fits whole: exactly what rich prints
        _print_one(c, title, cols, rows, None, sum(maxs) + overhead(n))
        return
    if sum(mins) + overhead(n) <= width:
        widths = _shrink(mins, maxs, width - overhead(n))
        _print_one(c, title, cols, rows, widths, width)
        return
    groups = _groups(mins, maxs, width) if n > 1 else None
    if groups is None:
        _print_records(c, title, cols, rows)
        return
    for k, group in enumerate(groups):
        gcols = [cols[i] for i in group]
        grows = [[row[i] for i in group] for row in rows]
        gmins, gmaxs = [mins[i] for i in group], [maxs[i] for i in group]
        room = width - overhead(len(group))
        widths = _shrink(gmins, gmaxs, room) if sum(gmaxs) > room else None
        gtitle = title if k == 0 else ("(continued)" if title else None)
        _print_one(c, gtitle, gcols, grows, widths,
                   width if widths else sum(gmaxs) + overhead(len(group)))


def _print_records(c: Console, title: str | None, cols: Sequence[Col],
                   rows: Sequence[Sequence[str]]) -> None:
    """Too narrow for any table: each row as "header: value" lines."""
    if title:
        c.print(Text(title, style="italic"))
    for row in rows:
        for col, value in zip(cols, row, strict=True):
            c.print(Text(f"  {col.header}: {value}"))
        c.print()
