"""astrocat from Python: the calls the command line makes, for notebooks and scripts.

>>> import astrocat
>>> run = astrocat.infer("examples/sample", "catalog.parquet")
>>> cat = astrocat.open_catalog("catalog.parquet")
>>> cat.to_table(columns=["object_id", "ra", "dec", "z_pred"], filters=[("status", "==", "ok")])
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
    """What a run did (rows, errors, parts, versions) and the catalog it wrote.

    Returned by :func:`infer` and :func:`run`; not made by hand. Its fields are those of
    the run's summary (the ``RunSummary`` dataclass of ``astrocat.pipeline.run``), of
    which a user mostly reads the ones below. ``str(result)`` is what the CLI prints
    after a run (warnings first); in Jupyter it renders as those lines.

    Attributes
    ----------
    out : pathlib.Path
        The catalog written (``--out``).
    n_rows, n_errors : int
        Rows in the catalog, and how many of them are error rows (``status == "error"``).
    n_parts, n_reused : int
        Parquet parts in the published version, and how many were reused from earlier
        runs rather than computed.
    seconds : float
        Wall time of the run.
    by_model : dict of str to str
        Each model that ran, and the engine it ran on.
    by_kind : dict of str to dict of str to int
        Input kind (``rgb_image``, ``spectrum``, ...; ``""`` when unrecognised) -> model
        (``""`` when none took it) -> rows.
    version : int or None
        The store's version that is now current (``OUT@N`` opens it).
    new_version : bool
        False when nothing changed and nothing was published.
    changes : dict
        Inputs ``added``, ``removed`` and ``changed`` against the previous version.
    skipped : dict of str to int
        astrocat's own files found under the input (catalogs, stores, simulation truth)
        that were skipped, by reason.
    failures : dict of str to int
        Partitions that failed inside the workers, by cause; their inputs are error rows
        the next run retries (details in ``failure_log``).
    n_warnings : int
        Library warnings recorded in ``warnings_log`` (never printed mid-run).
    replaced : dict or None
        The catalog made from other inputs that this run replaced at ``out``, if any.
    drift : dict of str to dict
        Per model, whether this run's inputs as a whole look like the model's reference
        (``verdict``: ``in_domain``, ``shifted``, ``far`` or ``untested``) with the test's
        ``statistic``, ``p_value``, ``n``, ``median_ratio`` and ``beyond_q95``; the same
        record, with the sketches it rests on, is the provenance's ``models.<name>.drift``.

    See Also
    --------
    infer, run, Catalog

    Examples
    --------
    >>> run = astrocat.infer("examples/sample", "catalog.parquet", progress=False)
    >>> run
    <astrocat.RunResult .../catalog.parquet: 429 rows, 5 errors, version 1>
    >>> run.n_rows, run.n_errors, run.exit_code
    (429, 5, 1)
    >>> run.by_kind["mono_image"]
    {'lens-lastro': 50}
    >>> len(run.catalog)
    429
    """

    @property
    def catalog(self) -> Catalog:
        """The catalog this run wrote, opened (:func:`open_catalog` of ``out``)."""
        return open_catalog(self.out)

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 0 every input ok, 1 some inputs are error rows."""
        return 1 if self.n_errors else 0

    def warnings(self) -> list[str]:
        """What the user must know even when nothing is printed.

        A lock taken over from a run that did not end cleanly, partitions that failed in
        the workers, a ``model=`` that could not take some of the inputs, and warnings
        that a model's card carries (a trained model worse than its baseline). The CLI
        prints these in yellow.

        Returns
        -------
        list of str
            One sentence per warning; empty when there is nothing to say.

        Examples
        --------
        >>> run = astrocat.infer("examples/sample", "catalog.parquet", model="lens-lastro",
        ...                      progress=False)
        >>> run.warnings()  # doctest: +ELLIPSIS
        ['--model lens-lastro cannot take 356 of the inputs (151 rgb_image rows went to ...']
        """
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
        """The run's summary as the CLI prints it, one line per item.

        Parameters
        ----------
        positions : str, optional
            How to name the positions table in the line about rows placed from it
            (the CLI passes the ``--positions`` path); default "the positions table".

        Returns
        -------
        list of str
            What was skipped or replaced, the "wrote OUT: version N ..." line (or "no
            changes: ..."), which model took each kind of input, a ``precision:`` line
            per model that ran in FP32 where INT8 was asked (and why), and a ``drift:``
            line per model whose inputs as a whole moved away from its reference.

        Examples
        --------
        >>> print("\\n".join(run.lines()))  # doctest: +ELLIPSIS
        wrote .../catalog.parquet: version 1: inputs 226 added, 0 removed, 0 changed; 429 rows, ...
        models by input kind: unrecognised -> none (error rows) (3); density_field -> ...
        """
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
        out.extend(f"precision: {m} ran in FP32 ({why})" for m, why in self.precision.items())
        from astrocat.pipeline.drift_report import lines as drift_lines

        out.extend(drift_lines(self.drift))  # only where the data moved, or went untested
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
        """The result of a pipeline's ``RunSummary`` (used by :func:`infer` and :func:`run`).

        Parameters
        ----------
        summary : astrocat.pipeline.run.RunSummary
            What the pipeline returned.

        Returns
        -------
        RunResult
            The same fields, with the methods above.

        Examples
        --------
        >>> RunResult.of(summary).n_rows == summary.n_rows
        True
        """
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

    Every input becomes exactly one row (one per table row for spectra tables):
    predictions, or status "error" with what to fix. Running it again reuses finished
    parts; a run that changes nothing publishes nothing. The keywords are
    ``astrocat infer``'s options. ``out`` is never something astrocat did not write unless
    ``overwrite``; ``keep_versions`` versions of it are kept, each readable as
    ``"OUT@N"``.

    Parameters
    ----------
    input : str, pathlib.Path or sequence of them
        A directory (walked recursively), a file, a glob, or ``"@list.txt"`` (a file of
        paths); several make one catalog of them all (``--input``, repeated).
    out : str or pathlib.Path
        The catalog: a Parquet file (``layout="file"``) or a directory (``"dataset"``,
        ``"hats"``). Parts and versions are kept in ``OUT.parts/`` beside it.
    model : str, pathlib.Path or sequence of them, optional
        Bundled model names or model card paths (``--model``); each takes every input
        it can eat, the others keep their default model. Default: the bundled model for
        each input kind.
    layout : {"file", "dataset", "hats"}
        One Parquet file; a directory of Parquet files with ``_metadata``; a HATS
        collection with its margin cache (needs the ``[hats]`` extra).
    hats_margin_arcsec : float
        ``layout="hats"``: the margin cache's radius in arcsec (1-60; 0 for none).
    positions : str or pathlib.Path, optional
        A CSV, Parquet or FITS table of object IDs and ``ra``/``dec`` in degrees that
        places inputs carrying no coordinates (``--positions``).
    positions_id : str, optional
        The positions table's ID column; default the first of ``object_id``,
        ``GalaxyID``, ``dr7objid``, ``objid``, ``source_id``, ``id``.
    engine : {"auto", "onnxruntime", "tensorflow", "tensorrt", "torch"}
        ``"auto"``: TensorRT on an NVIDIA GPU, else ONNX Runtime.
    decode : {"auto", "cpu", "gpu"}
        Where the torch engine's JPEGs are decoded.
    precision : {"fp32", "int8"}
        ``"int8"``: each model's bundled INT8 variant that passed its gates, unless it
        was timed slower than FP32 on a CPU like this one (then FP32).
    scheduler : str, optional
        The address of an existing Dask cluster (``"tcp://host:8786"``); default a
        local one.
    workers : int, optional
        Local Dask worker processes; default chosen from the cores and the run's size.
    partition_size : int
        Files per partition (one Parquet part each); spectra tables are cut into row
        ranges 16 times this size.
    batch_size : int, optional
        Items per engine call; default chosen per model from the memory budget.
    memory_budget : int or str, optional
        Memory each worker's batches may use, in bytes or as ``"4GB"``; default half the
        machine's memory, shared by its workers.
    exclude : sequence of str
        Globs of paths (relative to the input root) to skip.
    hdu, mask_hdu : str, int or tuple, optional
        FITS images: the HDU to read and a mask HDU whose flagged pixels become NaN,
        as ``"SCI"``, ``"SCI,2"`` (EXTNAME, EXTVER), ``("SCI", 2)`` or an index.
    plane : int or str, optional
        FITS cubes: the plane to read, by index (0 first) or band name.
    mask_bits : int, optional
        Only these bits of ``mask_hdu`` flag a pixel; default any non-zero value.
    tta : int
        Test-time augmentation: 1 to 8 rotated/flipped views per input, adding
        ``<output>_std``, ``_lo`` and ``_hi`` columns when above 1.
    overwrite : bool
        Replace an existing ``out`` even if astrocat did not write it.
    keep_versions : int, optional
        Versions of the catalog kept (at least 1; default 5).
    progress : bool
        Show a progress bar (in a terminal, or in a notebook cell).
    command : str, optional
        The command recorded in the provenance; default the call itself.

    Returns
    -------
    RunResult
        What the run did (rows, errors, versions, warnings) and ``.catalog``.

    Raises
    ------
    AstrocatError
        When it cannot run: a bad option (a misspelt keyword included, which is also a
        ``TypeError``), no inputs, a bad model card, an ``out`` that astrocat did not
        write, an unreachable scheduler, another run holding the store. Inputs it cannot
        use are not raised: they are error rows, counted in ``n_errors``.

    See Also
    --------
    run : the same from a job file.
    open_catalog : read what it wrote.

    Examples
    --------
    >>> import astrocat
    >>> run = astrocat.infer("examples/sample", "catalog.parquet")
    >>> run.n_rows, run.n_errors
    (429, 5)
    >>> run.catalog.to_pandas(columns=["source", "error"],
    ...                       filters=[("status", "==", "error")])  # doctest: +SKIP

    Several inputs, a chosen model and a HATS catalog:

    >>> astrocat.infer(["survey/north", "survey/south"], "north_south_hats",
    ...                model="gz2-cnn", layout="hats", progress=False)  # doctest: +SKIP
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
    :func:`infer`.

    A run that changes something publishes a new version of the job's store and moves
    its ``latest`` link atomically; a run that changes nothing publishes nothing. Every
    run, published or not, leaves a JSON record in ``STORE/runs/``.

    Parameters
    ----------
    job : str or pathlib.Path
        The job file (TOML: ``[job]``, optional ``[cluster]`` and ``[schedule]``).
    retry_errors : bool
        Recompute the latest version's parts that hold error rows into a new version
        (``--retry-errors``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    RunResult
        What the run did; ``version`` is the store's version now current.

    Raises
    ------
    AstrocatError
        A bad job file, or anything that stops :func:`infer`; another run holding the
        store (the CLI's exit 3) is an ``AstrocatError`` too.

    Examples
    --------
    >>> result = astrocat.run("nightly.toml", progress=False)  # doctest: +SKIP
    >>> result.version, result.new_version  # doctest: +SKIP
    (4, True)
    >>> astrocat.history("/data/catalogs/nightly")[-1]["rows"]  # doctest: +SKIP
    """
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
    every reader takes the columns and row filters it needs.

    Usually made by :func:`open_catalog`; ``len(catalog)`` is its number of rows, read
    from the Parquet footers. In Jupyter it renders as a table of its columns with
    their types, units, UCDs and descriptions.

    Parameters
    ----------
    path : str or pathlib.Path
        The catalog (a file, a directory, a HATS collection), a store, ``OUT@N``,
        ``OUT@latest``, ``OUT.parts@N`` or ``STORE@N``.

    Raises
    ------
    AstrocatError
        No catalog at ``path``, or a version that was not kept.

    See Also
    --------
    open_catalog

    Examples
    --------
    >>> cat = astrocat.Catalog("catalog.parquet")
    >>> cat
    <astrocat.Catalog catalog.parquet (file, 429 rows)>
    >>> cat.layout, len(cat)
    ('file', 429)
    >>> cat.columns[:6]
    ['object_id', 'source', 'hdu', 'row', 'kind', 'model']
    """

    def __init__(self, path: str | Path) -> None:
        from astrocat.catalog.reader import open_catalog as _open

        self._reader: CatalogReader = _open(path)

    @property
    def path(self) -> Path:
        """The path the catalog was opened by (without ``@N``)."""
        return self._reader.path

    @property
    def layout(self) -> str:
        """``file``, ``dataset`` or ``hats``."""
        return self._reader.layout

    @property
    def schema(self) -> pa.Schema:
        """The pyarrow schema, with each field's unit, UCD and description in its
        metadata."""
        return self._reader.schema

    @property
    def columns(self) -> list[str]:
        """The catalog's column names, in order (not HATS's internal ``_`` columns)."""
        return [n for n in self.schema.names if not n.startswith("_")]

    @property
    def provenance(self) -> dict:
        """Who made it: astrocat version, models with their sha256, inputs, command."""
        return self._reader.provenance

    @property
    def files(self) -> tuple[Path, ...]:
        """The Parquet files that hold the rows (one for the file layout)."""
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
        """The rows as a pyarrow Table: only ``columns``, only rows passing ``filters``.

        Only the columns asked for are read (column projection), and row groups whose
        statistics rule out the filter are skipped.

        Parameters
        ----------
        columns : sequence of str, optional
            The columns to read; default every column in :attr:`columns`.
        filters : pyarrow.compute.Expression or list of tuple, optional
            Rows to keep: a pyarrow expression, or DNF tuples as
            ``pyarrow.parquet.read_table`` takes them (``[("status", "==", "ok")]``;
            a list of such lists is an OR of ANDs).

        Returns
        -------
        pyarrow.Table

        Raises
        ------
        AstrocatError
            An unknown column (the message lists the catalog's) or a filter pyarrow
            cannot apply.

        Examples
        --------
        >>> import pyarrow.compute as pc
        >>> cat.to_arrow(["object_id", "p_lens"], pc.field("p_lens") > 0.9).num_rows
        22
        >>> cat.to_arrow(["object_id"], [("status", "==", "error")]).num_rows
        5
        """
        import pyarrow.parquet as pq

        expr = (pq.filters_to_expression(filters) if isinstance(filters, list | tuple)
                else filters)
        try:
            return self._dataset().to_table(columns=self._names(columns), filter=expr)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise AstrocatError(f"filters {filters!r}: {exc}") from exc

    def to_pandas(self, columns: Sequence[str] | None = None,
                  filters: Filters = None) -> pd.DataFrame:
        """The rows as a pandas DataFrame.

        Parameters
        ----------
        columns : sequence of str, optional
            The columns to read; default every column.
        filters : pyarrow.compute.Expression or list of tuple, optional
            Rows to keep, as for :meth:`to_arrow`.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> errors = cat.to_pandas(columns=["source", "error"],
        ...                        filters=[("status", "==", "error")])
        >>> errors["source"].tolist()[:2]
        ['broken/spectra_missing_flux.csv', 'broken/cube.fits']
        """
        return self.to_arrow(columns, filters).to_pandas()

    def to_table(self, columns: Sequence[str] | None = None, filters: Filters = None) -> Table:
        """The rows as an astropy Table with each column's unit, description and UCD, and
        the provenance in ``meta["astrocat"]``.

        Parameters
        ----------
        columns : sequence of str, optional
            The columns to read; default every column.
        filters : pyarrow.compute.Expression or list of tuple, optional
            Rows to keep, as for :meth:`to_arrow`.

        Returns
        -------
        astropy.table.Table
            Strings as fixed-width unicode; each column's UCD in ``col.meta["ucd"]``.

        Examples
        --------
        >>> t = cat.to_table(columns=["object_id", "z_pred", "z"],
        ...                  filters=[("kind", "==", "spectrum"), ("status", "==", "ok")])
        >>> len(t), t["z_pred"].description, t["z_pred"].meta["ucd"]
        (204, 'Predicted redshift', 'src.redshift')
        >>> t.meta["astrocat"]["astrocat_version"]
        '0.4.0'
        """
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
        memory).

        Parameters
        ----------
        columns : sequence of str, optional
            The columns to read; default every column.
        batch_size : int
            At most this many rows per batch.

        Returns
        -------
        iterator of pyarrow.RecordBatch

        Examples
        --------
        >>> [b.num_rows for b in cat.iter_batches(["object_id"], batch_size=200)]
        [200, 200, 29]
        """
        return self._reader.batches(self._names(columns), batch_size)

    def write(self, out: str | Path, *, format: str | None = None,
              columns: Sequence[str] | None = None, overwrite: bool = False) -> ExportResult:
        """This catalog as FITS, VOTable or ECSV for TOPCAT and the VO, as astropy's
        ``Table.write`` names it (the same as :func:`export`).

        Parameters
        ----------
        out : str or pathlib.Path
            The file to write.
        format : {"fits", "votable", "ecsv"}, optional
            Default from ``out``'s suffix (``.fits``, ``.vot``, ``.ecsv``, ...).
        columns : sequence of str, optional
            Only these columns; default all.
        overwrite : bool
            Replace an existing ``out``.

        Returns
        -------
        astrocat.catalog.export.ExportResult
            ``path``, ``format``, ``rows`` and ``columns`` written.

        Examples
        --------
        >>> print(cat.write("catalog.fits"))
        429 rows, 56 columns -> catalog.fits (fits)
        """
        return export(self, out, format=format, columns=columns, overwrite=overwrite)

    def to_lsdb(self, **kwargs: Any):
        """The HATS catalog as an ``lsdb`` catalog (lazy; with its margin cache where one
        was written), for cone searches and crossmatches. Only the HATS layout.

        Parameters
        ----------
        **kwargs
            Passed to ``lsdb.open_catalog`` (e.g. ``columns=``, ``search_filter=``).

        Returns
        -------
        lsdb.Catalog

        Raises
        ------
        AstrocatError
            The catalog is not of the HATS layout.

        Examples
        --------
        >>> sky = astrocat.open_catalog("catalog_hats").to_lsdb()  # doctest: +SKIP
        >>> sky.cone_search(ra=180, dec=0, radius_arcsec=3600).compute()  # doctest: +SKIP
        """
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
        """:func:`summarize` this catalog.

        Parameters
        ----------
        **kwargs
            :func:`summarize`'s keywords (``truth=``, ``figures=``, task options).

        Returns
        -------
        SummaryResult

        Examples
        --------
        >>> cat.summarize(figures=False)["ok"]
        424
        """
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
    """Open a catalog written by any astrocat version (see :class:`Catalog`).

    Parameters
    ----------
    path : str, pathlib.Path or Catalog
        A catalog of any layout, a store, or a version of either: ``OUT@N``,
        ``OUT@latest``, ``OUT.parts@N``, ``STORE@N``. A :class:`Catalog` is returned
        as is.

    Returns
    -------
    Catalog
        Opened lazily: only the Parquet footers are read.

    Raises
    ------
    AstrocatError
        No catalog at ``path`` (the message names it), or a version not kept.

    Examples
    --------
    >>> cat = astrocat.open_catalog("catalog.parquet")
    >>> len(cat), cat.layout
    (429, 'file')
    >>> astrocat.open_catalog("catalog.parquet@1")  # version 1, while it is kept
    <astrocat.Catalog catalog.parquet (file, 429 rows)>
    """
    return path if isinstance(path, Catalog) else Catalog(path)


# --------------------------------------------------------------------------- science


@dataclass(repr=False)
class SummaryResult:
    """Every number of the science report (``report``, JSON-ready) and its figures.

    Returned by :func:`summarize`. ``result[key]`` reads ``report[key]``; in Jupyter it
    renders as the report's tables with its figures inline.

    Parameters
    ----------
    report : dict
        The report: ``catalog``, ``rows``, ``ok``, ``errors``, ``by_kind``,
        ``error_reasons``, ``notes``, ``ood``, then one key per science task present
        (``morphology``, ``redshift``, ``lens``, ``cosmology``); ``astrocat summarize
        --json`` prints the same.
    figures : list of astrocat.science.figures.FigureOut
        The figures drawn, each with ``name``, ``section``, ``title`` and ``png``
        (bytes).

    See Also
    --------
    summarize

    Examples
    --------
    >>> summary = astrocat.summarize("catalog.parquet")
    >>> summary["rows"], summary["errors"]
    (429, 5)
    >>> round(summary["morphology"]["merger"]["fraction"], 4)
    0.0267
    >>> summary.figure("redshift_2d")  # shows itself in a notebook  # doctest: +SKIP
    """

    report: dict
    figures: list[FigureOut] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def keys(self):
        """The report's keys (``summary.keys()``, as a dict's).

        Returns
        -------
        dict_keys

        Examples
        --------
        >>> list(summary.keys())[:4]
        ['catalog', 'rows', 'ok', 'errors']
        """
        return self.report.keys()

    def __repr__(self) -> str:
        return (f"<astrocat.SummaryResult {self.report['catalog']}: {self.report['rows']} rows; "
                f"{', '.join(self.report)}; {len(self.figures)} figures>")

    def to_json(self) -> str:
        """The report as JSON, as ``astrocat summarize --json`` prints it.

        Returns
        -------
        str
            Indented JSON; missing values (NaN) as ``null``.

        Examples
        --------
        >>> json.loads(summary.to_json())["ok"]
        424
        """
        from astrocat.science.summary import to_json

        return to_json(self.report)

    def figure(self, name: str) -> FigureOut:
        """One figure by name (it shows itself in a notebook; ``.png`` holds its bytes).

        Parameters
        ----------
        name : str
            The figure's name, its file stem under ``--plots`` (``"redshift_2d"``,
            ``"merger_fraction"``, ``"lens_scores"``, ...).

        Returns
        -------
        astrocat.science.figures.FigureOut

        Raises
        ------
        KeyError
            No figure of that name (the message lists those drawn).

        Examples
        --------
        >>> fig = summary.figure("redshift_2d")
        >>> fig.title, fig.png[:4]
        ('Predicted against true redshift (seed 003 Fig. 17)', b'\\x89PNG')
        """
        for f in self.figures:
            if f.name == name:
                return f
        raise KeyError(f"no figure {name!r}; figures: {', '.join(f.name for f in self.figures)}")

    def save_figures(self, directory: str | Path) -> dict[str, Path]:
        """Each figure as ``DIRECTORY/<name>.png`` (what ``summarize --plots`` writes).

        Parameters
        ----------
        directory : str or pathlib.Path
            Made if missing.

        Returns
        -------
        dict of str to pathlib.Path
            Each figure's name and the file written.

        Examples
        --------
        >>> paths = summary.save_figures("figures")
        >>> paths["redshift_2d"]
        PosixPath('figures/redshift_2d.png')
        """
        from astrocat.science.figures import save_figures

        return save_figures(self.figures, Path(directory))

    def write_html(self, path: str | Path) -> Path:
        """One self-contained HTML page (``summarize --report``): the tables and the
        figures, embedded.

        Parameters
        ----------
        path : str or pathlib.Path
            The page to write.

        Returns
        -------
        pathlib.Path
            The page written.

        Examples
        --------
        >>> summary.write_html("report.html")
        PosixPath('report.html')
        """
        from astrocat.science.report import to_html, write_html

        return write_html(to_html(self.report, self.figures), Path(path))

    def show(self) -> None:
        """The report as tables on the terminal (what ``astrocat summarize`` prints).

        Returns
        -------
        None

        Examples
        --------
        >>> summary.show()  # doctest: +SKIP
        """
        from astrocat.science.sections import render

        render(self.report)

    def _repr_html_(self) -> str:
        from astrocat.science.report import fragment
        from astrocat.science.sections import sections

        return fragment(f"astrocat summary: {Path(self.report['catalog']).name} "
                        f"({self.report['rows']:,} rows)", sections(self.report), self.figures)


def summarize(catalog: str | Path | Catalog, *, truth: Sequence[str | Path] = (),
              figures: bool = True, images_root: str | Path | None = None,
              **task_options: Any) -> SummaryResult:
    """The science report of a catalog: counts, Galaxy Zoo answers and merger fraction,
    redshift bias table, lens candidates and metrics, Omega_m and sigma_8, out-of-domain
    shares.

    The catalog is streamed (column projection, record batches), so the numbers of
    millions of rows take seconds and little memory; figures cost more.

    Parameters
    ----------
    catalog : str, pathlib.Path or Catalog
        A catalog of any layout, a store, or ``OUT@N``.
    truth : sequence of str or pathlib.Path
        Truth files in their published layouts, each task's recognised by its columns
        (``GalaxyID,Class1.1,...``; ``ID,is_lens,...``; ``ID,omega_m,sigma_8``): each
        task is then scored against its labels.
    figures : bool
        Draw the figures (mosaics read a few hundred source images); ``False`` gives
        the numbers alone.
    images_root : str or pathlib.Path, optional
        Where the catalog's ``source`` paths are relative to; default the input root
        recorded in the catalog.
    **task_options
        The science tasks' options by name, with ``astrocat summarize``'s defaults:
        ``merger_threshold=0.3``, ``vote_threshold=0.5``, ``confidence=0.683``,
        ``prototypes=5``, ``truth_column=None``, ``lens_threshold=0.5``, ``top=20``,
        ``include_ood=False``.

    Returns
    -------
    SummaryResult
        Every number (``result["redshift"]``, ...) and the figures.

    Raises
    ------
    AstrocatError
        No catalog there, an unknown task option, or a truth file no task recognises.

    Examples
    --------
    >>> summary = astrocat.summarize("catalog.parquet", merger_threshold=0.5)
    >>> summary["morphology"]["merger"]["k"], summary["morphology"]["merger"]["n"]
    (4, 150)
    >>> summary.write_html("report.html")
    PosixPath('report.html')
    >>> astrocat.summarize("catalog.parquet", figures=False,
    ...     truth=["examples/sample_truth/lens_labels.csv"])["lens"]  # doctest: +SKIP
    """
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
    """Catalog B against catalog A: every number (``report``) and what a reader sees.

    Returned by :func:`diff`. ``result[key]`` reads ``report[key]``; in Jupyter it
    renders as the comparison's tables.

    Parameters
    ----------
    report : dict
        The comparison: ``a``, ``b``, ``rows_a``, ``rows_b``, ``rows_in_both``,
        ``added``, ``removed``, ``matched_on``, ``status`` (status changes), ``columns``
        (how far each numeric column moved), ``provenance``, ``ood``, then one key per
        science task; ``astrocat diff --json`` prints the same.

    See Also
    --------
    diff

    Examples
    --------
    Version 2 of a catalog made without the sample's broken files (one of them a
    spectra table of several rows):

    >>> astrocat.infer("examples/sample", "catalog.parquet", exclude=["broken/*"])
    <astrocat.RunResult .../catalog.parquet: 420 rows, 0 errors, version 2>
    >>> d = astrocat.diff("catalog.parquet@1", "catalog.parquet@2")
    >>> d["added"], d["removed"], d["matched_on"]
    (0, 9, 'source')
    """

    report: dict

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def to_json(self) -> str:
        """The comparison as JSON, as ``astrocat diff --json`` prints it.

        Returns
        -------
        str
            Indented JSON; missing values (NaN) as ``null``.

        Examples
        --------
        >>> json.loads(d.to_json())["rows_a"]
        429
        """
        from astrocat.science.summary import to_json

        return to_json(self.report)

    def _sections(self) -> list:
        from astrocat.science.compare import sections

        return sections(self.report)

    def title(self) -> str:
        """The comparison's one-line title.

        Returns
        -------
        str

        Examples
        --------
        >>> d.title()
        'astrocat diff: catalog.parquet@2 against catalog.parquet@1'
        """
        return f"astrocat diff: {self.report['b']} against {self.report['a']}"

    def __repr__(self) -> str:
        return f"<astrocat.DiffResult {self.report['b']} against {self.report['a']}>"

    def write_html(self, path: str | Path) -> Path:
        """One self-contained HTML page (``diff --report``).

        Parameters
        ----------
        path : str or pathlib.Path
            The page to write.

        Returns
        -------
        pathlib.Path
            The page written.

        Examples
        --------
        >>> d.write_html("diff.html")
        PosixPath('diff.html')
        """
        from astrocat.science.report import page, write_html

        a, b = self.report["a"], self.report["b"]
        return write_html(page(self.title(), f"{html.escape(a)} &rarr; {html.escape(b)} "
                               "&middot; made by <code>astrocat diff</code>",
                               self._sections(), []), Path(path))

    def show(self) -> None:
        """The comparison as tables on the terminal (what ``astrocat diff`` prints).

        Returns
        -------
        None

        Examples
        --------
        >>> d.show()  # doctest: +SKIP
        """
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
    far each output moved, and each science task's own comparison.

    Rows are matched on (source, hdu, row) with DuckDB (streamed, spilling to disk), or
    across different input roots on the absolute path or ``object_id``; the report
    says which key it used.

    Parameters
    ----------
    a : str, pathlib.Path or Catalog
        The earlier catalog, ``STORE@N``; or, with ``b`` left out, a store (or an
        ``infer`` output with its versions).
    b : str, pathlib.Path or Catalog, optional
        The later catalog. Without it, ``a``'s latest version is compared with the kept
        version before it.
    truth : sequence of str or pathlib.Path
        Truth files, as for :func:`summarize`: each task's comparison then scores both.
    tolerance : float
        A value moved when ``|B - A|`` is larger than this.
    **task_options
        The science tasks' options, as for :func:`summarize`.

    Returns
    -------
    DiffResult

    Raises
    ------
    AstrocatError
        A catalog that is not there, or one catalog given that is not a store with two
        versions kept.

    Examples
    --------
    After a second run of the sample without its broken files (``exclude=["broken/*"]``,
    version 2):

    >>> d = astrocat.diff("catalog.parquet@1", "catalog.parquet@2")
    >>> d["rows_a"], d["rows_b"]
    (429, 420)
    >>> astrocat.diff("catalog.parquet").title()  # latest against the one before
    'astrocat diff: catalog.parquet@2 against catalog.parquet@1'
    """
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
    provenance, streamed a batch at a time; ``columns``: only these.

    The file appears atomically (a reader never sees half of it).

    Parameters
    ----------
    catalog : str, pathlib.Path or Catalog
        A catalog of any layout, a store, or ``OUT@N``.
    out : str or pathlib.Path
        The file to write.
    format : {"fits", "votable", "ecsv"}, optional
        Default from ``out``'s suffix: ``.fits``/``.fit``/``.fts``, ``.vot``/
        ``.votable``/``.xml``, ``.ecsv``.
    columns : sequence of str, optional
        Only these columns, in this order; default all.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    astrocat.catalog.export.ExportResult
        ``path``, ``format``, ``rows`` and ``columns`` written; ``str()`` of it is the
        CLI's line.

    Raises
    ------
    AstrocatError
        An unknown format or column, or ``out`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> print(astrocat.export("catalog.parquet", "catalog.vot",
    ...                       columns=["object_id", "ra", "dec"]))
    429 rows, 3 columns -> catalog.vot (votable)
    """
    from astrocat.catalog.export import export as _export

    reader = catalog._reader if isinstance(catalog, Catalog) else catalog
    return _export(reader, out, format=format, columns=columns, overwrite=overwrite)


def history(store: str | Path) -> list[dict]:
    """A store's versions, oldest first: time, rows, errors, inputs added/removed/changed,
    models with their sha256, duration, host and command (``astrocat history --json``).

    Parameters
    ----------
    store : str or pathlib.Path
        An ``infer`` output (its store ``OUT.parts`` beside it), that store, or a job's
        store.

    Returns
    -------
    list of dict
        One record per version ever published, including those retention removed
        (``kept`` says which are still readable, ``latest`` which is current); keys
        include ``version``, ``published_utc``, ``rows``, ``errors``, ``inputs``
        (``total``, ``added``, ``removed``, ``changed``), ``computed``, ``reused``,
        ``models``, ``seconds``, ``host`` and ``command``.

    Raises
    ------
    AstrocatError
        ``store`` is neither a store nor a catalog with one.

    Examples
    --------
    After a first run of the sample and a second without its broken files:

    >>> versions = astrocat.history("catalog.parquet")
    >>> [(v["version"], v["rows"], v["inputs"]["added"], v["inputs"]["removed"])
    ...  for v in versions]
    [(1, 429, 226, 0), (2, 420, 0, 5)]
    """
    from astrocat.catalog.names import parse, require_store

    found = require_store(parse(store).path, f"history {store}")
    return json.loads(json.dumps(found.history()))


# --------------------------------------------------------------------------- training


def train(recipe: str, data: str | Path, out: str | Path, *,
          from_model: str | Path | None = None,
          label_columns: Sequence[str] | str | None = None, epochs: int | None = None,
          head_epochs: int | None = None, batch_size: int | None = None, seed: int = 0,
          limit: int | None = None, architecture: str | None = None,
          name: str | None = None, model_version: str = "1.0.0", patience: int = 5,
          progress: bool = True, command: str | None = None,
          log: Any = None, **unknown: Any) -> Any:
    """Train a model (``astrocat train RECIPE``): one of the studies' recipes from
    scratch, or ``"finetune"``: a trained model adapted to your own labelled images.

    Writes ``model.keras``, ``model.onnx`` (checked against Keras), the reference
    statistics of the out-of-domain flag and a card with the held-out metrics into
    ``out``; the model is then used by naming it (``infer(..., model=out)``).
    TensorFlow is imported here, on first use.

    Parameters
    ----------
    recipe : {"morphology", "redshift", "lens", "cosmology", "finetune"}
        A study's recipe (its data in the real published layout), or ``"finetune"``.
    data : str or pathlib.Path
        The training data. For ``"finetune"``: a folder with one sub-folder of images
        per class (``data/spirals/*.jpg``, ``data/others/*.jpg``), or a labels CSV with
        an id or file column (``GalaxyID``, ``id_str``, ``iauname``, ``file_loc``,
        ``filename``, ...) and either one column of class names or columns of vote
        fractions in [0, 1].
    out : str or pathlib.Path
        The new model's directory.
    from_model : str or pathlib.Path, optional
        ``"finetune"`` only (``--from``), and required there: a bundled model (e.g.
        ``"gz2-cnn"``) or a model directory with ``card.toml`` and ``model.keras``.
    label_columns : sequence of str or str, optional
        ``"finetune"`` with a CSV only: the label columns (a comma-separated string or a
        list); default every numeric column but the id.
    epochs, head_epochs : int, optional
        Most epochs; for ``"finetune"``, ``head_epochs`` bounds its first stage (the new
        head alone, default 10) and ``epochs`` its second (everything, default 30).
    batch_size, seed, limit, patience : optional
        Batch size, random seed, at most this many examples, early-stopping patience.
    architecture : str, optional
        Another network for a recipe (e.g. ``"gz_vgg6"``); not for ``"finetune"``.
    name, model_version : str, optional
        The new model's name (default: ``out``'s folder name) and version: what catalogs
        made with it record.
    progress : bool
        Progress lines (and for ``"finetune"`` a progress bar, on a terminal) on stderr;
        warnings are printed either way.
    command : str, optional
        What the card records as the command (default: this call).
    log : callable, optional
        Called with each progress and ``warning:`` line instead of printing them.

    Returns
    -------
    astrocat.models.card.ModelCard
        The new model's card: ``directory``, ``outputs``, ``metrics`` (held-out, beside
        their trivial baselines), ``training`` and ``warnings``.

    Raises
    ------
    AstrocatError
        An unknown recipe, a ``from_model`` given to a recipe or missing for
        ``"finetune"``, a parent without Keras weights (the ``-int8`` variants), data
        not in the layout the recipe reads (one class folder, a CSV whose ids match no
        image, ...), or ``out`` named like a bundled model.

    Examples
    --------
    >>> card = astrocat.train("finetune", data="my_labels/", out="my-classifier",
    ...                       from_model="gz2-cnn")  # doctest: +SKIP
    >>> card.output_names, card.metrics["accuracy"]  # doctest: +SKIP
    (['p_others', 'p_spirals'], 0.93)
    >>> astrocat.infer("cutouts/", "catalog.parquet", model="my-classifier")  # doctest: +SKIP
    """
    import sys

    from astrocat.models.card import load_card
    from astrocat.models.train import RECIPES

    _no_unknown("train", unknown)
    cli = _from_cli()
    recipes = [*RECIPES, "finetune"]
    if recipe not in recipes:
        raise AstrocatError(f"unknown recipe {recipe!r} (choose from {', '.join(recipes)})")
    if isinstance(label_columns, str):
        label_columns = [c.strip() for c in label_columns.split(",") if c.strip()]
    spelled = {"from_model": "--from", "label_columns": "--label-columns",
               "head_epochs": "--head-epochs", "architecture": "--architecture"}
    said = {k: (v if cli else f"{k}=") for k, v in spelled.items()}
    if recipe == "finetune":
        if from_model is None:
            raise AstrocatError(f"the finetune recipe starts from a trained model: pass "
                                f"{said['from_model']} MODEL (a bundled model such as gz2-cnn, "
                                "or your model's directory with card.toml and model.keras)")
        if architecture is not None:
            raise AstrocatError(f"{said['architecture']} does not apply to finetune: it keeps "
                                "the network of the model it starts from and gives it a new "
                                "head")
    else:
        only = {"from_model": from_model, "label_columns": label_columns,
                "head_epochs": head_epochs}
        given = [k for k, v in only.items() if v is not None]
        if given:
            raise AstrocatError(f"{said[given[0]]} is for the finetune recipe only (the "
                                f"{recipe} recipe trains the study's network from scratch "
                                "on its published layout); to start from a trained model: "
                                + ("astrocat train finetune --from MODEL" if cli else
                                   "astrocat.train('finetune', ..., from_model=MODEL)"))
    if command is None:
        options = {"from_model": from_model, "label_columns": label_columns,
                   "epochs": epochs, "head_epochs": head_epochs, "batch_size": batch_size,
                   "seed": seed or None, "limit": limit, "architecture": architecture,
                   "name": name, "patience": patience if patience != 5 else None,
                   "model_version": model_version if model_version != "1.0.0" else None}
        command = (f"astrocat.train({recipe!r}, data={str(data)!r}, out={str(out)!r}"
                   + "".join(f", {k}={str(v) if isinstance(v, Path) else v!r}"
                             for k, v in options.items() if v is not None) + ")")
    if log is None:
        def log(message: str) -> None:
            if progress or message.startswith("warning:"):
                print(message, file=sys.stderr)

    if recipe == "finetune":
        from astrocat.models.finetune import finetune

        finetune(Path(data), Path(out), from_model=from_model, label_columns=label_columns,
                 epochs=epochs, head_epochs=head_epochs, batch_size=batch_size, seed=seed,
                 limit=limit, name=name, model_version=model_version, patience=patience,
                 command=command, log=log, progress=progress)
    else:
        from astrocat.models.train import train as train_recipe

        train_recipe(recipe, Path(data), Path(out), epochs=epochs, batch_size=batch_size,
                     seed=seed, limit=limit, architecture=architecture, name=name,
                     model_version=model_version, patience=patience, command=command,
                     log=log, verbose=2 if progress else 0)
    return load_card(Path(out))
