"""Records that tell the whole truth (issue 31): error reasons never cut, an interrupted
``astrocat run`` that leaves its run record, and inputs in flight at an interrupt that are
simply not processed (no error rows, no traceback) and resumed by the next run. Real
catalogs, real processes, real signals."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from rich.console import Console

from astrocat.catalog.writer import part_stats
from astrocat.cli import main
from astrocat.science.compare import compare
from astrocat.science.compare import sections as diff_sections
from astrocat.science.render import shorten, show
from astrocat.science.sections import render
from astrocat.science.summary import Reasons

ASTROCAT = [sys.executable, "-m", "astrocat.cli"]
CUBE = ("FITS image is 3-D (shape (3, 48, 48), HDU 0): astrocat needs a 2-D single-band "
        "image; it looks like a cube of bands: name the plane to read with --plane N (or "
        "plane = N, or a band name, in the model card)")


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def _words(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- reasons


def test_summarize_json_keeps_every_error_reason_whole(sample_catalog):
    code, out = _cli("summarize", str(sample_catalog), "--json")
    assert code == 0, out
    report = json.loads(out)
    reasons = report["error_reasons"]
    assert reasons[CUBE] == 1  # its fix, --plane N, included
    assert reasons["not a recognised format (expected JPEG, PNG, FITS, Parquet, CSV/ECSV or "
                   ".npy); first bytes look like text"] == 1
    assert reasons["JPEG data is truncated or corrupt (image file is truncated (10 bytes not "
                   "processed))"] == 1
    assert sum(reasons.values()) == report["errors"] == 5
    assert report["error_examples"] == {}  # every reason is one message, whole


def test_messages_differing_in_numbers_are_one_reason_with_a_whole_example():
    r = Reasons()
    for row in (2, 17, 2, 9001):
        r.add(f"flux has missing or non-numeric values (table row {row}); fix or drop the row")
    r.add("FITS image is 3-D (shape (3, 48, 48), HDU 0): pick a plane with --plane N")
    r.add("FITS image is 3-D (shape (4, 48, 48), HDU 0): pick a plane with --plane N", 2)
    reasons, examples = r.report()
    flux = "flux has missing or non-numeric values (table row …); fix or drop the row"
    cube = "FITS image is 3-D (shape (…, 48, 48), HDU 0): pick a plane with --plane N"
    assert reasons == {flux: 4, cube: 3} and r.total == 7
    assert examples == {
        flux: "flux has missing or non-numeric values (table row 2); fix or drop the row",
        cube: "FITS image is 3-D (shape (3, 48, 48), HDU 0): pick a plane with --plane N"}


def _terminal(report: dict, width: int = 80) -> str:
    buf = io.StringIO()
    render(report, Console(file=buf, width=width, force_terminal=False, color_system=None))
    return buf.getvalue()


def test_terminal_shows_whole_reasons_at_80_columns(sample_catalog):
    code, out = _cli("summarize", str(sample_catalog), "--json")
    text = _words(_terminal(json.loads(out)))
    assert _words(CUBE) in text  # wrapped over lines, every word there, none cut
    assert "first bytes look like text" in text


def test_terminal_shortens_a_very_long_reason_only_at_a_word_boundary():
    long = ("the worker processing this input failed (" + "a long library message " * 20
            + "endmarker); re-run the same command to retry only the failed inputs")
    report = {"catalog": "x.parquet", "rows": 3, "ok": 1, "errors": 2, "by_kind": {},
              "error_reasons": {long: 1, CUBE: 1}}
    out = _terminal(report)
    text = _words(out)
    assert _words(CUBE) in text
    cut = shorten(long)
    assert cut.endswith(" …") and len(cut) <= 240
    kept = cut.removesuffix(" …")
    assert long.startswith(kept + " ")  # the cut falls between two words
    assert _words(cut) in text and "endmarker" not in text
    # no line of the table ends in a piece of a word of the message
    words = set(long.split()) | set(CUBE.split()) | {"…"}
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    table = lines[lines.index(next(ln for ln in lines if ln.startswith("rows"))) + 2:]
    for ln in table:
        last = ln.split()[-1]
        assert last in words or last.isdigit(), ln


def test_shorten_never_cuts_a_word():
    assert shorten("short text", 240) == "short text"
    assert shorten("alpha beta gamma", 12) == "alpha beta …"
    assert shorten("x" * 300 + " tail", 240) == "x" * 300 + " …"  # one long word: kept
    assert shorten("x" * 300, 240) == "x" * 300


def test_diff_reasons_are_whole_and_grouped_on_numbers(sample_catalog, tmp_path):
    t = pq.read_table(sample_catalog)
    status, error = t.column("status").to_pylist(), t.column("error").to_pylist()
    gal = [i for i, s in enumerate(t.column("source").to_pylist())
           if s.startswith("galaxies/")][:3]
    for k, i in enumerate(gal):
        status[i] = "error"
        error[i] = (f"the worker processing this input failed (MemoryError: {1000 + k} bytes "
                    "could not be allocated); re-run the same command to retry only the "
                    "failed inputs")
    b = tmp_path / "b.parquet"
    t = t.set_column(t.schema.get_field_index("status"), "status", pa.array(status))
    t = t.set_column(t.schema.get_field_index("error"), "error", pa.array(error))
    pq.write_table(t, b)
    r = compare(sample_catalog, b)
    reason = ("the worker processing this input failed (MemoryError: … bytes could not be "
              "allocated); re-run the same command to retry only the failed inputs")
    assert r["status"]["ok_to_error"] == 3
    assert r["status"]["ok_to_error_reasons"] == {reason: 3}
    assert r["status"]["ok_to_error_examples"] == {reason: error[gal[0]]}
    assert r["matched_on"] == "source"
    buf = io.StringIO()
    show(diff_sections(r), Console(file=buf, width=80, color_system=None))
    assert _words(reason) in _words(buf.getvalue())


# --------------------------------------------------------------------------- interrupts


@pytest.fixture(scope="module")
def big_survey(tmp_path_factory) -> Path:
    """1,500 galaxy JPEGs (the sample's 150, ten times over): several partitions of 256,
    a run of several seconds, so that an interrupt finds partitions in flight."""
    src = Path(__file__).resolve().parents[1] / "examples" / "sample" / "galaxies"
    survey = tmp_path_factory.mktemp("big") / "survey"
    for k in range(10):
        shutil.copytree(src, survey / f"night{k}")
    return survey


def _job(tmp: Path, survey: Path) -> Path:
    job = tmp / "job.toml"
    job.write_text(f'[job]\nname = "nightly"\ninput = ["{survey}"]\nout = "{tmp / "store"}"\n'
                   'layout = "dataset"\npartition_size = 256\n')
    return job


def _interrupt(job: Path, store: Path, sig: int) -> tuple[int, str, int]:
    """Start ``astrocat run`` in its own process group, send ``sig`` to the group (as
    Ctrl-C, or Slurm's scancel, does) once it has written a part; (exit code, stderr,
    parts written before the signal)."""
    # SIGINT as at a terminal: a shell starting the test suite in the background (`cmd &`)
    # leaves SIGINT ignored, and an ignored signal stays ignored through exec
    proc = subprocess.Popen([*ASTROCAT, "run", "--quiet", str(job)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while (time.time() < deadline and proc.poll() is None
           and not list(store.glob("part-*.parquet"))):
        time.sleep(0.02)
    before = len(list(store.glob("part-*.parquet")))
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=180)
    return proc.returncode, err, before


def _records(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "runs").glob("*.json"))]


def _no_traceback(store: Path) -> None:
    log = store / "errors.log"
    text = log.read_text() if log.exists() else ""
    assert "Traceback" not in text and "cannot schedule new futures" not in text, text


def _parts_clean(store: Path) -> int:
    """Every part on disk is finished work: no error rows, no failed task."""
    parts = sorted(store.glob("part-*.parquet"))
    for p in parts:
        s = part_stats(p)
        assert (s["n_errors"], s["retry"], s["failure"]) == (0, 0, None), (p.name, s)
    return len(parts)


def test_ctrl_c_leaves_a_record_no_traceback_and_the_next_run_resumes(big_survey, tmp_path):
    store = tmp_path / "store"
    job = _job(tmp_path, big_survey)
    code, err, before = _interrupt(job, store, signal.SIGINT)
    assert code == 130, err
    assert before >= 1 and "Traceback" not in err
    _no_traceback(store)
    finished = _parts_clean(store)  # in-flight partitions wrote nothing, not error rows
    assert not (store / "latest").exists()  # nothing published
    [record] = _records(store)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert record["signal"] == "SIGINT" and "run again to resume" in record["message"]

    code, out = _cli("run", "--quiet", str(job))
    assert code == 0, out
    first, second = _records(store)
    assert first == record and second["status"] == "ok" and second["errors"] == 0
    assert finished < second["parts"] and second["reused"] == finished
    _no_traceback(store)
    import pyarrow.dataset as ds

    t = ds.dataset(store / "versions" / "000001", format="parquet").to_table()
    sources = t.column("source").to_pylist()
    n_inputs = len(list(big_survey.rglob("*.jpg")))
    assert len(sources) == len(set(sources)) == n_inputs  # every input exactly once
    assert set(t.column("status").to_pylist()) == {"ok"}


def test_sigterm_leaves_an_interrupted_record(big_survey, tmp_path):
    store = tmp_path / "store"
    code, err, _ = _interrupt(_job(tmp_path, big_survey), store, signal.SIGTERM)
    assert code == 130, err  # was: killed by the signal (-15), the lock left behind
    _no_traceback(store)
    _parts_clean(store)
    [record] = _records(store)
    assert record["status"] == "interrupted" and record["signal"] == "SIGTERM"
    assert record["exit_code"] == 130
    assert not (store / "lock").exists() or not (store / "lock").stat().st_size
