"""``astrocat diff`` across input roots (issue 31): the same galaxies run as
``--input sample`` (source ``galaxies/x.jpg``) and as ``--input sample/galaxies`` (source
``x.jpg``) match on their absolute path, and copies of them elsewhere on their object ID;
the report says which key matched. Real runs of the bundled sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from astrocat.cli import main
from astrocat.science.compare import compare


def _infer(inputs: Path, out: Path) -> Path:
    r = CliRunner().invoke(main, ["infer", "--quiet", "--input", str(inputs), "--out",
                                  str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def galaxies_only(sample_dir, have_models, tmp_path_factory) -> Path:
    """The sample's 150 galaxies alone: ``--input SAMPLE/galaxies``."""
    return _infer(sample_dir / "galaxies", tmp_path_factory.mktemp("gal") / "cat.parquet")


def test_the_same_galaxies_from_two_input_roots_match_on_their_absolute_path(
        sample_catalog, galaxies_only):
    r = compare(sample_catalog, galaxies_only)
    assert r["matched_on"] == "absolute path"
    assert r["matches_by_key"]["source"] == 0 and r["matches_by_key"]["absolute path"] == 150
    assert r["rows_b"] == r["rows_in_both"] == 150  # every galaxy is in both ...
    assert r["added"] == 0 and r["removed"] == r["rows_a"] - 150  # ... none added/removed
    assert r["input_roots"]["a"] != r["input_roots"]["b"]
    # the galaxies were compared, value by value: the same inputs, the same numbers
    assert r["columns"]["gz_smooth"]["compared"] == 150
    assert r["columns"]["gz_smooth"]["moved"] == 0
    assert r["morphology"]["became_mergers"] == r["morphology"]["stopped_being_mergers"] == 0
    # and the other way round
    back = compare(galaxies_only, sample_catalog)
    assert back["matched_on"] == "absolute path" and back["rows_in_both"] == 150
    assert back["removed"] == 0 and back["added"] == back["rows_b"] - 150


def test_the_terminal_and_the_page_say_which_key_matched(sample_catalog, galaxies_only):
    r = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["diff", str(sample_catalog),
                                                        str(galaxies_only)])
    assert r.exit_code == 0, r.output
    assert "150 in both (matched on absolute path, hdu, row): 0 added" in r.output
    assert "Rows matched on absolute path, which matches the most rows (150; on source 0" \
        in r.output
    from astrocat.science.compare import sections
    from astrocat.science.report import body

    html = body(sections(compare(sample_catalog, galaxies_only)), [])
    assert "matched on absolute path, hdu, row" in html
    assert "Rows matched on absolute path" in html


def test_copies_elsewhere_match_on_the_object_id(sample_catalog, galaxies_only, sample_dir,
                                                 tmp_path):
    other = tmp_path / "elsewhere"
    shutil.copytree(sample_dir / "galaxies", other / "galaxies")
    moved = _infer(other, tmp_path / "cat.parquet")  # source galaxies/x.jpg, another root
    r = compare(galaxies_only, moved)
    assert r["matches_by_key"] == {"source": 0, "absolute path": 0, "object_id": 150}
    assert r["matched_on"] == "object_id"
    assert r["rows_in_both"] == 150 and r["added"] == r["removed"] == 0
    # against the whole sample, whose spectra share object IDs across two files: those
    # rows are never matched on object_id (removed), the galaxies are
    flat = _infer(other / "galaxies", tmp_path / "flat.parquet")  # source x.jpg
    r = compare(sample_catalog, flat)
    assert r["matched_on"] == "object_id" and r["rows_in_both"] == 150
    assert r["added"] == 0 and r["removed"] == r["rows_a"] - 150
    assert any("share theirs with another row" in n for n in r["match_notes"])
    assert r["columns"]["gz_smooth"]["compared"] == 150


def test_one_catalog_against_itself_matches_on_source_alone(sample_catalog):
    r = compare(sample_catalog, sample_catalog)
    assert r["matched_on"] == "source" and r["matches_by_key"] == {"source": r["rows_a"]}
    assert r["added"] == r["removed"] == 0 and r["match_notes"] == []
