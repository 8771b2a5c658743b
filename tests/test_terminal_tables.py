"""Terminal tables that fit (issue 28): ``history``, ``summarize``, ``diff`` and ``models``
at 60, 80 and 200 columns print no line wider than the terminal and cut no word (no
"vers…", no number split over two lines); ``history`` shows one line per version at 80
columns. And errors the operating system raises say where and what to do."""

from __future__ import annotations

import errno
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

import astrocat
from astrocat import api
from astrocat.cli import main
from astrocat.models.zoo import bundled
from astrocat.science.render import Table, shorten
from astrocat.science.sections import sections
from astrocat.terminal import Col, print_table

WIDTHS = (60, 80, 200)


def _run(width: int, *args: str) -> str:
    r = CliRunner(env={"COLUMNS": str(width)}).invoke(main, list(args))
    assert r.exit_code in (0, 1), r.output
    return r.stdout


def _assert_fits(out: str, width: int, texts: list[str]) -> None:
    """No line wider than ``width``; no token cut with "…" (a whole-word shortening is
    a "…" of its own); every word of ``texts`` printed whole somewhere."""
    lines = out.splitlines()
    assert lines, "nothing printed"
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, too_wide
    tokens = out.split()
    cut = [t for t in tokens if "…" in t and t != "…"]
    assert not cut, cut
    have = set(tokens) | {t.removesuffix(":") for t in tokens}  # "header: value" lines
    missing = sorted({w for text in texts for w in text.split()} - have)
    assert not missing, missing


def _texts(secs) -> list[str]:
    """Every section title, table title, header and cell of a report, as the terminal
    should show it."""
    out = []
    for sec in secs:
        out.append(sec.title)
        for item in sec.items:
            if isinstance(item, Table):
                out += [item.title, *item.columns]
                out += [shorten(v) if i in item.text_columns else v
                        for row in item.rows for i, v in enumerate(row)]
    return out


@pytest.fixture(scope="module")
def store(have_models, tmp_path_factory) -> Path:
    """A small survey with the sample's five broken inputs, inferred twice with a galaxy
    removed in between: a catalog with two versions."""
    src = Path(__file__).resolve().parents[1] / "examples" / "sample"
    root = tmp_path_factory.mktemp("tables")
    survey = root / "survey"
    shutil.copytree(src / "broken", survey / "broken")
    shutil.copytree(src / "spectra", survey / "spectra")
    for kind, n in (("galaxies", 30), ("lenses", 8), ("fields", 4)):
        (survey / kind).mkdir()
        for p in sorted((src / kind).iterdir())[:n]:
            shutil.copy(p, survey / kind)
    out = root / "cat.parquet"
    args = ["infer", "-q", "--input", str(survey), "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 1  # the broken inputs
    sorted((survey / "galaxies").iterdir())[0].unlink()
    assert CliRunner().invoke(main, args).exit_code == 1
    return out


@pytest.mark.parametrize("width", WIDTHS)
def test_history_fits_one_line_per_version(store, width):
    out = _run(width, "history", str(store))
    versions = astrocat.history(store)
    headers = ["version", "published (UTC)", "rows", "errors", "inputs +/-/~", "parts new",
               "seconds", "versions", "model", "sha256"]
    models = [f"{n} {m['version']} {m['sha256'][:12]}" for v in versions
              for n, m in v["models"].items()]
    _assert_fits(out, width, headers + models)
    assert "+0 -1 ~0" in out and "command, versions 1-2: astrocat" in out
    if width >= 80:
        for v in versions:
            stamp = v["published_utc"][:16].replace("T", " ")
            line = [ln for ln in out.splitlines() if re.match(rf"\s*{v['version']}\*?\s", ln)
                    and stamp in ln]
            assert len(line) == 1, out
            i = v["inputs"]
            want = [str(v["rows"]), str(v["errors"]),
                    f"+{i['added']} -{i['removed']} ~{i['changed']}", f"{v['seconds']:.1f}"]
            assert all(w in line[0] for w in want), (line, want)
        # one table line per version: the rows of the table are those lines only
        table = [ln for ln in out.splitlines() if re.match(r"\s*\d+\*?\s+\d{4}-", ln)]
        assert len(table) == len(versions)


def test_history_marks_pruned_versions_on_their_one_line(have_models, tmp_path):
    src = Path(__file__).resolve().parents[1] / "examples" / "sample" / "fields"
    survey, out = tmp_path / "fields", tmp_path / "c.parquet"
    survey.mkdir()
    for p in sorted(src.glob("*.npy"))[:4]:
        shutil.copy(p, survey)
    for _ in range(3):
        sorted(survey.glob("*.npy"))[0].unlink()
        args = ["infer", "-q", "--input", str(survey), "--out", str(out), "--keep-versions", "2"]
        assert CliRunner().invoke(main, args).exit_code == 0
    said = _run(80, "history", str(out))
    _assert_fits(said, 80, ["version", "published (UTC)",
                            "(* latest; pruned: its files are deleted, its record kept)"])
    table = [ln.split()[:2] for ln in said.splitlines() if re.match(r"\s*\d+\*?\s", ln)]
    assert table == [["1", "pruned"], ["2", table[1][1]], ["3*", table[2][1]]], said


def test_history_json_is_the_full_text(store):
    said = json.loads(_run(80, "history", str(store), "--json"))
    assert said == astrocat.history(store)
    assert all(len(m["sha256"]) == 64 for v in said for m in v["models"].values())


@pytest.mark.parametrize("width", WIDTHS)
def test_summarize_fits_and_keeps_error_reasons_whole(store, width):
    report = api.summarize(store, figures=False).report
    assert len(report["error_reasons"]) == 5
    assert any(len(r) > 60 for r in report["error_reasons"])  # longer than a 60-col line
    out = _run(width, "summarize", str(store))
    _assert_fits(out, width, _texts(sections(report)) + list(report["error_reasons"]))


def test_summarize_json_keeps_the_full_reasons(store):
    said = json.loads(_run(60, "summarize", str(store), "--json"))
    assert said["error_reasons"] == api.summarize(store, figures=False).report["error_reasons"]


@pytest.mark.parametrize("width", WIDTHS)
def test_diff_fits(store, width):
    result = api.diff(store)
    out = _run(width, "diff", str(store))
    _assert_fits(out, width, _texts(result._sections()))
    assert f"{store}@2" in out.split()  # in the first section's title, whole


@pytest.mark.parametrize("width", WIDTHS)
def test_models_fits(width):
    out = _run(width, "models")
    cards = bundled().values()
    texts = ["name", "task", "input", "default", "held-out metrics"]
    for card in cards:
        texts += [card.name, card.task, card.input.kind.value]
        texts.append(", ".join(f"{k} {v:.4g}" for k, v in card.metrics.items()
                               if isinstance(v, float) and not k.startswith("baseline")))
    _assert_fits(out, width, texts)
    names = [ln.split()[0] for ln in out.splitlines() if ln.split()]
    assert all(card.name in names for card in cards)


def _printed(width: int, title, cols, rows) -> str:
    from rich.console import Console

    c = Console(width=width, file=io.StringIO(), color_system=None)
    with c.capture() as cap:
        print_table(c, title, cols, rows)
    return cap.get()


@pytest.mark.parametrize("width", (30, 45, 60))
def test_print_table_never_cuts(width):
    """Wrapped, split into tables repeating the key column, or (too narrow for any
    table: at 30) one "header: value" line per cell; never a word cut."""
    cols = [Col("key", no_wrap=True), Col("a long header", "right"), Col("reason"),
            Col("x", "right")]
    rows = [["k1", "-0.00012345", "a reason with several_longish_words in it", "7"],
            ["key-two", "12.5", "short", "123456"]]
    out = _printed(width, "A title with an_unbreakable_word_25chr", cols, rows)
    _assert_fits(out, width, [c.header for c in cols] + [v for row in rows for v in row]
                 + ["A title with an_unbreakable_word_25chr"])


def test_print_table_that_fits_is_rich_unchanged():
    cols = [Col("kind"), Col("n", "right")]
    out = _printed(80, "Counts", cols, [["rgb_image", "3"]])
    assert out.splitlines()[2:4] == [" kind       n ", " ──────────── "]


# -- errors the operating system raises ------------------------------------------------

def _fail_with(monkeypatch, name: str, exc: OSError) -> None:
    def raise_(*args, **kwargs):
        raise exc

    monkeypatch.setattr(api, name, raise_)


@pytest.mark.parametrize("filename", ["/some/path/part-000003.parquet", None])
def test_disk_full_says_where_and_that_the_run_resumes(monkeypatch, tmp_path, filename):
    args = (errno.ENOSPC, "No space left on device") + ((filename,) if filename else ())
    _fail_with(monkeypatch, "infer", OSError(*args))
    r = CliRunner().invoke(main, ["infer", "--input", str(tmp_path), "--out",
                                  str(tmp_path / "c.parquet")])
    assert r.exit_code == 2, r.output
    said = " ".join(r.output.split())
    assert "No space left on device" in said
    assert "parts written so far are kept" in said and "run the same command again" in said
    assert "resumes" in said and "Errno" not in said
    if filename:
        assert f"while writing {filename}" in said


def test_quota_exceeded_too(monkeypatch, tmp_path):
    _fail_with(monkeypatch, "infer", OSError(errno.EDQUOT, "Disk quota exceeded", "/q/x"))
    r = CliRunner().invoke(main, ["infer", "--input", str(tmp_path), "--out",
                                  str(tmp_path / "c.parquet")])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "Disk quota exceeded while writing /q/x" in said
    assert "parts written so far are kept" in said


def test_disk_full_in_a_command_that_does_not_resume(monkeypatch, tmp_path):
    _fail_with(monkeypatch, "history", OSError(errno.ENOSPC, "No space left on device"))
    r = CliRunner().invoke(main, ["history", str(tmp_path)])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "No space left on device" in said
    assert "Free some space" in said and "run the command again" in said
    assert "parts written so far" not in said


@pytest.mark.parametrize("code, words", [(errno.EACCES, "permission denied"),
                                         (errno.EROFS, "read-only file system")])
@pytest.mark.parametrize("filename", ["/data/out.parquet", None])
def test_cannot_write_there(monkeypatch, tmp_path, code, words, filename):
    args = (code, "os says no") + ((filename,) if filename else ())
    _fail_with(monkeypatch, "infer", OSError(*args))
    r = CliRunner().invoke(main, ["infer", "--input", str(tmp_path), "--out",
                                  str(tmp_path / "c.parquet")])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and words in said and "--out" in said, said
    assert ("cannot write" in said) and (filename in said if filename else True)


def test_other_os_errors_keep_their_text(monkeypatch, tmp_path):
    _fail_with(monkeypatch, "infer", FileNotFoundError(errno.ENOENT, "No such file or "
                                                       "directory", "/gone"))
    r = CliRunner().invoke(main, ["infer", "--input", str(tmp_path), "--out",
                                  str(tmp_path / "c.parquet")])
    assert r.exit_code == 2 and "No such file or directory" in r.output and "/gone" in r.output
