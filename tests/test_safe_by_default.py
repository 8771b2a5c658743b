"""Issue 31: astrocat never destroys what it did not write, honours every option, names a
catalog and its versions one way everywhere, and never reads its own files as inputs.

Each test is one finding a new user met, checked by exit code, message and that nothing
of the user's changed. The last test makes the newcomer's mistakes in a row on a copy of
the sample and checks every user file's checksum before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import astrocat
from astrocat.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, [*args])
    return r.exit_code, r.output


def _infer(*args: str) -> tuple[int, str]:
    return _cli("infer", *args)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def survey(sample_dir, tmp_path) -> Path:
    """A small survey of the user's: the sample's density maps and lens cut-outs."""
    root = tmp_path / "survey"
    shutil.copytree(sample_dir / "fields", root / "fields")
    shutil.copytree(sample_dir / "lenses", root / "lenses")
    return root


# ------------------------------------------------------------------ 1. data loss


def test_out_over_a_users_jpeg_is_refused(survey, sample_dir, tmp_path):
    precious = tmp_path / "precious.jpg"
    shutil.copy(next((sample_dir / "galaxies").glob("*.jpg")), precious)
    before = _sha(precious)
    code, out = _infer("-q", "--input", str(survey / "fields"), "--out", str(precious))
    assert code == 2, out
    assert "did not write" in out and "--overwrite" in out and str(precious) in out
    assert _sha(precious) == before
    assert not (tmp_path / "precious.jpg.parts").exists()  # and no stray store either


def test_out_over_a_users_parquet_is_refused_unless_overwrite(survey, tmp_path):
    mine = tmp_path / "mydata.parquet"
    pq.write_table(pa.table({"flux": [1.0, 2.0]}), mine)
    before = _sha(mine)
    code, out = _infer("-q", "--input", str(survey / "fields"), "--out", str(mine))
    assert code == 2 and "did not write" in out
    assert _sha(mine) == before
    code, out = _infer("-q", "--input", str(survey / "fields"), "--out", str(mine),
                       "--overwrite")
    assert code == 0, out
    assert pq.read_table(mine).num_rows == 20


def test_out_over_a_users_directory_is_refused(survey, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    code, out = _infer("-q", "--input", str(survey / "fields"), "--out", str(folder),
                       "--layout", "dataset")
    assert code == 2 and "directory" in out and "did not write" in out
    assert (folder / "notes.txt").read_text() == "mine"


def test_replacing_a_catalog_of_other_inputs_says_so_and_keeps_the_old_version(survey,
                                                                              tmp_path):
    out = tmp_path / "cat.parquet"
    assert _infer("-q", "--input", str(survey / "fields"), "--out", str(out))[0] == 0
    code, said = _infer("--input", str(survey / "lenses"), "--out", str(out))
    assert code == 0, said
    assert "replaced" in said and "other inputs" in said
    assert len(astrocat.open_catalog(f"{out}@1")) == 20  # the earlier version is kept
    assert len(astrocat.open_catalog(f"{out}@2")) == len(astrocat.open_catalog(out))


# ------------------------------------------------------------------ 2. options honoured


def test_input_is_repeatable(sample_dir, tmp_path):
    out = tmp_path / "both.parquet"
    code, said = _infer("-q", "--input", str(sample_dir / "galaxies"), "--input",
                        str(sample_dir / "lenses"), "--out", str(out))
    assert code == 0, said
    kinds = pq.read_table(out, columns=["kind"]).column("kind").to_pylist()
    assert kinds.count("rgb_image") == 150 and kinds.count("mono_image") == 50


def test_a_named_model_that_takes_nothing_warns_with_the_count(sample_dir, tmp_path):
    code, said = _infer("--input", str(sample_dir / "galaxies"), "--out",
                        str(tmp_path / "m.parquet"), "--model", "redshift-cnn1d")
    assert code == 0
    warning = [line for line in said.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, said
    assert "redshift-cnn1d" in warning[0] and "150" in warning[0] and "gz2-cnn" in warning[0]
    assert "rgb_image -> gz2-cnn (150)" in said  # which model each kind got


# ------------------------------------------------------------------ 3. names and versions


@pytest.fixture
def two_versions(survey, tmp_path) -> Path:
    out = tmp_path / "cat.parquet"
    assert _infer("-q", "--input", str(survey), "--out", str(out))[0] == 0
    for p in sorted((survey / "fields").glob("*.npy"))[:5]:
        p.unlink()
    code, said = _infer("--input", str(survey), "--out", str(out))
    assert code == 0 and "version 2" in said
    return out


def test_every_name_of_a_version_opens_in_every_command(two_versions, tmp_path):
    out = two_versions
    n1, n2 = 70, 65
    for spec, n in ((f"{out}@1", n1), (f"{out}@2", n2), (f"{out}@latest", n2), (str(out), n2),
                    (f"{out}.parts", n2), (f"{out}.parts@1", n1), (f"{out}.parts@latest", n2)):
        assert len(astrocat.open_catalog(spec)) == n, spec
        code, said = _cli("summarize", spec, "--json")
        assert code == 0, said
        assert json.loads(said)["rows"] == n
        code, said = _cli("export", spec, str(tmp_path / "x.ecsv"), "--overwrite")
        assert code == 0, said
    code, said = _cli("diff", f"{out}@1", f"{out}.parts@2", "--json")
    assert code == 0 and json.loads(said)["removed"] == 5
    code, said = _cli("diff", str(out), "--json")  # its latest against the one before
    assert code == 0 and json.loads(said)["removed"] == 5


def test_history_of_an_infer_output_and_of_what_is_not_a_store(two_versions, tmp_path,
                                                               survey):
    code, said = _cli("history", str(two_versions), "--json")
    assert code == 0, said
    assert [v["version"] for v in json.loads(said)] == [1, 2]
    assert astrocat.history(two_versions) == json.loads(said)
    plain = tmp_path / "plain"
    plain.mkdir()
    code, said = _cli("history", str(plain))
    assert code == 2 and "not an astrocat catalog with versions" in said
    with pytest.raises(astrocat.AstrocatError):
        astrocat.history(plain)
    ds = tmp_path / "ds"
    assert _infer("-q", "--input", str(survey), "--out", str(ds), "--layout", "dataset")[0] == 0
    code, said = _cli("history", str(ds), "--json")
    assert code == 0 and len(json.loads(said)) == 1


def test_a_version_that_is_gone_says_why(two_versions):
    code, said = _cli("export", f"{two_versions}.parts@9", "/tmp/never.fits")
    assert code == 2
    assert "no version 9" in said and "versions kept: 1, 2" in said
    assert "job" not in said  # no job ran here
    with pytest.raises(astrocat.AstrocatError, match="no version 9"):
        astrocat.open_catalog(f"{two_versions}@9")


def test_keep_versions_prunes_the_oldest(survey, tmp_path):
    out = tmp_path / "cat.parquet"
    maps = sorted((survey / "fields").glob("*.npy"))
    for i in range(3):
        maps[i].unlink()
        assert _infer("-q", "--input", str(survey / "fields"), "--out", str(out),
                      "--keep-versions", "2")[0] == 0
    assert [v["kept"] for v in astrocat.history(out)] == [False, True, True]
    assert len(astrocat.open_catalog(f"{out}@2")) == 18


def test_an_unchanged_rerun_publishes_nothing(survey, tmp_path):
    out = tmp_path / "cat.parquet"
    assert _infer("-q", "--input", str(survey), "--out", str(out))[0] == 0
    code, said = _infer("--input", str(survey), "--out", str(out))
    assert code == 0 and "no changes" in said and "nothing published" in said
    assert [v["version"] for v in astrocat.history(out)] == [1]
    os.unlink(out)  # the user removed the catalog: the next run puts it back
    code, said = _infer("--input", str(survey), "--out", str(out))
    assert code == 0 and out.is_file() and "version 2" in said


def test_a_store_of_astrocat_before_0_3_still_reads(survey, tmp_path):
    """Such stores kept the file layout's catalog only at OUT, not in each version."""
    out = tmp_path / "cat.parquet"
    assert _infer("-q", "--input", str(survey), "--out", str(out))[0] == 0
    version = out.with_name("cat.parquet.parts") / "versions" / "000001"
    manifest = json.loads((version / "_manifest.json").read_text())
    del manifest["file"]
    (version / "_manifest.json").write_text(json.dumps(manifest))
    data = out.read_bytes()
    (version / "catalog.parquet").unlink()
    out.unlink()
    out.write_bytes(data)
    assert len(astrocat.open_catalog(f"{out}.parts")) == 70
    assert len(astrocat.open_catalog(f"{out}@1")) == 70


# ------------------------------------------------------------------ 4. own files


def test_an_earlier_catalog_inside_the_input_is_skipped(survey, tmp_path):
    inner = survey / "catalog.parquet"
    assert _infer("-q", "--input", str(survey), "--out", str(inner))[0] == 0
    (survey / "runs").mkdir()
    shutil.copy(inner, survey / "runs" / "copied-catalog.parquet")  # away from its store
    out = tmp_path / "again.parquet"
    code, said = _infer("--input", str(survey), "--out", str(out))
    assert code == 0, said
    assert "skipped, no rows" in said and "an astrocat catalog" in said
    assert pq.read_table(out).num_rows == 70
    assert "error" not in set(pq.read_table(out, columns=["status"]).column(0).to_pylist())


def test_a_simulated_survey_infers_without_its_truth_tables(tmp_path):
    sim = tmp_path / "sim"
    assert _cli("simulate", "galaxies", "--n", "12", "--out", str(sim), "-q")[0] == 0
    assert (sim / "training_solutions_rev1.csv").is_file()
    code, said = _infer("--input", str(sim), "--out", str(tmp_path / "sim.parquet"))
    assert code == 0, said
    assert "2 a simulated survey's record or truth table" in said
    assert pq.read_table(tmp_path / "sim.parquet").num_rows == 12


# ------------------------------------------------------------------ 9. smaller findings


def test_a_refused_run_leaves_no_stray_lock(survey, tmp_path):
    out = tmp_path / "cat.parquet"
    code, said = _infer("-q", "--input", str(survey), "--out", str(out), "--model", "nope")
    assert code == 2
    assert not out.with_name("cat.parquet.parts").exists()
    code, said = _infer("-q", "--input", str(tmp_path / "missing"), "--out", str(out))
    assert code == 2 and not out.with_name("cat.parquet.parts").exists()


def test_an_unquoted_glob_says_to_quote_it(sample_dir, tmp_path):
    files = [str(p) for p in sorted((sample_dir / "galaxies").glob("*.jpg"))]
    code, said = _cli("infer", "--input", *files, "--out", str(tmp_path / "g.parquet"))
    assert code == 2
    assert f"{len(files) - 1} unexpected extra" in said and "Quote it" in said


def test_api_mistakes_are_astrocat_errors(survey, tmp_path):
    with pytest.raises(astrocat.AstrocatError, match="unknown layout 'hat'"):
        astrocat.infer(survey, tmp_path / "c", layout="hat", progress=False)
    with pytest.raises(astrocat.AstrocatError, match="did you mean 'model'"):
        astrocat.infer(survey, tmp_path / "c.parquet", modle="gz2-cnn", progress=False)
    with pytest.raises(TypeError):  # still what Python users expect of a bad keyword
        astrocat.infer(survey, tmp_path / "c.parquet", modle="gz2-cnn", progress=False)


def test_version_is_the_one_the_docs_speak_of():
    """--version, the package and the changelog's newest entry agree, and no page of the
    README, docs or changelog speaks of an astrocat newer than this one."""
    code, said = _cli("--version")
    assert code == 0 and said.strip().endswith(astrocat.__version__)
    changes = (ROOT / "CHANGES.rst").read_text()
    newest = re.search(r"^(\d+\.\d+(?:\.\d+)?) \(", changes, re.MULTILINE)
    assert newest is not None and newest.group(1) == astrocat.__version__
    current = tuple(map(int, astrocat.__version__.split(".")))
    pages = [ROOT / "README.md", ROOT / "CHANGES.rst", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for v in re.findall(r"astrocat (\d+\.\d+(?:\.\d+)?)\b", page.read_text()):
            assert tuple(map(int, v.split("."))) <= current[:len(v.split("."))], (page, v)


# ------------------------------------------------------------------ all in a row


def test_newcomer_mistakes_change_no_user_file(sample_dir, tmp_path):
    """The mistakes of issue 31 one after another on a copy of the sample: every file the
    user had is byte for byte the same afterwards."""
    work = tmp_path / "work"
    shutil.copytree(sample_dir, work / "sample")
    precious = work / "precious.jpg"
    shutil.copy(next((work / "sample" / "galaxies").glob("*.jpg")), precious)
    pq.write_table(pa.table({"x": [1, 2, 3]}), work / "mydata.parquet")
    (work / "results").mkdir()
    (work / "results" / "notes.txt").write_text("my notes")
    users = {p: _sha(p) for p in work.rglob("*") if p.is_file()}

    s = str(work / "sample")
    steps = [
        (("infer", "-q", "--input", f"{s}/fields", "--out", str(precious)), 2),
        (("infer", "-q", "--input", f"{s}/fields", "--out", str(work / "mydata.parquet")), 2),
        (("infer", "-q", "--input", f"{s}/fields", "--out", str(work / "results"),
          "--layout", "dataset"), 2),
        (("infer", "-q", "--input", f"{s}/galaxies", "--input", f"{s}/lenses", "--out",
          f"{s}/cat.parquet"), 0),  # the catalog lands inside the survey
        (("infer", "-q", "--input", s, "--out", str(work / "all.parquet")), 1),
        (("summarize", f"{work / 'all.parquet'}@1", "--json"), 0),
        (("history", str(work / "all.parquet")), 0),
        (("history", str(work / "results")), 2),
        (("infer", "-q", "--input", f"{s}/galaxies", "--out", str(work / "m.parquet"),
          "--model", "redshift-cnn1d"), 0),
        (("infer", "-q", "--input", s, "--out", str(work / "x.parquet"), "--model",
          "no-such-model"), 2),
        (("export", f"{work / 'all.parquet'}.parts@7", str(work / "x.fits")), 2),
        (("export", str(work / "all.parquet"), str(precious)), 2),
    ]
    for args, expected in steps:
        code, said = _cli(*args)
        assert code == expected, (args, said)
    rows = pq.read_table(work / "all.parquet", columns=["source"]).column(0).to_pylist()
    assert not any("cat.parquet" in r for r in rows)  # the inner catalog was no input
    after = {p: _sha(p) for p in users}
    assert after == users


def test_infer_repeats_a_models_training_warning(sample_dir, tmp_path):
    from astrocat.models.zoo import resolve

    card_dir = tmp_path / "weak"
    shutil.copytree(resolve("gz2-cnn").directory, card_dir)
    card = card_dir / "card.toml"
    text = card.read_text()
    card.write_text(text.replace('[training]\n', '[training]\nwarnings = ["held-out rmse '
                                 '0.211 is worse than the mean-prediction baseline 0.178"]\n',
                                 1))
    galaxies = tmp_path / "g"
    galaxies.mkdir()
    for p in sorted((sample_dir / "galaxies").glob("*.jpg"))[:4]:
        shutil.copy(p, galaxies / p.name)
    code, said = _infer("--input", str(galaxies), "--out", str(tmp_path / "w.parquet"),
                        "--model", str(card_dir))
    assert code == 0, said
    assert any(line.startswith("warning: model gz2-cnn: held-out rmse 0.211")
               for line in said.splitlines()), said
