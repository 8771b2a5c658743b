"""``astrocat summarize`` frozen: the numbers and the terminal report of astrocat 0.1.0.

``tests/data/sample-catalog-0.1.0.parquet`` is the bundled sample survey as astrocat 0.1.0
wrote it (``astrocat infer --input examples/sample``); ``sample-summary-0.1.0.json`` and
``.txt`` are what 0.1.0's ``summarize`` printed for it with the sample's three truth files.
Any later version must summarize that old catalog to the same numbers and the same tables,
and a freshly inferred sample to the same numbers (within float noise of the engines).

Later versions add to the report, never change it: every key and number of 0.1.0 must
still be there and equal, and the only new keys are those listed in ``ADDED`` (a fresh
catalog's trust columns add ``ADDED_FRESH``); every line 0.1.0 printed must still be
printed, in order, with new lines only between them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from astrocat.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("tests/data")
OLD_CATALOG = DATA / "sample-catalog-0.1.0.parquet"
TRUTH = Path("examples/sample_truth")
TRUTH_ARGS = ["--truth", str(TRUTH / "training_solutions_rev1.csv"),
              "--truth", str(TRUTH / "lens_labels.csv"),
              "--truth", str(TRUTH / "fields_truth.csv")]
#: Keys added to the report since 0.1.0 (list indices written []): the out-of-domain
#: section and its option, the lens ranking, completeness/purity and calibration, the
#: full text of grouped error reasons.
ADDED = frozenset({"$.error_examples", "$.ood", "$.options.include_ood", "$.lens.ranked_by",
                   "$.lens.truth.completeness_purity", "$.lens.truth.calibration",
                   "$.morphology.truth.calibration"})
#: ... and what a catalog with ood_flag and p_lens_logit adds to that.
ADDED_FRESH = ADDED | {"$.morphology.merger.ood", "$.redshift.ood", "$.lens.ood",
                       "$.lens.candidates[].p_lens_logit"}


def assert_same(got, want, path="$", rel=1e-9, abs_=1e-12, skip=(), added=ADDED):
    """Recursive equality: same keys (plus those ``added`` since), same strings, numbers
    equal within tolerance."""
    if path in skip:
        return
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        missing = sorted(set(want) - set(got))
        assert not missing, f"{path}: keys missing {missing}"
        new = sorted(k for k in set(got) - set(want)
                     if re.sub(r"\[\d+\]", "[]", f"{path}.{k}") not in added)
        assert not new, f"{path}: keys not in 0.1.0 nor in ADDED: {new}"
        for k in want:
            assert_same(got[k], want[k], f"{path}.{k}", rel, abs_, skip, added)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: length"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{path}[{i}]", rel, abs_, skip, added)
    elif isinstance(want, bool) or want is None or isinstance(want, str):
        assert got == want, f"{path}: {got!r} != {want!r}"
    else:
        assert isinstance(got, int | float) and not isinstance(got, bool), path
        assert math.isclose(got, want, rel_tol=rel, abs_tol=abs_), f"{path}: {got} != {want}"


def lines_added(got: str, want: str) -> list[str]:
    """The lines of ``got`` beyond ``want``'s, asserting that every line of ``want`` is
    in ``got`` in the same order."""
    expect = want.splitlines()
    i, extra = 0, []
    for line in got.splitlines():
        if i < len(expect) and line == expect[i]:
            i += 1
        else:
            extra.append(line)
    assert i == len(expect), f"0.1.0's line {i + 1} is gone or moved: {expect[i]!r}"
    return extra


def _summarize(*args: str, width: int = 120) -> str:
    r = CliRunner(env={"COLUMNS": str(width)}).invoke(main, ["summarize", *args])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_old_catalog_json_is_number_for_number_the_same(at_root):
    got = json.loads(_summarize(str(OLD_CATALOG), *TRUTH_ARGS, "--json"))
    want = json.loads((DATA / "sample-summary-0.1.0.json").read_text())
    assert_same(got, want)


def test_old_catalog_terminal_report_is_the_same(at_root):
    got = _summarize(str(OLD_CATALOG), *TRUTH_ARGS)
    new = "\n".join(lines_added(got, (DATA / "sample-summary-0.1.0.txt").read_text()))
    assert "Out-of-domain flag: none in this catalog" in new
    assert "written before astrocat had one" in new
    assert "Completeness and purity" in new and new.count("expected calibration error") == 2


def test_fresh_sample_catalog_gives_the_frozen_numbers(at_root, sample_catalog):
    got = json.loads(_summarize(str(sample_catalog), *TRUTH_ARGS, "--json"))
    want = json.loads((DATA / "sample-summary-0.1.0.json").read_text())
    # float32 outputs of the engines may differ in the last bits across CPUs
    assert_same(got, want, rel=1e-4, abs_=1e-5, skip=("$.catalog", "$.error_reasons"),
                added=ADDED_FRESH)
    # error reasons are whole (never cut): a message may have gained words since 0.1.0
    # (the FITS cube's says how to pick a plane), never lost any; the counts are the same
    for reason, n in want["error_reasons"].items():
        now = [r for r in got["error_reasons"] if r.startswith(reason)]
        assert len(now) == 1 and got["error_reasons"][now[0]] == n, reason
    assert len(got["error_reasons"]) == len(want["error_reasons"])
