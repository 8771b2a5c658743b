"""astrocat from Python: the calls the command line makes, for notebooks and scripts.

>>> import astrocat
>>> run = astrocat.infer("examples/sample", "catalog.parquet")
>>> cat = astrocat.open_catalog("catalog.parquet")
>>> cat.to_table(columns=["object_id", "ra", "dec", "z"], filters=[("status", "==", "ok")])
>>> astrocat.summarize(cat)          # renders as tables and figures in Jupyter

Each CLI command is a thin layer over one function here (``infer``, ``run``,
``summarize``, ``diff``, ``history``, ``export``), so both give the same results and the same error
messages: problems a user can act on raise :class:`astrocat.AstrocatError` (the CLI prints
its message and exits 2). Names follow astropy (``Table``, ``to_table``) and LSDB
(``open_catalog``); results render in Jupyter through ``_repr_html_``.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astrocat.errors import AstrocatError
from astrocat.pipeline.run import InferOptions, RunSummary

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from astropy.table import Table

    from astrocat.catalog.export import ExportResult
    from astrocat.catalog.reader import CatalogReader
    from astrocat.science.figures import FigureOut

__all__ = ["Catalog", "DiffResult", "RunResult", "SummaryResult", "diff", "export", "history",
           "infer", "open_catalog", "run", "summarize"]

Filters = Any  # a pyarrow.compute.Expression, or DNF tuples [("status", "==", "ok"), ...]


# --------------------------------------------------------------------------- running


@dataclass(repr=False)
class RunResult(RunSummary):
    """What a run did (rows, errors, parts, versions) and the catalog it wrote."""

    @property
    def catalog(self) -> Catalog:
        return open_catalog(self.out)

    @property
    def exit_code(self) -> int:
        """The CLI's: 0 every input ok, 1 some inputs are error rows."""
        return 1 if self.n_errors else 0

    def warnings(self) -> list[str]:
        """What the user must know even when nothing is printed (taken-over locks, failed
        partitions); the CLI prints these in yellow."""
        out = []
        if self.taken_over:
            t = self.taken_over
            out.append(f"took over the lock of a run that did not end cleanly (host "
                       f"{t.get('host')}, pid {t.get('pid')}, started {t.get('started_utc')}); "
                       "its finished parts were reused")
        for cause, n in self.failures.items():
            out.append(f"{n} partition(s) failed in the workers ({cause}); their inputs are "
                       f"error rows that the next run retries; details in {self.failure_log}")
        out.extend(self._named_model_misses())
        for name, said in self.model_warnings.items():
            out.extend(f"model {name}: {w} (from its card)" for w in said)
        return out

    def _named_model_misses(self) -> list[str]:
        """One line per model named with ``model=`` (``--model``) that could not take some
        inputs: how many, of which kind, and which model took them instead."""
        out = []
        for name in self.named_models:
            missed = {kind: {m: n for m, n in models.items() if m != name}
                      for kind, models in self.by_kind.items() if name not in models}
            missed = {k: v for k, v in missed.items() if v and k}
            n = sum(sum(v.values()) for v in missed.values())
            if not n:
                continue
            took = sum(models.get(name, 0) for models in self.by_kind.values())
            where = "; ".join(
                f"{sum(v.values())} {kind} rows went to "
                + ", ".join(m or "no model" for m in v) for kind, v in missed.items())
            out.append(f"--model {name} cannot take {n} of the inputs ({where}); it took "
                       f"{took}. Name a model for those kinds too, or --exclude them")
        return out

    def lines(self, positions: str | None = None) -> list[str]:
        """The run's summary as the CLI prints it."""
        out = []
        if self.positions is not None:
            out.append(f"positions: {self.positions['placed']} rows placed from "
                       f"{positions or 'the positions table'}, {self.positions['unmatched']} "
                       "without an entry there (ra/dec stay NaN)")
        if "unplaced" in self.published:
            out.append(f"HATS: {self.published['placed']} rows on the sky, "
                       f"{self.published['unplaced']} without coordinates in "
                       "_astrocat_unplaced.parquet")
        if self.skipped:
            out.append("skipped, no rows (not survey inputs): " + "; ".join(
                f"{n} {reason}" for reason, n in self.skipped.items()))
        if self.replaced is not None:
            out.append(f"replaced {self.out}, a catalog made from other inputs (input root "
                       f"{self.replaced.get('input_root')}); versions before it are kept "
                       f"(`astrocat history {self.out}`)")
        rate = self.n_rows / self.seconds if self.seconds else 0.0
        engines = ", ".join(f"{m} on {e}" for m, e in self.by_model.items()) or "no model"
        if not self.new_version:
            out.append(f"no changes: version {self.version} of {self.out} is current "
                       f"({self.n_rows} rows, {self.n_errors} errors, {self.n_parts} parts all "
                       "reused); nothing published")
        else:
            c = self.changes
            what = (f"version {self.version}: inputs {c.get('added', 0)} added, "
                    f"{c.get('removed', 0)} removed, {c.get('changed', 0)} changed; "
                    if self.version and c else "")
            out.append(
                f"wrote {self.out}: {what}{self.n_rows} rows, {self.n_errors} errors, "
                f"{self.n_parts} parts ({self.n_reused} reused) in {self.seconds:.1f}s "
                f"({rate:.0f} rows/s); {engines}"
                + (f"; {self.n_warnings} library warning(s) in {self.warnings_log}"
                   if self.n_warnings else ""))
        if self.by_kind:
            out.append("models by input kind: " + "; ".join(
                f"{kind or 'unrecognised'} -> " + ", ".join(
                    f"{m or 'none (error rows)'} ({n})" for m, n in models.items())
                for kind, models in sorted(self.by_kind.items())))
        return out

    def __str__(self) -> str:
        return "\n".join([*(f"warning: {w}" for w in self.warnings()), *self.lines()])

    def __repr__(self) -> str:
        return (f"<astrocat.RunResult {self.out}: {self.n_rows} rows, {self.n_errors} errors"
                + (f", version {self.version}" if self.version else "") + ">")

    def _repr_html_(self) -> str:
        warn = "".join(f'<p style="color:#b36b00">warning: {html.escape(w)}</p>'
                       for w in self.warnings())
        return warn + "".join(f"<p>{html.escape(line)}</p>" for line in self.lines())

    @classmethod
    def of(cls, summary: RunSummary) -> RunResult:
        return cls(**{f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)})


def infer(input: str | Path | Sequence[str | Path], out: str | Path, *,
          model: str | Path | Sequence[str | Path] | None = None, layout: str = "file",
          hats_margin_arcsec: float = 10.0,
          positions: str | Path | None = None, positions_id: str | None = None,
          engine: str = "auto", decode: str = "auto", precision: str = "fp32",
          scheduler: str | None = None,
          workers: int | None = None, partition_size: int = 256,
          batch_size: int | None = None, memory_budget: int | str | None = None,
          exclude: Sequence[str] = (), hdu: str | int | tuple | None = None,
          plane: int | str | None = None, mask_hdu: str | int | tuple | None = None,
          mask_bits: int | None = None, tta: int = 1, overwrite: bool = False,
          keep_versions: int | None = None, progress: bool = True,
          command: str | None = None, **unknown: Any) -> RunResult:
    """Run the right model on every image, FITS file and spectrum under ``input`` (a
    directory, file, glob or ``@list``, or several) and write the catalog ``out``.

    Every input becomes exactly one row (predictions, or status "error" with what to fix).
    Running it again reuses finished parts. The keywords are ``astrocat infer``'s options
    (``memory_budget`` takes bytes or "4GB"; ``hdu`` "SCI,1" or an index; ``decode``
    "auto", "cpu" or "gpu": where the torch engine's JPEGs are decoded;
    ``hats_margin_arcsec`` the HATS margin cache's radius, 0 for none); ``progress``
    shows a bar in a terminal or a notebook. ``out`` is never something astrocat did not
    write unless ``overwrite``; ``keep_versions`` versions of it are kept (default 5),
    each readable as ``"OUT@N"``. Raises :class:`AstrocatError` when it cannot run (a
    misspelt keyword included); inputs it cannot use are error rows, counted in
    ``n_errors``.
    """
    _no_unknown("infer", unknown)
    if keep_versions is not None and keep_versions < 1:
        raise AstrocatError(f"keep_versions={keep_versions}: keep at least 1 version")
    if tta < 1 or tta > 8:
        raise AstrocatError(f"tta={tta}: give 1 to 8 views")
    models = (() if model is None else (str(model),) if isinstance(model, str | Path)
              else tuple(map(str, model)))
    inputs = str(input) if isinstance(input, str | Path) else tuple(map(str, input))
    opts = InferOptions(
        input=inputs, out=Path(out), layout=layout,
        layout_options={"hats_margin_arcsec": hats_margin_arcsec},
        positions=None if positions is None else str(positions), positions_id=positions_id,
        models=models, engine=engine, decode=decode, precision=precision,
        scheduler=scheduler,
        workers=workers, partition_size=partition_size, batch_size=batch_size,
        memory_budget=_size(memory_budget), exclude=tuple(exclude), quiet=not progress,
        hdu=_hdu(hdu, "hdu"), plane=plane, mask_hdu=_hdu(mask_hdu, "mask_hdu"),
        mask_bits=mask_bits, tta=tta, overwrite=overwrite, retention=keep_versions or 0)
    if command is not None:
        opts.command = command
    elif not _from_cli():
        opts.command = f"astrocat.infer({inputs!r}, {str(out)!r})"
    from astrocat.pipeline.run import infer as run_infer

    return RunResult.of(run_infer(opts))


def run(job: str | Path, *, retry_errors: bool = False, progress: bool = True) -> RunResult:
    """Run a job file (``astrocat run JOB.toml``): the scheduled, versioned form of
    :func:`infer`; publishes a new version of the job's store when something changed."""
    from astrocat.jobs.runner import run_job

    return RunResult.of(run_job(Path(job), retry_errors=retry_errors, quiet=not progress))


class UnknownOption(AstrocatError, TypeError):
    """A keyword the call does not take (a typo, usually): an AstrocatError, and the
    TypeError Python would have raised."""


def _no_unknown(call: str, unknown: dict[str, Any]) -> None:
    if not unknown:
        return
    import difflib
    import inspect

    known = [p for p in inspect.signature(globals()[call]).parameters if p != "unknown"]
    said = []
    for key in unknown:
        near = difflib.get_close_matches(key, known, n=1)
        said.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    raise UnknownOption(f"astrocat.{call}() takes no keyword {', '.join(said)}; it takes "
                        f"{', '.join(known)}")


def _from_cli() -> bool:
    import sys

    return Path(sys.argv[0]).name == "astrocat"


def _size(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    from astrocat.pipeline.feed import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise AstrocatError(f"memory_budget: {exc}") from exc


def _hdu(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    from astrocat.sources._fits import parse_hdu_name

    try:
        return parse_hdu_name(value)
    except ValueError as exc:
        raise AstrocatError(f"{what}: {exc}") from exc


# --------------------------------------------------------------------------- reading


class Catalog:
    """A catalog of any layout (a Parquet file, a dataset directory, a HATS catalog, a
    store's latest version, ``STORE@N``), opened lazily: nothing is read until asked, and
    every reader takes the columns and row filters it needs."""

    def __init__(self, path: str | Path) -> None:
        from astrocat.catalog.reader import open_catalog as _open

        self._reader: CatalogReader = _open(path)

    @property
    def path(self) -> Path:
        return self._reader.path

    @property
    def layout(self) -> str:
        """``file``, ``dataset`` or ``hats``."""
        return self._reader.layout

    @property
    def schema(self) -> pa.Schema:
        return self._reader.schema

    @property
    def columns(self) -> list[str]:
        return [n for n in self.schema.names if not n.startswith("_")]

    @property
    def provenance(self) -> dict:
        """Who made it: astrocat version, models with their sha256, inputs, command."""
        return self._reader.provenance

    @property
    def files(self) -> tuple[Path, ...]:
        return self._reader.files

    def __len__(self) -> int:
        return self._reader.num_rows

    def _dataset(self):
        import pyarrow.dataset as ds

        return ds.dataset([str(f) for f in self.files], schema=self.schema, format="parquet")

    def _names(self, columns: Sequence[str] | None) -> list[str]:
        names = list(columns) if columns is not None else self.columns
        unknown = [c for c in names if c not in self.schema.names]
        if unknown:
            raise AstrocatError(f"{self.path} has no column(s) {', '.join(unknown)} (it has: "
                                f"{', '.join(self.columns)})")
        return names

    def to_arrow(self, columns: Sequence[str] | None = None,
                 filters: Filters = None) -> pa.Table:
        """The rows as a pyarrow Table: only ``columns``, only rows passing ``filters``
        (a pyarrow expression or DNF tuples as ``pyarrow.parquet.read_table`` takes)."""
        import pyarrow.parquet as pq

        expr = (pq.filters_to_expression(filters) if isinstance(filters, list | tuple)
                else filters)
        try:
            return self._dataset().to_table(columns=self._names(columns), filter=expr)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise AstrocatError(f"filters {filters!r}: {exc}") from exc

    def to_pandas(self, columns: Sequence[str] | None = None,
                  filters: Filters = None) -> pd.DataFrame:
        """The rows as a pandas DataFrame (see :meth:`to_arrow`)."""
        return self.to_arrow(columns, filters).to_pandas()

    def to_table(self, columns: Sequence[str] | None = None, filters: Filters = None) -> Table:
        """The rows as an astropy Table with each column's unit, description and UCD, and
        the provenance in ``meta["astrocat"]`` (see :meth:`to_arrow`)."""
        from astropy.table import Column, Table

        from astrocat.catalog.schema import columns_of

        arrow = self.to_arrow(columns, filters)
        info = {c.name: c for c in columns_of(self.schema)}
        table = Table(meta={"astrocat": self.provenance})
        for name in arrow.column_names:
            values = arrow.column(name).to_numpy(zero_copy_only=False)
            if values.dtype == object:  # strings: fixed-width unicode, as astropy reads them
                values = values.astype(str)
            c = info[name]
            col = Column(values, name=name, unit=c.unit or None,
                         description=c.description or None)
            if c.ucd:
                col.meta["ucd"] = c.ucd
            table.add_column(col)
        return table

    def iter_batches(self, columns: Sequence[str] | None = None,
                     batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
        """Record batches, file by file, never all rows at once (for catalogs larger than
        memory)."""
        return self._reader.batches(self._names(columns), batch_size)

    def write(self, out: str | Path, *, format: str | None = None,
              columns: Sequence[str] | None = None, overwrite: bool = False) -> ExportResult:
        """This catalog as FITS, VOTable or ECSV for TOPCAT and the VO (see :func:`export`),
        as astropy's ``Table.write`` names it."""
        return export(self, out, format=format, columns=columns, overwrite=overwrite)

    def to_lsdb(self, **kwargs: Any):
        """The HATS catalog as an ``lsdb`` catalog (lazy; with its margin cache where one
        was written), for cone searches and crossmatches. Only the HATS layout."""
        if self.layout != "hats":
            raise AstrocatError(f"{self.path} is a {self.layout} catalog; to_lsdb needs one "
                                "written with layout='hats' (--layout hats)")
        import lsdb

        root = self._hats_root()
        return lsdb.open_catalog(str(root), **kwargs)

    def _hats_root(self) -> Path:
        """The directory LSDB opens: the collection if there is one, else the catalog."""
        first = self.files[0]
        found = None
        for parent in first.parents:
            if (parent / "collection.properties").is_file():
                return parent
            if found is None and ((parent / "hats.properties").is_file()
                                  or (parent / "properties").is_file()):
                found = parent
        if found is None:
            raise AstrocatError(f"{self.path}: no hats.properties above {first}")
        return found

    def summarize(self, **kwargs: Any) -> SummaryResult:
        """:func:`summarize` this catalog."""
        return summarize(self, **kwargs)

    def __repr__(self) -> str:
        return f"<astrocat.Catalog {self.path} ({self.layout}, {len(self)} rows)>"

    def _repr_html_(self) -> str:
        from astrocat.catalog.schema import columns_of

        prov = self.provenance
        models = prov.get("models", {})
        head = (f"<p><b>astrocat catalog</b> <code>{html.escape(str(self.path))}</code>: "
                f"{self.layout} layout, {len(self):,} rows"
                + (f", made by astrocat {html.escape(str(prov['astrocat_version']))}"
                   if prov.get("astrocat_version") else "")
                + (f"; models {html.escape(', '.join(models))}" if models else "") + "</p>")
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td>{html.escape(str(c.type))}</td>"
            f"<td>{html.escape(c.unit)}</td><td>{html.escape(c.ucd)}</td>"
            f"<td style='text-align:left'>{html.escape(c.description)}</td></tr>"
            for c in columns_of(self.schema) if not c.name.startswith("_"))
        return (head + "<table><thead><tr><th>column</th><th>type</th><th>unit</th>"
                f"<th>UCD</th><th>description</th></tr></thead><tbody>{rows}</tbody></table>")


def open_catalog(path: str | Path | Catalog) -> Catalog:
    """Open a catalog written by any astrocat version (see :class:`Catalog`)."""
    return path if isinstance(path, Catalog) else Catalog(path)


# --------------------------------------------------------------------------- science


@dataclass(repr=False)
class SummaryResult:
    """Every number of the science report (``report``, JSON-ready) and its figures."""

    report: dict
    figures: list[FigureOut] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def keys(self):
        return self.report.keys()

    def __repr__(self) -> str:
        return (f"<astrocat.SummaryResult {self.report['catalog']}: {self.report['rows']} rows; "
                f"{', '.join(self.report)}; {len(self.figures)} figures>")

    def to_json(self) -> str:
        from astrocat.science.summary import to_json

        return to_json(self.report)

    def figure(self, name: str) -> FigureOut:
        """One figure by name (it shows itself in a notebook; ``.png`` holds its bytes)."""
        for f in self.figures:
            if f.name == name:
                return f
        raise KeyError(f"no figure {name!r}; figures: {', '.join(f.name for f in self.figures)}")

    def save_figures(self, directory: str | Path) -> dict[str, Path]:
        """Each figure as ``DIRECTORY/<name>.png``."""
        from astrocat.science.figures import save_figures

        return save_figures(self.figures, Path(directory))

    def write_html(self, path: str | Path) -> Path:
        """One self-contained HTML page (``summarize --report``)."""
        from astrocat.science.report import to_html, write_html

        return write_html(to_html(self.report, self.figures), Path(path))

    def show(self) -> None:
        """The report as tables on the terminal (what ``astrocat summarize`` prints)."""
        from astrocat.science.render import render

        render(self.report)

    def _repr_html_(self) -> str:
        from astrocat.science.render import sections
        from astrocat.science.report import fragment

        return fragment(f"astrocat summary: {Path(self.report['catalog']).name} "
                        f"({self.report['rows']:,} rows)", sections(self.report), self.figures)


def summarize(catalog: str | Path | Catalog, *, truth: Sequence[str | Path] = (),
              figures: bool = True, images_root: str | Path | None = None,
              **task_options: Any) -> SummaryResult:
    """The science report of a catalog: counts, Galaxy Zoo answers and merger fraction,
    redshift bias table, lens candidates and metrics, Omega_m and sigma_8, out-of-domain
    shares. ``truth`` scores each task against its labels; ``figures`` draws the figures
    (mosaics read a few hundred source images; the numbers alone stream any size);
    ``task_options`` are the tasks' options by name (``merger_threshold=0.3``,
    ``include_ood=False``, ``top=20``, ...; ``astrocat summarize --help`` lists them)."""
    from astrocat.science.summary import SummaryOptions, collect

    path = catalog.path if isinstance(catalog, Catalog) else Path(catalog)
    result = collect(path, SummaryOptions(task=task_options, truth=tuple(truth),
                                          images=figures, images_root=images_root))
    report, made = result.report, []
    if figures:
        from astrocat.science.figures import make_figures

        made = make_figures(result)
        report["notes"].extend(f.note for f in made if f.note)
        made = [f for f in made if f.png]
        report["figures"] = [{"name": f.name, "title": f.title, "section": f.section,
                              "file": None} for f in made]
    return SummaryResult(report, made)


@dataclass(repr=False)
class DiffResult:
    """Catalog B against catalog A: every number (``report``) and what a reader sees."""

    report: dict

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def to_json(self) -> str:
        from astrocat.science.summary import to_json

        return to_json(self.report)

    def _sections(self) -> list:
        from astrocat.science.compare import sections

        return sections(self.report)

    def title(self) -> str:
        return f"astrocat diff: {self.report['b']} against {self.report['a']}"

    def __repr__(self) -> str:
        return f"<astrocat.DiffResult {self.report['b']} against {self.report['a']}>"

    def write_html(self, path: str | Path) -> Path:
        """One self-contained HTML page (``diff --report``)."""
        from astrocat.science.report import page, write_html

        a, b = self.report["a"], self.report["b"]
        return write_html(page(self.title(), f"{html.escape(a)} &rarr; {html.escape(b)} "
                               "&middot; made by <code>astrocat diff</code>",
                               self._sections(), []), Path(path))

    def show(self) -> None:
        from astrocat.science.render import show

        show(self._sections())

    def _repr_html_(self) -> str:
        from astrocat.science.report import fragment

        return fragment(self.title(), self._sections(), [])


def diff(a: str | Path | Catalog, b: str | Path | Catalog | None = None, *,
         truth: Sequence[str | Path] = (), tolerance: float = 1e-4,
         **task_options: Any) -> DiffResult:
    """Compare catalog ``b`` with ``a`` (any layouts, ``STORE@N``, or one store alone: its
    latest version against the one before): rows added and removed, status changes, how
    far each output moved, and each science task's own comparison."""
    from astrocat.science.compare import CompareOptions, compare, resolve_pair

    def spec(c):
        return None if c is None else str(c.path if isinstance(c, Catalog) else c)

    a, b = resolve_pair(spec(a), spec(b))
    return DiffResult(compare(a, b, CompareOptions(task=task_options, truth=tuple(truth),
                                                   tolerance=tolerance)))


def export(catalog: str | Path | Catalog, out: str | Path, *, format: str | None = None,
           columns: Sequence[str] | None = None, overwrite: bool = False) -> ExportResult:
    """Write a catalog (any layout, a store, ``STORE@N``) as a FITS binary table, VOTable or
    ECSV (``format``, else from ``out``'s suffix) with units, UCDs, descriptions and the
    provenance, streamed a batch at a time; ``columns``: only these."""
    from astrocat.catalog.export import export as _export

    reader = catalog._reader if isinstance(catalog, Catalog) else catalog
    return _export(reader, out, format=format, columns=columns, overwrite=overwrite)


def history(store: str | Path) -> list[dict]:
    """A store's versions, oldest first: time, rows, errors, inputs added/removed/changed,
    models with their sha256, duration, host and command (``astrocat history --json``).
    ``store``: an ``infer`` output (its store ``OUT.parts`` beside it), that store, or a
    job's store; anything else raises :class:`AstrocatError`."""
    from astrocat.catalog.names import parse, require_store

    found = require_store(parse(store).path, f"history {store}")
    return json.loads(json.dumps(found.history()))
