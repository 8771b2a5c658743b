"""``summarize --report``: one self-contained HTML page with the tables and figures.

For people who would rather look than read. Figures are embedded as base64 PNG data URIs
and the style sheet is inline, so the single file can be mailed, archived beside the
catalog or opened offline; there are no external assets or scripts. The tables come
from ``sections.sections``, the same ones the terminal shows.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from astrocat.science.drawing import FigureOut
from astrocat.science.render import Section, Table
from astrocat.science.sections import sections

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:0 auto;
padding:1.5em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2em}nav a{margin-right:1em}
table{border-collapse:collapse;margin:1em 0;font-size:.88em}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.t,th.t{text-align:left}
tr:nth-child(even) td{background:#fafafa}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}.meta{color:#666;font-size:.9em}
"""


def _table(t: Table) -> str:
    def cls(i: int) -> str:
        return ' class="t"' if i in t.text_columns else ""

    head = "".join(f"<th{cls(i)}>{html.escape(c)}</th>" for i, c in enumerate(t.columns))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{html.escape(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in t.rows)
    return (f"<table><caption>{html.escape(t.title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _figure(f: FigureOut) -> str:
    data = base64.b64encode(f.png or b"").decode("ascii")
    return (f'<figure id="fig-{html.escape(f.name)}"><img alt="{html.escape(f.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(f.title)} '
            f"(<code>{html.escape(f.name)}.png</code>)</figcaption></figure>")


def _section(s: Section, figs: list[FigureOut]) -> str:
    parts = [f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>']
    for item in s.items:
        parts.append(_table(item) if isinstance(item, Table) else
                     f"<p>{html.escape(item)}</p>")
    parts += [_figure(f) for f in figs]
    parts.append("</section>")
    return "\n".join(parts)


def body(secs: list[Section], figures: list[FigureOut]) -> str:
    """The sections' tables, each followed by its figures (a page's or a notebook's)."""
    by: dict[str, list[FigureOut]] = {}
    for f in figures:
        if f.png:
            by.setdefault(f.section, []).append(f)
    text = "\n".join(_section(s, by.pop(s.key, [])) for s in secs)
    leftover = [f for fs in by.values() for f in fs]  # figures of a section with no table
    if leftover:
        text += _section(Section("figures", "More figures"), leftover)
    return text


def page(title: str, meta: str, secs: list[Section], figures: list[FigureOut]) -> str:
    """A whole self-contained page: the sections' tables, each followed by its figures."""
    nav = " ".join(f'<a href="#{s.key}">{html.escape(s.title.split(":")[0])}</a>'
                   for s in secs)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=\"meta\">{meta}</p><nav>{nav}</nav>\n"
            f"{body(secs, figures)}\n</body></html>\n")


def fragment(title: str, secs: list[Section], figures: list[FigureOut]) -> str:
    """The same tables and figures as one ``<div>`` for a notebook cell: the style sheet is
    scoped to the div, so the notebook's own look is left alone."""
    scoped = ""
    for rule in CSS.replace("\n", "").split("}"):
        selectors, _, style = rule.partition("{")
        if style and selectors != "body":
            scoped += ",".join(f".astrocat-report {s}" for s in selectors.split(",")) + \
                f"{{{style}}}"
    return (f'<div class="astrocat-report"><style>{scoped}</style>'
            f"<h3>{html.escape(title)}</h3>{body(secs, figures)}</div>")


def to_html(report: dict, figures: list[FigureOut]) -> str:
    """The summary's page as a string."""
    return page(f"astrocat summary: {Path(report['catalog']).name}",
                f"{html.escape(report['catalog'])} &middot; {report['rows']} rows &middot; made "
                "by <code>astrocat summarize</code>", sections(report), figures)


def write_html(text: str, path: Path) -> Path:
    """Write a page atomically (a half-written report is never left behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
