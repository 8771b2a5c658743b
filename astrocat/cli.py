"""The ``astrocat`` command line (click). Heavy libraries are imported inside commands,
so ``astrocat --help`` stays fast and CPU inference never imports TensorFlow.
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import sys
from pathlib import Path

import click

from astrocat._version import __version__

EXIT_OK, EXIT_SOME_ERRORS, EXIT_CANNOT_RUN, EXIT_LOCKED = 0, 1, 2, 3

EXIT_CODES_HELP = """
\b
Exit codes:
  0  finished, every input ok
  1  finished, some inputs are error rows in the catalog
  2  could not run (bad argument, missing input, bad model card or job file,
     unreachable scheduler)
  3  another astrocat run holds this catalog's store: nothing was done
"""


#: ``--engine`` (engines.base.ENGINES, spelled out: the CLI imports no engine module).
ENGINE_CHOICES = ["auto", "onnxruntime", "tensorflow", "tensorrt", "torch"]
ENGINE_HELP = ("auto: TensorRT on an NVIDIA GPU, else ONNX Runtime (TensorFlow for "
               "Keras-only models); torch: PyTorch via onnx2torch, on a CUDA GPU where there "
               "is one, else the CPU (needs pip install 'astrocat[torch]').")


def _friendly(fn):
    """Show errors as one line a person can act on; no traceback (ASTROCAT_DEBUG=1 shows it)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from astrocat.catalog.lock import LockHeld
        from astrocat.errors import AstrocatError

        try:
            return fn(*args, **kwargs)
        except LockHeld as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(EXIT_LOCKED)
        except AstrocatError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(EXIT_CANNOT_RUN)
        except KeyboardInterrupt:
            click.secho("interrupted: finished parts are kept; run the same command again "
                        "to resume", fg="yellow", err=True)
            sys.exit(130)
        except click.exceptions.ClickException:
            raise
        except OSError as exc:  # disk full, permissions, a path that vanished mid-run
            click.secho(f"error: {_os_error(exc, fn.__name__ in RESUMABLE)}", fg="red",
                        err=True)
            sys.exit(EXIT_CANNOT_RUN)
        except Exception as exc:
            if os.environ.get("ASTROCAT_DEBUG"):
                raise
            click.secho(f"internal error: {type(exc).__name__}: {exc}\n(this is a bug in "
                        "astrocat; re-run with ASTROCAT_DEBUG=1 for details and report it)",
                        fg="red", err=True)
            sys.exit(EXIT_CANNOT_RUN)

    return wrapper


#: Commands that keep the parts they finished and resume from them when run again.
RESUMABLE = frozenset({"infer", "run_job"})


def _os_error(exc: OSError, resumable: bool) -> str:
    """What the operating system refused, where, and what to do about it."""
    import errno

    code = exc.errno
    said = exc.strerror or str(exc)
    if code is None and "no space left on device" in str(exc).lower():
        code = errno.ENOSPC
    where = exc.filename
    where = os.fsdecode(where) if isinstance(where, str | bytes | os.PathLike) else None
    full = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    if code in full:
        # pyarrow's IOError has no errno: its text (which may name the file) is shown
        what = (exc.strerror or (str(exc) if exc.errno is None else "")
                or ("No space left on device" if code == errno.ENOSPC
                    else "Disk quota exceeded"))
        text = f"{what} while writing {where}" if where else what
        free = "free some space" + ("" if code == errno.ENOSPC else " or raise the quota")
        if resumable:
            return (f"{text}. The parts written so far are kept: {free} and run the same "
                    "command again; it resumes after them.")
        return (f"{text}. {free.capitalize()} (or write somewhere else) and run the command "
                "again.")
    if code == errno.EROFS:
        return (f"cannot write to {where or 'the output location'}: it is on a read-only "
                "file system. Write somewhere else (another --out or output path).")
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied{f' for {where}' if where else ''}: astrocat cannot write "
                f"{'there' if where else 'where it tried to'} (or, for an input, read it). "
                "Write somewhere you may (another --out or output path), or change the "
                "permissions.")
    if where and where not in str(exc):
        return f"{said}: {where}"
    return str(exc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, package_name="astrocat")  # the code's own, not stale metadata
def main() -> None:
    """Run trained neural networks over survey images, FITS cut-outs and spectra,
    and get back a Parquet catalog you can do science with."""
    # At exit, after the atexit handlers (files closed, locks released), the interpreter
    # collects garbage while tearing modules down: 0.1 s of a small run's second, spent on
    # objects the process is about to drop anyway. Frozen objects are not traversed.
    atexit.register(gc.freeze)


class _GlobHintCommand(click.Command):
    """Says what an unquoted glob did: the shell expanded it into many paths, of which
    ``--input`` took the first and click found the rest 'unexpected'."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if "unexpected extra argument" not in exc.format_message():
                raise
            said = exc.format_message()
            extra = said[said.find("(") + 1:said.rfind(")")].split()
            shown = " ".join(extra[:3]) + (" ..." if len(extra) > 3 else "")
            raise click.UsageError(
                f"got {len(extra)} unexpected extra argument(s) ({shown}): an unquoted glob "
                "that the shell expanded? Quote it, e.g. --input 'cutouts/*.fits', or give "
                "each path its own --input", ctx) from None


@main.command(cls=_GlobHintCommand, epilog=EXIT_CODES_HELP)
@click.option("--input", "-i", "input_", required=True, multiple=True,
              metavar="DIR|FILE|GLOB|@LIST",
              help="Directory (walked recursively), file, quoted glob, or @list.txt "
                   "(repeatable: one catalog of them all).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="Catalog to write: a Parquet file (--layout file) or a directory "
                   "(dataset, hats). Parts and versions are kept in OUT.parts/; an existing "
                   "OUT that astrocat did not write is refused (see --overwrite).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out even if astrocat did not write it.")
@click.option("--keep-versions", type=click.IntRange(min=1), default=None, metavar="N",
              help="Versions of the catalog kept, each readable as OUT@N [default: 5].")
@click.option("--layout", type=click.Choice(["file", "dataset", "hats"]), default="file",
              show_default=True,
              help="file: one Parquet file; dataset: a directory of Parquet files with "
                   "_metadata (DuckDB, pyarrow.dataset, polars); hats: a HATS catalog that "
                   "lsdb.open_catalog opens (needs the [hats] extra).")
@click.option("--hats-margin", type=float, default=10.0, show_default=True,
              metavar="ARCSEC",
              help="--layout hats: the margin cache's radius (1-60 arcsec; 0 for none). "
                   "LSDB crossmatches with this catalog are complete up to this radius.")
@click.option("--positions", default=None, type=click.Path(dir_okay=False), metavar="TABLE",
              help="CSV, Parquet or FITS table of object IDs and ra/dec in degrees: places "
                   "inputs that carry no coordinates (e.g. Galaxy Zoo JPEGs by GalaxyID).")
@click.option("--positions-id", default=None, metavar="COLUMN",
              help="The positions table's ID column [default: object_id, GalaxyID, dr7objid, "
                   "objid, source_id or id].")
@click.option("--model", "-m", default=None, metavar="NAME|PATH",
              help="Bundled model name or a model card path; takes every input it can eat.")
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
              help=ENGINE_HELP)
@click.option("--decode", type=click.Choice(["auto", "cpu", "gpu"]), default="auto",
              show_default=True,
              help="Where JPEGs are decoded. auto: on the GPU (nvJPEG, straight into the "
                   "engine's memory) when --engine torch runs on a CUDA GPU; cpu: always on "
                   "the CPU; gpu: on the GPU or not at all (an error before any input is "
                   "read). PNG, FITS and spectra are always read on the CPU. "
                   "ASTROCAT_TORCH_DEVICE=cpu keeps the torch engine on the CPU, where "
                   "--decode gpu then runs the same path (for testing).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32",
              show_default=True,
              help="int8: each model's bundled INT8 variant that passed its science gates "
                   "(astrocat models lists them); models without one, or whose variant was "
                   "timed slower than FP32 on a CPU like this one, stay FP32 (the run "
                   "says why).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing Dask cluster (tcp://host:8786) instead of a local one.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Dask worker processes [default: one per core].")
@click.option("--partition-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Files per partition (one Parquet part each); spectra tables are cut "
                   "into row ranges 16x this size.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Items per engine call [default: chosen per model from the memory "
                   "budget, at most 64 on a CPU].")
@click.option("--memory-budget", default=None, metavar="SIZE",
              help="Memory each worker's batches may use, e.g. 4GB [default: half the "
                   "machine's memory, shared by its workers].")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip inputs whose path relative to the input root matches (repeatable).")
@click.option("--hdu", default=None, metavar="EXTNAME[,EXTVER]|INDEX",
              help="FITS images: the HDU to read (e.g. SCI, SCI,2 or 1) [default: the model "
                   "card's, else the first 2-D image].")
@click.option("--plane", default=None, metavar="INDEX|BAND",
              help="FITS cubes (bands x y x x): the plane to read, by index (0 first) or by "
                   "the band name in the header (BAND0.. or BANDS).")
@click.option("--mask-hdu", default=None, metavar="EXTNAME[,EXTVER]|INDEX",
              help="FITS images: a mask/quality HDU (e.g. DQ); its flagged pixels become NaN "
                   "and go through the NaN policy.")
@click.option("--mask-bits", type=click.IntRange(min=1), default=None, metavar="BITS",
              help="Only these bits of --mask-hdu flag a pixel [default: any non-zero].")
@click.option("--tta", type=click.IntRange(min=1, max=8), default=1, show_default=True,
              metavar="N",
              help="Average N rotated/flipped views of each input (models whose card "
                   "declares the symmetry; spectra run once) and write each output's spread "
                   "(<name>_std) and a calibrated 90 % interval (<name>_lo, <name>_hi). "
                   "Costs N times the network, not the decoding.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary line.")
@_friendly
def infer(input_, out, overwrite, keep_versions, layout, hats_margin, positions, positions_id,
          model, engine, decode, precision, scheduler, workers, partition_size, batch_size,
          memory_budget, exclude, hdu, plane, mask_hdu, mask_bits, tta, quiet) -> None:
    """Run the right model on every image, FITS file and spectrum under --input.

    Every input becomes exactly one catalog row (one per table row for spectra tables):
    predictions, or status "error" with a message saying what to fix. Re-running the same
    command reuses finished parts: only new or changed inputs are processed.
    """
    from astrocat import api

    result = api.infer(
        input_[0] if len(input_) == 1 else input_, out, overwrite=overwrite,
        keep_versions=keep_versions, model=model, layout=layout, hats_margin_arcsec=hats_margin,
        positions=positions,
        positions_id=positions_id, engine=engine, decode=decode, precision=precision,
        scheduler=scheduler, workers=workers, partition_size=partition_size,
        batch_size=batch_size,
        memory_budget=_bytes(memory_budget), exclude=exclude, hdu=_hdu(hdu, "--hdu"),
        plane=_plane(plane), mask_hdu=_hdu(mask_hdu, "--mask-hdu"), mask_bits=mask_bits,
        tta=tta, progress=not quiet, command=_command())
    sys.exit(_report(result, quiet, positions))


def _command() -> str:
    """The command line as the user typed it, for the provenance."""
    import shlex

    return shlex.join(["astrocat", *sys.argv[1:]])


def _hdu(text: str | None, option: str):
    if text is None:
        return None
    from astrocat.sources._fits import parse_hdu_name

    try:
        return parse_hdu_name(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def _plane(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text.strip()


def _bytes(size: str | None) -> int | None:
    if size is None:
        return None
    from astrocat.pipeline.feed import parse_size

    try:
        return parse_size(size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--memory-budget") from exc


def _report(result, quiet: bool, positions: str | None = None) -> int:
    """Print what a run did (warnings always, the summary unless quiet); its exit code."""
    for warning in result.warnings():
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if not quiet:
        for line in result.lines(positions):
            click.echo(line, err=True)
    return result.exit_code


@main.command("run", epilog=EXIT_CODES_HELP)
@click.argument("job", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--retry-errors", is_flag=True,
              help="Recompute the latest version's parts that hold error rows (transient "
                   "I/O failures) into a new version.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary line.")
@_friendly
def run_job(job, retry_errors, quiet) -> None:
    """Run a job file: the scheduled, versioned form of `infer`.

    Every run that changes something publishes a new immutable version in the job's store
    (`out`) and moves its `latest` link atomically; a run that changes nothing publishes
    nothing. One run per store at a time: a second one exits 3 at once. Each run leaves a
    JSON record in STORE/runs/.
    """
    from astrocat import api

    result = api.run(job, retry_errors=retry_errors, progress=not quiet)
    sys.exit(_report(result, quiet, result.positions and "the positions table"))


class _TaskOptionsCommand(click.Command):
    """A command that also takes every science task's options (``OPTIONS`` in each task
    module), added on first use so that ``astrocat --help`` imports no science module."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        from astrocat import science

        if getattr(self, "_options_of", None) is not science.TASKS:
            own = getattr(self, "_own_params", None) or list(self.params)
            self._own_params, self._options_of = own, science.TASKS
            truth = next(p for p in own if p.name == "truth")
            truth.help = ("Truth in a published layout (repeatable, one per task), recognised "
                          "by its columns: " + "; ".join(
                              t.TRUTH.hint for t in science.TASKS if t.TRUTH) + ".")
            self.params = own + [click.Option([o.flag], type=o.type, default=o.default,
                                              help=o.help, show_default=o.default is not None)
                                 for task in science.TASKS for o in task.OPTIONS]
        return super().get_params(ctx)


@main.command(cls=_TaskOptionsCommand)
@click.argument("catalog", type=click.Path(path_type=Path))
@click.option("--truth", "truth", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="CSV", help="Truth in a published layout (repeatable, one per task).")
@click.option("--json", "as_json", is_flag=True, help="Print every number as JSON.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR", help="Write labelled PNG figures into DIR.")
@click.option("--report", "report_html", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="HTML",
              help="Write one self-contained HTML page with the tables and figures.")
@click.option("--images-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the catalog's `source` paths are relative to [default: the input "
                   "root recorded in the catalog].")
@_friendly
def summarize(catalog, truth, as_json, plots_dir, report_html, images_root,
              **task_options) -> None:
    """Science report from a catalog: counts; Galaxy Zoo answers, merger fraction with its
    interval; redshift bias table; lens candidates and metrics; Omega_m and sigma_8.

    With --truth, each task is also scored against its labels. The catalog is streamed, so
    millions of rows take seconds and little memory; figures cost more (image mosaics read
    a few hundred source images) and are made only with --plots or --report.
    """
    from astrocat import api

    figures_wanted = plots_dir is not None or report_html is not None
    result = api.summarize(catalog, truth=truth, figures=figures_wanted,
                           images_root=images_root, **task_options)
    if plots_dir is not None:
        files = result.save_figures(plots_dir)
        for entry in result.report.get("figures", []):
            entry["file"] = str(files[entry["name"]]) if entry["name"] in files else None
    if report_html is not None:
        result.write_html(report_html)
        result.report["html_report"] = str(report_html)
    if as_json:
        click.echo(result.to_json())
    else:
        result.show()
        if report_html is not None:
            click.echo(f"wrote {report_html}", err=True)


@main.command(cls=_TaskOptionsCommand)
@click.argument("a")
@click.argument("b", required=False)
@click.option("--truth", "truth", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="CSV", help="Truth in a published layout (repeatable, one per task).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="A value moved when |B - A| is larger than this.")
@click.option("--json", "as_json", is_flag=True, help="Print every number as JSON.")
@click.option("--report", "report_html", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="HTML", help="Write one self-contained HTML page.")
@_friendly
def diff(a, b, truth, tolerance, as_json, report_html, **task_options) -> None:
    """Compare catalog B with catalog A: rows added and removed, status changes with their
    reasons, how far every output moved, and each science task's own comparison (merger
    fraction with both intervals, redshift metrics, lens candidates gained and lost,
    Omega_m/sigma_8 shifts).

    \b
    A and B: catalogs of any layout, store versions (STORE@3 STORE@5), or one store
    alone (its latest version against the one before).
    """
    from astrocat import api

    result = api.diff(a, b, truth=truth, tolerance=tolerance, **task_options)
    if report_html is not None:
        result.write_html(report_html)
        result.report["html_report"] = str(report_html)
    if as_json:
        click.echo(result.to_json())
    else:
        result.show()


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@_friendly
def history(store, as_json) -> None:
    """List a catalog's versions: time, rows, errors, inputs added/removed/changed, new
    parts, duration; then the models (version, sha256) and the host and command, once per
    distinct set with the versions that used it. --json has every field in full.

    STORE: what `astrocat infer --out` wrote (its versions are in OUT.parts/), that
    store, or a job's store. Each version opens as STORE@N in every command."""
    import json

    from astrocat import api

    versions = api.history(store)
    if as_json:
        click.echo(json.dumps(versions, indent=1))
        return
    from astrocat.terminal import Col, console, print_table

    pruned = any(not v.get("kept", True) for v in versions)
    title = (f"{store}: {len(versions)} versions (* latest"
             + ("; pruned: its files are deleted, its record kept" if pruned else "") + ")")
    cols = [Col("version", no_wrap=True), Col("published (UTC)", no_wrap=True),
            Col("rows", "right"), Col("errors", "right"), Col("inputs +/-/~", no_wrap=True),
            Col("parts new", "right"), Col("seconds", "right")]
    rows = []
    for v in versions:
        i = v.get("inputs", {})
        rows.append([f"{v['version']}{'*' if v.get('latest') else ''}"
                     f"{'' if v.get('kept', True) else ' pruned'}",
                     _utc_minutes(v.get("published_utc", "")), str(v.get("rows", "")),
                     str(v.get("errors", "")),
                     f"+{i.get('added', 0)} -{i.get('removed', 0)} ~{i.get('changed', 0)}",
                     f"{v.get('computed', '')}/{len(v.get('parts', [])) or v.get('n_parts', '')}",
                     f"{v.get('seconds', 0):.1f}"])
    c = console()
    print_table(c, title, cols, rows)
    model_rows = _history_models(versions)
    if model_rows:
        print_table(c, "Models (sha256: its first 12 hex digits)",
                    [Col("versions"), Col("model", no_wrap=True), Col("version"),
                     Col("sha256")], model_rows)
    from rich.text import Text

    for line in _history_commands(versions):
        c.print(Text(line))


def _versions_with(versions: list[dict], key) -> list[tuple[object, list[int]]]:
    """Distinct ``key(version)`` values, first seen first, with the versions that had it."""
    seen: dict = {}
    for v in versions:
        seen.setdefault(key(v), []).append(v["version"])
    return list(seen.items())


def _history_models(versions: list[dict]) -> list[list[str]]:
    """Rows of ``history``'s models table: each distinct set of models once, with the
    versions (ranges) that used it on its first row."""
    def models(v: dict) -> tuple:
        return tuple((n, str(m.get("version", "")), str(m.get("sha256", ""))[:12])
                     for n, m in v.get("models", {}).items())

    rows = []
    for found, numbers in _versions_with(versions, models):
        for k, model in enumerate(found):
            rows.append([_ranges(numbers) if k == 0 else "", *model])
    return rows


def _history_commands(versions: list[dict]) -> list[str]:
    """One line per distinct host and command, with the versions that ran it."""
    def command(v: dict) -> str:
        host = f" (on {v['host']})" if v.get("host") else ""
        return f"{v.get('command') or 'not recorded'}{host}"

    return [f"command, {'versions' if len(numbers) > 1 else 'version'} {_ranges(numbers)}: "
            f"{text}" for text, numbers in _versions_with(versions, command)]


def _utc_minutes(stamp: str) -> str:
    """An ISO 8601 time as "YYYY-MM-DD HH:MM" in UTC (the text as it is if not one)."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%d %H:%M")


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5"."""
    out: list[str] = []
    prev = None
    for n in numbers:
        if prev is not None and n == prev + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
        prev = n
    return ", ".join(out)


@main.command()
@click.argument("catalog", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "format_", type=click.Choice(["fits", "votable", "ecsv"]),
              default=None, help="Default: from OUT's suffix (.fits, .vot, .ecsv).")
@click.option("--columns", default=None, metavar="A,B,...",
              help="Only these columns, in this order (default: all).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@_friendly
def export(catalog, out, format_, columns, overwrite) -> None:
    """Write CATALOG (a file, dataset, HATS catalog, store or STORE@N) as a FITS binary
    table, VOTable or ECSV for TOPCAT, STILTS and the VO: units, UCDs, descriptions and
    the provenance kept, rows streamed in bounded memory.

    FITS suits any size (TOPCAT maps it); VOTable past ~10 million rows is slow to read
    (base64, parsed whole by most tools); ECSV is text, for exchange.
    """
    from astrocat import api

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    result = api.export(catalog, out, format=format_, columns=names, overwrite=overwrite)
    click.echo(f"wrote {result}", err=True)


@main.command()
@click.argument("job", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cron", "scheduler", flag_value="cron", help="A crontab line.")
@click.option("--systemd", "scheduler", flag_value="systemd",
              help="A systemd service and timer pair.")
@click.option("--slurm", "scheduler", flag_value="slurm",
              help="A Slurm batch script (--dependency=singleton) and scrontab entry.")
@click.option("--write", "write_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Also write the entries as files into DIR.")
@_friendly
def schedule(job, scheduler, write_dir) -> None:
    """Print scheduler entries that run a job file: astrocat schedules nothing itself.

    \b
    The entries run `astrocat run JOB.toml`, whose exit codes they can act on:
      0 ok; 1 finished, some inputs are error rows (published); 2 could not run;
      3 another run holds the store (nothing done).
    """
    from astrocat.errors import AstrocatError
    from astrocat.jobs.jobfile import load_job
    from astrocat.jobs.schedule import SCHEDULERS

    if scheduler is None:
        raise AstrocatError("choose one of --cron, --systemd, --slurm")
    spec = load_job(job)
    for entry in SCHEDULERS[scheduler](spec):
        click.echo(f"# ---- {entry.name}: {entry.install}")
        click.echo(entry.text)
        if write_dir is not None:
            write_dir.mkdir(parents=True, exist_ok=True)
            (write_dir / entry.name).write_text(entry.text)


def _camera(ctx, param, value: str | None):
    """``--camera``: a ``simulate.galaxies.Camera`` (imported only when given)."""
    if value is None:
        return None
    from astrocat.simulate.galaxies import Camera

    try:
        return Camera.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.argument("kind", type=click.Choice(["galaxies", "spectra", "lenses", "fields", "sample"]))
@click.option("--n", "n", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=None,
              help="Random seed [default: 0; 2026 for the sample, never used in training].")
@click.option("--merger-fraction", type=click.FloatRange(0, 1), default=None,
              help="galaxies: share of mergers [default 0.03].")
@click.option("--camera", default=None, metavar="KEY=VALUE,...", callback=_camera,
              help="galaxies: another survey's camera, factors on the default one's: PSF "
                   "width, sky noise, pixel scale (objects look that many times smaller) and "
                   "g/r/i gains, e.g. psf=1.6,noise=2,pixel_scale=1.3,colour=1.2/1/0.85. "
                   "The objects and labels stay the same.")
@click.option("--workers", type=click.IntRange(min=1), default=None)
@click.option("--quiet", "-q", is_flag=True)
@_friendly
def simulate(kind, n, out, seed, merger_fraction, camera, workers, quiet) -> None:
    """Write a synthetic survey with known truth, in the real published formats."""
    import json
    import shlex

    from astrocat.simulate import simulate as run_simulate

    if camera is not None and kind != "galaxies":
        raise click.UsageError(f"--camera is for galaxies only, not {kind}")
    options = {} if merger_fraction is None else {"merger_fraction": merger_fraction}
    if camera is not None:
        options["camera"] = camera
    truth = run_simulate(kind, n, out, seed, progress=not quiet, workers=workers, **options)
    # The sample's record goes beside its truth, not into the survey `infer` reads.
    record_dir = truth if kind == "sample" else out
    record_dir.mkdir(parents=True, exist_ok=True)
    # The truth tables beside the survey: `infer` skips them (and this record) as astrocat's
    own = [truth.name] if truth.parent.resolve() == out.resolve() and truth.is_file() \
        and kind != "spectra" else []
    (record_dir / "simulation.json").write_text(json.dumps({
        "astrocat_version": __version__, "kind": kind, "n": n,
        **{k: (v.record() if k == "camera" else v) for k, v in options.items()},
        "truth_files": own, "command": shlex.join(["astrocat", *sys.argv[1:]])}, indent=1))
    if not quiet:
        click.echo(f"wrote {n} {kind} to {out} (truth: {truth})", err=True)


@main.command()
@click.argument("recipe", type=click.Choice(["morphology", "redshift", "lens", "cosmology",
                                             "finetune"]))
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path),
              help="Training data in the published layout (see `astrocat train --help`).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "from_model", default=None, metavar="MODEL",
              help="finetune: the model to start from (a bundled name, e.g. gz2-cnn, or a "
                   "model directory with card.toml and model.keras).")
@click.option("--label-columns", default=None, metavar="A,B,...",
              help="finetune with a CSV: the label columns [default: every numeric column "
                   "but the id].")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs (finetune: of its second stage, everything trained "
                   "[default 30]).")
@click.option("--head-epochs", type=click.IntRange(min=1), default=None,
              help="finetune: most epochs of its first stage, the new head alone "
                   "[default 10].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=10), default=None,
              help="Use at most this many examples.")
@click.option("--architecture", default=None, help="e.g. gz_vgg6 for the morphology recipe.")
@click.option("--name", default=None,
              help="Your model's name (the catalog's `model` column) [default: the --out "
                   "folder's name].")
@click.option("--model-version", default="1.0.0", show_default=True,
              help="Your model's version, for its card and the catalogs made with it.")
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--quiet", "-q", is_flag=True,
              help="No progress lines or bar (warnings still show).")
@_friendly
def train(recipe, data, out, from_model, label_columns, epochs, head_epochs, batch_size,
          seed, limit, architecture, name, model_version, patience, quiet) -> None:
    """Train a study's network, or fine-tune a trained one on your own labelled images;
    write weights (.keras, .onnx) and a model card.

    \b
    Data layouts (the real published ones):
      morphology  DIR with training_solutions_rev1.csv and <GalaxyID>.jpg
                  (or images_training_rev1/), the Kaggle Galaxy Challenge layout
      redshift    a spectra table (Parquet/CSV/ECSV/FITS): 186 fluxes + column z
      lens        DIR with imageEUC_VIS-<ID>.fits and a CSV with ID,is_lens,...
      cosmology   DIR with field_<ID>.npy and fields_truth.csv (ID,omega_m,sigma_8)
      finetune    --from MODEL, and DIR with one folder of images per class
                  (DIR/spirals/*.jpg, DIR/others/*.jpg: outputs p_spirals, p_others),
                  or a CSV with an id or file column (GalaxyID, id_str, iauname,
                  file_loc, filename, ...) and one column of class names or columns
                  of vote fractions in [0, 1] (--label-columns)
    """
    import shlex

    from astrocat.api import train as api_train

    def log(message: str) -> None:
        warning = message.startswith("warning:")
        if warning or not quiet:
            click.secho(message, fg="yellow" if warning else None, err=True)

    api_train(recipe, data, out, from_model=from_model, label_columns=label_columns,
              epochs=epochs, head_epochs=head_epochs, batch_size=batch_size, seed=seed,
              limit=limit, architecture=architecture, name=name, model_version=model_version,
              patience=patience, progress=not quiet,
              command=shlex.join(["astrocat", *sys.argv[1:]]), log=log)


@main.group(invoke_without_command=True)
@click.pass_context
@_friendly
def models(ctx) -> None:
    """List the bundled models (`astrocat models show NAME` for one card)."""
    if ctx.invoked_subcommand is None:
        from astrocat.models.zoo import bundled
        from astrocat.terminal import Col, console, print_table

        rows = []
        for card in bundled().values():
            metrics = ", ".join(f"{k} {v:.4g}" for k, v in card.metrics.items()
                                if isinstance(v, float) and not k.startswith("baseline"))
            kinds = [k.value for k in card.default_for]
            # "yes": the default for its own input kind (the usual case; saves a column's
            # width); other kinds are named
            default = ("yes" if kinds == [card.input.kind.value] else ", ".join(kinds))
            rows.append([card.name, card.task,
                         f"{card.input.kind.value} {'x'.join(map(str, card.input.shape))}",
                         default, metrics])
        print_table(console(), "Bundled models (trained on astrocat's SIMULATED surveys)",
                    [Col("name", no_wrap=True), Col("task"), Col("input"),
                     Col("default"), Col("held-out metrics")], rows)


@models.command("show")
@click.argument("name")
@_friendly
def models_show(name) -> None:
    """Print one model's card (a bundled name or a card path)."""
    from astrocat.models.card import CARD_FILENAME
    from astrocat.models.zoo import resolve

    card = resolve(name)
    click.echo(f"# {card.directory / CARD_FILENAME}")
    click.echo((card.directory / CARD_FILENAME).read_text())
    for warning in card.warnings:  # what training found wrong with it
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@models.command("init")
@click.argument("onnx", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Card to write [default: card.toml beside the model].")
@click.option("--force", is_flag=True, help="Overwrite an existing card.")
@_friendly
def models_init(onnx, out, force) -> None:
    """Write a starter card for your own ONNX model (shape, layout, outputs, sha256 read
    from the graph); edit it, then run `astrocat models check` on it."""
    from astrocat.models.starter import init_card

    path = init_card(onnx, out, force)
    click.echo(f"wrote {path}: name the outputs, set the preprocessing your model was "
               f"trained with, then `astrocat models check {path}`", err=True)


@models.command("reference")
@click.argument("model")
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path),
              help="A sample of the model's training data, in the layout `astrocat train` "
                   "reads for its task (truth included: it calibrates the TTA intervals).")
@click.option("--limit", type=click.IntRange(min=100), default=3000, show_default=True,
              help="Use at most this many examples (two thirds fit, one third calibrate).")
@click.option("--seed", type=int, default=0, show_default=True)
@_friendly
def models_reference(model, data, limit, seed) -> None:
    """Compute a model's reference statistics (its out-of-domain flag and TTA intervals)
    from its training data; writes reference.npz beside the card and its [reference]."""
    import shlex

    from astrocat.models.reference import compute

    path = compute(model, data, limit=limit, seed=seed,
                   command=shlex.join(["astrocat", *sys.argv[1:]]),
                   log=lambda m: click.echo(m, err=True))
    click.echo(f"wrote the [reference] of {path}", err=True)


@models.command("recheck-int8")
@click.argument("variant")
@_friendly
def models_recheck_int8(variant) -> None:
    """Run an INT8 variant's science gates and its speed against FP32 again on this CPU
    (same held-out simulated survey as when it was made) and record them in its card:
    `--precision int8` then keeps FP32 on CPUs like this one where a gate failed or INT8
    ran slower."""
    from astrocat.models.quantize import recheck_steps, run_steps

    entry = run_steps(recheck_steps(variant), lambda line: click.echo(line, err=True))
    if not entry["passed"]:
        sys.exit(EXIT_SOME_ERRORS)


@models.command("check", epilog=EXIT_CODES_HELP)
@click.argument("model")
@click.option("--input", "-i", "input_", default=None, metavar="DIR|FILE|GLOB|@LIST",
              help="Run the batch on your own inputs [default: a synthetic batch].")
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="auto", show_default=True,
              help=ENGINE_HELP)
@_friendly
def models_check(model, input_, engine) -> None:
    """Validate a card (strict fields, sha256, against its ONNX graph) and run one batch,
    printing each output's range."""
    from rich.console import Console
    from rich.table import Table

    from astrocat.models.check import check_model

    card, used, ranges = check_model(model, input_, engine)
    t = Table(title=f"{card.name}: card and graph agree; one batch on {used} "
                    f"({'your inputs' if input_ else 'synthetic ' + card.input.kind.value})")
    for h in ("output", "n", "finite", "min", "max", "mean"):
        t.add_column(h, justify="left" if h == "output" else "right")
    for r in ranges:
        t.add_row(r.name, str(r.n), str(r.n_finite), f"{r.min:.4g}", f"{r.max:.4g}",
                  f"{r.mean:.4g}")
    Console().print(t)
    from astrocat.models.check import card_warnings

    problems = card_warnings(card)
    if any(r.n_finite < r.n for r in ranges):
        problems.append("some outputs are NaN or infinite")
    for problem in problems:
        click.secho(f"warning: {problem}", fg="yellow", err=True)
    if problems:
        sys.exit(EXIT_SOME_ERRORS)


@main.command("compile")
@click.argument("model")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write model.onnx [default: beside the card].")
@click.option("--tensorrt/--no-tensorrt", default=None,
              help="Also build a TensorRT engine [default: when a GPU is present].")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32",
              show_default=True,
              help="int8: a calibrated ONNX Runtime variant <model>-int8, refused unless "
                   "it passes the task's science gates.")
@click.option("--max-batch", type=click.IntRange(min=1), default=256, show_default=True)
@_friendly
def compile_(model, out, tensorrt, precision, max_batch) -> None:
    """Keras -> ONNX (checked against Keras) and, on a GPU, ONNX -> TensorRT engine."""
    from astrocat.models.compile import compile_model

    for line in compile_model(model, out, tensorrt, precision, max_batch):
        click.echo(line, err=True)


if __name__ == "__main__":
    main()
