"""``astrocat diff A B``: how a catalog moved between two versions, row by row and for
each science task.

Rows are matched on (source, hdu, row) by DuckDB, which streams the full outer join back
as Arrow batches (and spills to disk when the catalogs are larger than memory), so no side
is ever held whole. Per batch the driver counts rows added and removed, status changes
with their reasons, and for every numeric column how many rows moved by more than the
tolerance; each registered task module folds the same batches into its own comparison
(``compare``) and gets both versions' summaries to compare its numbers.
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
from astrocat.science.summary import SummaryOptions, collect

KEYS = ("source", "hdu", "row")
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


def joined_batches(a: CatalogReader, b: CatalogReader, columns: list[str],
                   opts: CompareOptions):
    """Batches of A full-outer-joined to B on the row keys, columns "a.x" and "b.x"."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{opts.memory_limit}'")
    cols_a, cols_b = set(a.schema.names), set(b.schema.names)
    select = [f"coalesce(a.{_q(k)}, b.{_q(k)}) AS {_q(k)}" for k in KEYS]
    for side, have in (("a", cols_a), ("b", cols_b)):
        for c in columns:
            expr = f"{side}.{_q(c)}" if c in have else "NULL"
            select.append(f"{expr} AS {_q(side + '.' + c)}")
    sql = (f"SELECT {', '.join(select)} FROM "
           f"read_parquet({_files(a)}, union_by_name = true, hive_partitioning = false) a "
           f"FULL OUTER JOIN "
           f"read_parquet({_files(b)}, union_by_name = true, hive_partitioning = false) b "
           f"ON a.source = b.source AND a.hdu = b.hdu AND a.row = b.row")
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


def _reason(msg: str) -> str:
    return msg.split(":")[0][:80]


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
    tasks = [(t, t.compare(ctx)) for t in science.TASKS]
    wanted = list(dict.fromkeys(["status", "error", "object_id", "kind", *numeric,
                                 *(c for _, cmp in tasks for c in cmp.columns)]))
    cols = _Columns([c for c in numeric if c not in BASE_NAMES or c in ("ra", "dec")],
                    opts.tolerance)
    counts: Counter = Counter()
    to_error: Counter = Counter()
    to_ok: Counter = Counter()
    for j in joined_batches(a, b, wanted, opts):
        in_a, in_b = j.in_a, j.in_b
        counts["only_a"] += int((in_a & ~in_b).sum())
        counts["only_b"] += int((in_b & ~in_a).sum())
        counts["both"] += int((in_a & in_b).sum())
        sa = j.column("a", "status").fill_null("")
        sb = j.column("b", "status").fill_null("")
        broke = equals(sa, "ok") & equals(sb, "error")
        fixed = equals(sa, "error") & equals(sb, "ok")
        for mask, side, counter in ((broke, "b", to_error), (fixed, "a", to_ok)):
            if mask.any():
                msgs = j.column(side, "error").filter(pa.array(mask)).to_pylist()
                counter.update(_reason(m or "") for m in msgs)
        both_ok = j.ok_in_both()
        cols.update(j, both_ok)
        for _, cmp in tasks:
            if cmp.columns:
                cmp.update(j)
    report: dict = {
        "a": str(a_spec), "b": str(b_spec), "rows_a": counts["only_a"] + counts["both"],
        "rows_b": counts["only_b"] + counts["both"], "rows_in_both": counts["both"],
        "added": counts["only_b"], "removed": counts["only_a"],
        "status": {"ok_to_error": sum(to_error.values()), "error_to_ok": sum(to_ok.values()),
                   "ok_to_error_reasons": dict(to_error.most_common(10)),
                   "error_to_ok_reasons": dict(to_ok.most_common(10))},
        "tolerance": opts.tolerance, "columns": cols.result(),
        "provenance": {"a": a.provenance.get("models", {}), "b": b.provenance.get("models", {})},
    }
    for task, cmp in tasks:
        got = cmp.finish(summaries[0].get(task.KEY), summaries[1].get(task.KEY))
        if got is not None:
            report[task.KEY] = got
    return report


def resolve_pair(a: str, b: str | None) -> tuple[str, str]:
    """``diff STORE``: the store's latest version against the one before it."""
    if b is not None:
        return a, b
    from astrocat.catalog.store import Store

    store = Store(Path(a))
    versions = store.versions()
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
    over = Section("overview", f"B against A: {report['b']} against {report['a']}", [
        f"{report['rows_a']} rows in A, {report['rows_b']} in B, {report['rows_in_both']} in "
        f"both (matched on source, hdu, row): {report['added']} added, {report['removed']} "
        f"removed; {st['ok_to_error']} ok -> error, {st['error_to_ok']} error -> ok."])
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
