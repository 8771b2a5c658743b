"""``astrocat summarize``: science numbers from a catalog, read in bounded memory.

The catalog is streamed in record batches with column projection. Per batch the driver
counts rows by kind and status and hands the batch to each task's accumulator (one per
registered task module); only what a statistic needs survives a batch: running sums and
moments, running top-k lists, and small float32 arrays for statistics that need every
value. Nothing is turned into Python objects row by row, so a 1,000,000-row catalog stays
far below 1 GB.

Definitions follow ../shared/SCIENCE.md; the statistics themselves live in ``stats``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from astrocat import science
from astrocat.catalog.reader import open_catalog
from astrocat.errors import AstrocatError
from astrocat.science import truth as truth_mod
from astrocat.science.base import Context, equals

BASE_COLUMNS = ("kind", "status", "error", "object_id")
#: Error reasons a report lists (the most common first).
TOP_REASONS = 10
_NUMBER = re.compile(r"\d+")


class Reasons:
    """Error messages counted by reason, in bounded memory, never shortened.

    Messages that differ only in their numbers (a table row, a shape, a byte count: the
    per-file details) are one reason, so a table with a bad row in every thousand is one
    line, not one per row. A reason whose rows all carry the same message is that message,
    whole; where the numbers differ between its messages, the reason writes those numbers
    as "…" (the others stay), and the report's examples give the full text of the first
    message met.
    """

    def __init__(self) -> None:
        self.n: Counter = Counter()
        self.first: dict[str, str] = {}  # key -> the first message met
        self.varies: dict[str, list[bool]] = {}  # key -> which of its numbers differ

    def add(self, msg: str, n: int = 1) -> None:
        key = _NUMBER.sub("\0", msg)
        first = self.first.setdefault(key, msg)
        if msg != first:
            varies = self.varies.setdefault(key, [False] * len(_NUMBER.findall(first)))
            for i, (x, y) in enumerate(zip(_NUMBER.findall(first), _NUMBER.findall(msg),
                                           strict=True)):
                varies[i] = varies[i] or x != y
        self.n[key] += n

    def add_counts(self, messages: pa.Array) -> None:
        """Every message of an Arrow string array (null: an empty message)."""
        if len(messages):
            for msg, n in zip(*(pc.value_counts(messages.fill_null("")).flatten()),
                              strict=True):
                self.add(str(msg.as_py()), n.as_py())

    @property
    def total(self) -> int:
        return sum(self.n.values())

    def reason(self, key: str) -> str:
        if key not in self.varies:
            return self.first[key]
        varies = iter(self.varies[key])
        return _NUMBER.sub(lambda m: "…" if next(varies) else m.group(0), self.first[key])

    def report(self, top: int = TOP_REASONS) -> tuple[dict[str, int], dict[str, str]]:
        """The ``top`` reasons with their row counts, and for each of them that groups
        messages differing in their numbers, the full text of one (the others are their
        own full text)."""
        best = self.n.most_common(top)
        return ({self.reason(k): n for k, n in best},
                {self.reason(k): self.first[k] for k, _ in best if k in self.varies})


def default_options() -> dict[str, Any]:
    """Every task option at its default, by name."""
    return {o.name: o.default for task in science.TASKS for o in task.OPTIONS}


@dataclass
class SummaryOptions:
    task: dict[str, Any] = field(default_factory=dict)  # task options by name (see OPTIONS)
    truth: tuple[str | Path, ...] = ()
    images: bool = False  # keep sources of prototype/merger images (for --plots/--report)
    images_root: str | Path | None = None
    batch_size: int = 65_536
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.task) - set(default_options())
        if unknown:
            raise AstrocatError(f"unknown summary option(s): {', '.join(sorted(unknown))}")

    @property
    def values(self) -> dict[str, Any]:
        return {**default_options(), **self.task}


@dataclass
class Summary:
    """The report (every number, JSON-ready) and the arrays the figures are drawn from."""

    report: dict
    data: dict


def summarize(path: Path, opts: SummaryOptions | None = None) -> dict:
    """Every number of the science report (see ``collect`` for the figures' arrays too)."""
    return collect(path, opts).report


def collect(path: Path, opts: SummaryOptions | None = None) -> Summary:
    """One streaming pass over the catalog; returns the report and the figures' data."""
    opts = opts or SummaryOptions()
    catalog = open_catalog(path)
    names = frozenset(catalog.schema.names)
    if not {"kind", "status"} <= names:
        raise AstrocatError(f"{path} is not an astrocat catalog (no kind/status columns)")
    truths = truth_mod.load_all(list(opts.truth))
    options = opts.values
    notes = [f"{t.path}: {t.n_duplicates} duplicate IDs (first kept)"
             for t in truths.values() if t.n_duplicates]
    images = opts.images and "source" in names
    accumulators = [task.start(Context(names, options, truths.get(task.KEY), images,
                                       opts.seed, notes, catalog.provenance))
                    for task in science.TASKS]
    want = list(dict.fromkeys([*BASE_COLUMNS, *(c for a in accumulators for c in a.columns),
                               *(["source"] if images else [])]))

    kinds: Counter = Counter()
    errors = Reasons()
    for batch in catalog.batches(want, opts.batch_size):
        ks = pa.Table.from_batches([batch.select(["kind", "status"])]).group_by(
            ["kind", "status"]).aggregate([([], "count_all")])
        for k, s, n in zip(*(ks.column(i).to_pylist() for i in range(3)), strict=True):
            kinds[(k, s)] += n
        ok = equals(batch.column("status"), "ok")
        if not ok.all():
            errors.add_counts(pc.filter(batch.column("error"), pa.array(~ok)))
        for acc in accumulators:
            if acc.columns:
                acc.update(batch, ok)

    report = _base_report(catalog.path, kinds, errors, options, truths, notes)
    data: dict = {}
    for task, acc in zip(science.TASKS, accumulators, strict=True):
        got = acc.finish()
        if got is not None:
            report[task.KEY], data[task.KEY] = got
    data["images_root"] = (str(opts.images_root) if opts.images_root is not None
                           else catalog.provenance.get("input_root"))
    return Summary(report, data)


def _base_report(path: Path, kinds: Counter, errors: Reasons, options: dict,
                 truths: dict, notes: list[str]) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for (kind, status), n in sorted(kinds.items()):
        counts.setdefault(kind or "unrecognised", {})[status] = n
    total = sum(kinds.values())
    n_err = sum(n for (_, s), n in kinds.items() if s == "error")
    reasons, examples = errors.report()
    return {
        "catalog": str(path), "rows": total, "ok": total - n_err, "errors": n_err,
        "by_kind": counts, "error_reasons": reasons, "error_examples": examples,
        "options": {o.name: options[o.name] for task in science.TASKS for o in task.OPTIONS
                    if o.in_report},
        "truth_files": {task: str(t.path) for task, t in truths.items()},
        "notes": notes,
    }


def _clean(o):
    """JSON-safe: NaN/inf -> null (standard JSON has no NaN), numpy scalars -> Python."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def to_json(report: dict) -> str:
    return json.dumps(_clean(report), indent=2)
