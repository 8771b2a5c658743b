"""``astrocat diff A B``: how a catalog moved between two versions, row by row and for
each science task.

Rows are matched on (source, hdu, row) by DuckDB, which streams the full outer join back
as Arrow batches (and spills to disk when the catalogs are larger than memory), so no side
is ever held whole. Where that matches fewer than half the rows of the smaller catalog
(``MEANINGFUL_SHARE``), the absolute path (the provenance's ``input_root`` joined to
``source``: the same files run from another input root) and the object ID are counted
too, and the key that matches the most rows is used (``matched_on`` says which). Per
batch the driver counts rows added and removed, status changes with their reasons, and
for every numeric column how many rows moved by more than the tolerance; each registered
task module folds the same batches into its own comparison (``compare``) and gets both
versions' summaries to compare its numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from astrocat import science
from astrocat.catalog.reader import CatalogReader, open_catalog
from astrocat.catalog.schema import BASE_NAMES
from astrocat.errors import AstrocatError
from astrocat.science.base import CompareContext, Joined, equals
from astrocat.science.summary import Reasons, SummaryOptions, collect

KEYS = ("source", "hdu", "row")
#: What rows may be matched on, in the order tried (a tie goes to the earlier): the
#: input's path below the run's input root (with the HDU and table row), its absolute
#: path, the object ID (with the HDU; a row whose object ID another row of its catalog
#: shares is never matched on it).
MATCH_KEYS = ("source", "absolute path", "object_id")
MATCH_COLUMNS = {"source": ("hdu", "row"), "absolute path": ("hdu", "row"),
                 "object_id": ("hdu",)}
#: ``source`` is kept when it matches at least this share of the smaller catalog's rows
#: (versions of one store: no other key is even counted, inputs moved within the survey
#: stay removed and added); below it, the key that matches the most rows is used.
MEANINGFUL_SHARE = 0.5
#: Numeric columns that describe an input rather than a model's result.
NOT_RESULTS = frozenset({"hdu", "row", "_healpix_29"})


@dataclass
class CompareOptions:
    task: dict[str, Any] = field(default_factory=dict)  # task options, as summarize's
    truth: tuple[str | Path, ...] = ()
    tolerance: float = 1e-4  # a value moved when |B - A| > tolerance
    batch_size: int = 65_536
    examples: int = 10
    memory_limit: str = "2GB"  # DuckDB's, before it spills the join to disk


def _numeric(reader: CatalogReader) -> list[str]:
    return [f.name for f in reader.schema
            if (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
            and f.name not in NOT_RESULTS]


def _files(reader: CatalogReader) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in reader.files) + "]"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _key(reader: CatalogReader, side: str, on: str) -> str | None:
    """The SQL expression of the match key ``on`` for one side; None: it has none."""
    if on == "source":
        return f"{side}.source"
    if on == "object_id":
        return f"{side}.object_id" if "object_id" in reader.schema.names else None
    root = reader.provenance.get("input_root")
    if not root:
        return None
    prefix = str(root).rstrip("/") + "/"
    return (f"CASE WHEN starts_with({side}.source, '/') THEN {side}.source "
            f"ELSE {_lit(prefix)} || {side}.source END")


def _condition(a: CatalogReader, b: CatalogReader, on: str) -> str | None:
    ka, kb = _key(a, "a", on), _key(b, "b", on)
    if ka is None or kb is None:
        return None
    return " AND ".join([f"{ka} = {kb}",
                         *(f"a.{_q(c)} = b.{_q(c)}" for c in MATCH_COLUMNS[on]),
                         *((f"a.{_SHARED} = 1", f"b.{_SHARED} = 1") if on == "object_id"
                           else ())])


#: Rows of a catalog with the same object ID and HDU (matching on object_id only).
_SHARED = "_astrocat_same_object_id"


def _source(reader: CatalogReader, on: str = "source") -> str:
    table = (f"read_parquet({_files(reader)}, union_by_name = true, "
             "hive_partitioning = false)")
    if on != "object_id":
        return table
    return (f"(SELECT *, count(*) OVER (PARTITION BY object_id, hdu) AS {_SHARED} "
            f"FROM {table})")


def _connect(opts: CompareOptions):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{opts.memory_limit}'")
    return con


def match_counts(a: CatalogReader, b: CatalogReader, opts: CompareOptions,
                 known: dict[str, int] | None = None) -> tuple[dict[str, int], list[str]]:
    """Rows of A and B each key of ``MATCH_KEYS`` matches (those already ``known`` are not
    counted again), and why a key could not be used."""
    counts, notes = dict(known or {}), []
    con = _connect(opts)
    try:
        for on in MATCH_KEYS:
            if on in counts:
                continue
            cond = _condition(a, b, on)
            if on == "absolute path" and cond is not None and (
                    a.provenance.get("input_root") == b.provenance.get("input_root")):
                notes.append(f"{on}: the same input root in both (as source)")
                continue
            if cond is None:
                notes.append(f"{on}: not in both catalogs' provenance or columns")
                continue
            if on == "object_id":
                for name, r in (("A", a), ("B", b)):
                    n = con.execute(f"SELECT count(*) FROM {_source(r, on)} "
                                    f"WHERE {_SHARED} > 1").fetchone()[0]
                    if n:
                        notes.append(f"object_id: {n} rows of {name} share theirs with "
                                     "another row (never matched on it)")
            counts[on] = int(con.execute(f"SELECT count(*) FROM {_source(a, on)} a JOIN "
                                         f"{_source(b, on)} b ON {cond}").fetchone()[0])
    finally:
        con.close()
    return counts, notes


def joined_batches(a: CatalogReader, b: CatalogReader, columns: list[str],
                   opts: CompareOptions, on: str = "source"):
    """Batches of A full-outer-joined to B on the row keys (``on``: one of
    ``MATCH_KEYS``), columns "a.x" and "b.x"."""
    cond = _condition(a, b, on)
    if cond is None:
        raise AstrocatError(f"cannot match the catalogs' rows on {on}")
    con = _connect(opts)
    cols_a, cols_b = set(a.schema.names), set(b.schema.names)
    select = [f"coalesce(a.{_q(k)}, b.{_q(k)}) AS {_q(k)}" for k in KEYS]
    for side, have in (("a", cols_a), ("b", cols_b)):
        for c in columns:
            expr = f"{side}.{_q(c)}" if c in have else "NULL"
            select.append(f"{expr} AS {_q(side + '.' + c)}")
    sql = (f"SELECT {', '.join(select)} FROM {_source(a, on)} a FULL OUTER JOIN "
           f"{_source(b, on)} b ON {cond}")
    rel = con.sql(sql)
    reader = (rel.to_arrow_reader(opts.batch_size) if hasattr(rel, "to_arrow_reader")
              else rel.fetch_record_batch(opts.batch_size))  # DuckDB < 1.4
    try:
        for batch in reader:
            yield Joined(batch)
    finally:
        con.close()


class _Columns:
    """Rows that moved by more than the tolerance, per numeric column in both versions."""

    def __init__(self, names: list[str], tolerance: float) -> None:
        self.names, self.tol = names, tolerance
        self.n = {c: 0 for c in names}
        self.moved = {c: 0 for c in names}
        self.sum = {c: 0.0 for c in names}
        self.sum_abs = {c: 0.0 for c in names}
        self.max_abs = {c: 0.0 for c in names}
        self.became_nan = {c: 0 for c in names}

    def update(self, j: Joined, both: np.ndarray) -> None:
        for c in self.names:
            va = j.a(c)[both].astype(np.float64)
            vb = j.b(c)[both].astype(np.float64)
            fin = np.isfinite(va) & np.isfinite(vb)
            d = vb[fin] - va[fin]
            self.n[c] += int(fin.sum())
            self.moved[c] += int((np.abs(d) > self.tol).sum())
            self.sum[c] += float(d.sum())
            self.sum_abs[c] += float(np.abs(d).sum())
            if len(d):
                self.max_abs[c] = max(self.max_abs[c], float(np.abs(d).max()))
            self.became_nan[c] += int((np.isfinite(va) != np.isfinite(vb)).sum())

    def result(self) -> dict:
        return {c: {"compared": self.n[c], "moved": self.moved[c],
                    "mean_change": self.sum[c] / self.n[c] if self.n[c] else float("nan"),
                    "mean_abs_change": self.sum_abs[c] / self.n[c] if self.n[c]
                    else float("nan"),
                    "max_abs_change": self.max_abs[c] if self.n[c] else float("nan"),
                    "finite_in_one_only": self.became_nan[c]}
                for c in self.names if self.n[c] or self.became_nan[c]}


@dataclass
class _Pass:
    """One pass over the joined rows: counts, status changes, columns, task comparisons."""

    counts: Counter
    to_error: Reasons
    to_ok: Reasons
    cols: _Columns
    tasks: list


def _one_pass(a: CatalogReader, b: CatalogReader, on: str, ctx: CompareContext,
              numeric: list[str], opts: CompareOptions) -> _Pass:
    tasks = [(t, t.compare(ctx)) for t in science.TASKS]
    wanted = list(dict.fromkeys(["status", "error", "object_id", "kind", *numeric,
                                 *(c for _, cmp in tasks for c in cmp.columns)]))
    got = _Pass(Counter(), Reasons(), Reasons(),
                _Columns([c for c in numeric if c not in BASE_NAMES or c in ("ra", "dec")],
                         opts.tolerance), tasks)
    for j in joined_batches(a, b, wanted, opts, on):
        in_a, in_b = j.in_a, j.in_b
        got.counts["only_a"] += int((in_a & ~in_b).sum())
        got.counts["only_b"] += int((in_b & ~in_a).sum())
        got.counts["both"] += int((in_a & in_b).sum())
        sa = j.column("a", "status").fill_null("")
        sb = j.column("b", "status").fill_null("")
        broke = equals(sa, "ok") & equals(sb, "error")
        fixed = equals(sa, "error") & equals(sb, "ok")
        for mask, side, reasons in ((broke, "b", got.to_error), (fixed, "a", got.to_ok)):
            if mask.any():
                reasons.add_counts(j.column(side, "error").filter(pa.array(mask)))
        got.cols.update(j, j.ok_in_both())
        for _, cmp in tasks:
            if cmp.columns:
                cmp.update(j)
    return got


def compare(a_spec: str | Path, b_spec: str | Path, opts: CompareOptions | None = None
            ) -> dict:
    """Every number of the comparison of catalog B against catalog A."""
    opts = opts or CompareOptions()
    a, b = open_catalog(a_spec), open_catalog(b_spec)
    for r in (a, b):
        if not set(KEYS) <= set(r.schema.names):
            raise AstrocatError(f"{r.path} is not an astrocat catalog (no source/hdu/row)")
    summaries = [collect(spec, SummaryOptions(task=opts.task, truth=opts.truth)).report
                 for spec in (a_spec, b_spec)]
    numeric = sorted(set(_numeric(a)) & set(_numeric(b)))
    options = SummaryOptions(task=opts.task).values
    ctx = CompareContext(frozenset(a.schema.names), frozenset(b.schema.names), options,
                         opts.examples)
    done = _one_pass(a, b, "source", ctx, numeric, opts)
    counts = done.counts
    matched, notes = {"source": counts["both"]}, []
    smaller = min(counts["only_a"], counts["only_b"]) + counts["both"]
    if counts["both"] < MEANINGFUL_SHARE * smaller:  # source matches too few: count others
        matched, notes = match_counts(a, b, opts, matched)
    on = max(matched, key=lambda k: (matched[k], -MATCH_KEYS.index(k)))
    if on != "source":
        done = _one_pass(a, b, on, ctx, numeric, opts)
        counts = done.counts
    to_error, error_examples = done.to_error.report()
    to_ok, ok_examples = done.to_ok.report()
    report: dict = {
        "a": str(a_spec), "b": str(b_spec), "rows_a": counts["only_a"] + counts["both"],
        "rows_b": counts["only_b"] + counts["both"], "rows_in_both": counts["both"],
        "added": counts["only_b"], "removed": counts["only_a"],
        "matched_on": on, "matches_by_key": matched, "match_notes": notes,
        "input_roots": {"a": a.provenance.get("input_root"),
                        "b": b.provenance.get("input_root")},
        "status": {"ok_to_error": done.to_error.total, "error_to_ok": done.to_ok.total,
                   "ok_to_error_reasons": to_error, "ok_to_error_examples": error_examples,
                   "error_to_ok_reasons": to_ok, "error_to_ok_examples": ok_examples},
        "tolerance": opts.tolerance, "columns": done.cols.result(),
        "provenance": {"a": a.provenance.get("models", {}), "b": b.provenance.get("models", {})},
    }
    for task, cmp in done.tasks:
        got = cmp.finish(summaries[0].get(task.KEY), summaries[1].get(task.KEY))
        if got is not None:
            report[task.KEY] = got
    return report


def resolve_pair(a: str, b: str | None) -> tuple[str, str]:
    """``diff STORE``: the store's latest version against the one before it."""
    if b is not None:
        return a, b
    from astrocat.catalog.names import find_store, parse

    store = find_store(parse(a).path)
    versions = store.versions() if store is not None else []
    if len(versions) < 2:
        raise AstrocatError(f"{a}: one catalog given and it is not a store with two versions "
                            f"(versions kept: {', '.join(map(str, versions)) or 'none'}); "
                            "give two catalogs, or STORE@N STORE@M")
    latest = store.latest() or versions[-1]
    before = [v for v in versions if v < latest]
    if not before:
        raise AstrocatError(f"{a}: the latest version {latest} has no kept predecessor")
    return f"{a}@{before[-1]}", f"{a}@{latest}"


def sections(report: dict) -> list:
    """What a reader sees of a comparison: the rows, then each task's own section."""
    from astrocat.science.render import Section, Table, num

    st = report["status"]
    on = report.get("matched_on", "source")
    over = Section("overview", f"B against A: {report['b']} against {report['a']}", [
        f"{report['rows_a']} rows in A, {report['rows_b']} in B, {report['rows_in_both']} in "
        f"both (matched on {', '.join((on, *MATCH_COLUMNS[on]))}): {report['added']} added, "
        f"{report['removed']} removed; {st['ok_to_error']} ok -> error, "
        f"{st['error_to_ok']} error -> ok."])
    matched = report.get("matches_by_key", {})
    if len(matched) > 1 or report.get("match_notes"):
        roots = report.get("input_roots", {})
        others = [f"on {k} {n}" for k, n in matched.items() if k != on]
        over.items.append(
            f"Rows matched on {on}, which matches the most rows ({matched.get(on, 0)}; "
            + "; ".join([*others, *report.get("match_notes", [])]) + ")."
            + (f" Input roots: A {roots.get('a')}, B {roots.get('b')}."
               if roots.get("a") != roots.get("b") else ""))
    for key, title in (("ok_to_error_reasons", "Became errors (B's reason)"),
                       ("error_to_ok_reasons", "No longer errors (A's reason)")):
        if st[key]:
            over.items.append(Table(title, ["rows", "reason"],
                                    [[str(n), r] for r, n in st[key].items()],
                                    text_columns=(1,)))
    moved = [(c, x) for c, x in report["columns"].items() if x["moved"]
             or x["finite_in_one_only"]]
    over.items.append(Table(
        f"Columns of rows ok in both that moved by more than {report['tolerance']:g} "
        f"({len(report['columns']) - len(moved)} more columns did not move)",
        ["column", "compared", "moved", "mean change", "mean |change|", "max |change|",
         "finite in one only"],
        [[c, str(x["compared"]), str(x["moved"]), num(x["mean_change"], "+.3g"),
          num(x["mean_abs_change"], ".3g"), num(x["max_abs_change"], ".3g"),
          str(x["finite_in_one_only"])] for c, x in moved]))
    out = [over]
    out += [t.compare_section(report[t.KEY]) for t in science.TASKS if t.KEY in report]
    return out
