"""The summary report as a reader sees it: the overview, then each task's own section
(walked from the task registry), then the notes; for the terminal and the HTML page.

This is the one science module above the tasks that draws: :mod:`.render` holds the
table types and formatters the tasks build their sections from.
"""

from __future__ import annotations

from rich.console import Console

from astrocat import science
from astrocat.science.render import Section, Table, rule, show


def sections(report: dict) -> list[Section]:
    """Everything a reader sees, in reading order; only sections the catalog has."""
    out = [_overview(report)]
    out += [task.section(report[task.KEY]) for task in science.TASKS
            if task.KEY in report]
    if report.get("notes"):
        out.append(Section("notes", "Notes", list(report["notes"])))
    return out


def _overview(r: dict) -> Section:
    s = Section("overview", "Catalog", [
        f"{r['catalog']}: {r['rows']} rows, {r['ok']} ok, {r['errors']} errors"])
    s.items.append(Table("Rows by kind and status", ["kind", "ok", "error"], [
        [kind, str(by.get("ok", 0)), str(by.get("error", 0))]
        for kind, by in r["by_kind"].items()]))
    if r.get("error_reasons"):
        s.items.append(Table("Most common errors", ["rows", "reason"],
                             [[str(n), reason] for reason, n in r["error_reasons"].items()],
                             text_columns=(1,)))
    if r.get("truth_files"):
        s.items.append("Truth: " + "; ".join(f"{k} from {v}"
                                             for k, v in r["truth_files"].items()))
    return s


def render(report: dict, console: Console | None = None) -> None:
    """The summary as rich tables on the terminal."""
    c = console or Console()
    show(sections(report), c)
    if report.get("figures"):
        rule(c, "Figures")
        for f in report["figures"]:
            c.print(f"{f.get('file') or f['name']}: {f['title']}", highlight=False,
                    markup=False)


