"""The faces of a summary: the report as sections of text lines and tables.

``sections`` turns the report dict into plain tables once (the overview here, each task's
section in its own module); the terminal (rich, here) and the HTML page (``report.py``)
both draw those, so the two never disagree on a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    text_columns: tuple[int, ...] = (0,)  # left-aligned; the others are numbers


@dataclass
class Section:
    key: str  # report key ("overview", "morphology", ...); figures are grouped by it
    title: str
    items: list[str | Table] = field(default_factory=list)


#: Longest text a terminal table cell shows (three lines at 80 columns); ``--json`` and
#: the HTML page always have the whole text.
CELL_CHARS = 240


def shorten(text: str, limit: int = CELL_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, " …" marking the
    cut; never mid-word (a first word longer than ``limit`` is kept whole)."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 1)
    if cut <= 0:
        cut = text.find(" ")
        if cut < 0:
            return text
    return text[:cut].rstrip() + " …"


def num(x: float | None, fmt: str = ".4f") -> str:
    """A number for a table cell; "-" for missing (None or NaN)."""
    return "-" if x is None or x != x else format(x, fmt)


def pct(x: float | None, fmt: str = ".2f") -> str:
    """A fraction as a percentage for a table cell; "-" for missing."""
    return "-" if x is None or x != x else format(100 * x, fmt) + "%"


def calibration_items(c: dict, what: str, observed: str) -> list[str | Table]:
    """A reliability diagram's line and table (``stats.calibration_report``)."""
    return [f"Calibration of the {what}: expected calibration error ECE {num(c['ece'])} "
            f"over {c['bins']} equal-width bins ({c['binning']}; {c['n']} pairs).",
            Table("Reliability per bin of the prediction",
                  ["bin", "pairs", "mean predicted", f"mean {observed}"],
                  [[f"{r['lo']:.2f}-{r['hi']:.2f}", str(r["n"]), num(r["mean_predicted"]),
                    num(r["mean_observed"])] for r in c["reliability"]])]


def uncertainty_items(u: dict, what: str, pairs: str) -> list[str | Table]:
    """The TTA spread against the error: a line and the table per bin of spread
    (``stats.uncertainty``)."""
    views = f"{u['views']} views" if u.get("views") else "views"
    line = (f"Test-time augmentation ({views}): the spread (_std) against |error| of "
            f"{what}: Spearman rank correlation {num(u['spearman_spread_abs_error'], '.3f')} "
            f"over {u['n']} {pairs}; mean spread {num(u['mean_spread'])}, mean |error| "
            f"{num(u['mean_abs_error'])}.")
    if "coverage" in u:
        nominal = u.get("nominal_coverage")
        line += (f" The intervals (_lo/_hi, nominal {pct(nominal, '.0f')}) hold the truth "
                 f"for {pct(u['coverage'], '.1f')}, mean width {num(u['mean_interval_width'])}.")
        per = [v for v in (u.get("coverage_per_answer") or {}).values() if v == v]
        if per:
            line += f" Per answer from {pct(min(per), '.1f')} to {pct(max(per), '.1f')}."
    return [line, Table(f"Mean |error| of {what} per equal-count bin of the spread",
                        ["spread from", "to", "n", "mean spread", "mean |error|"],
                        [[num(r["spread_lo"]), num(r["spread_hi"]), str(r["n"]),
                          num(r["mean_spread"]), num(r["mean_abs_error"])]
                         for r in u["by_spread"]], text_columns=())]


def show(secs: list[Section], console: Console | None = None) -> None:
    """Sections as rich tables on the terminal: no line wider than the console, no word
    cut (``astrocat.terminal.print_table``)."""
    from astrocat.terminal import Col, print_table

    c = console or Console()
    for sec in secs:
        rule(c, sec.title)
        for item in sec.items:
            if isinstance(item, Table):
                cols = [Col(col, "left" if i in item.text_columns else "right",
                            no_wrap=i == 0 and i in item.text_columns)
                        for i, col in enumerate(item.columns)]
                print_table(c, item.title, cols,
                            [[shorten(v) if i in item.text_columns else v
                              for i, v in enumerate(row)] for row in item.rows])
            else:
                c.print(item, highlight=False, markup=False)


def rule(c: Console, title: str) -> None:
    """A section's rule with its title in it; a title too long for that (rich would cut
    it with "…") goes on its own line under a bare rule."""
    if cell_len(title) + 4 <= c.width:
        c.rule(f"[bold]{title}")
    else:
        c.rule()
        c.print(Text(title, style="bold"))
