"""The trust evaluation (``python -m benchmarks.trust``): its committed figures are what
its renderer makes of ``TRUST.json``, and (slow) it runs end to end at tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_results_md_carries_the_committed_trust_figures():
    from benchmarks.trust import HEADING, markdown

    record = json.loads((ROOT / "benchmarks" / "TRUST.json").read_text())
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    section = text[text.index(HEADING):]
    nxt = section.find("\n## ", len(HEADING))
    # the section as rendered; splice leaves one blank line before the next section
    assert (section[: nxt + 1] if nxt >= 0 else section).rstrip("\n") == \
        markdown(record).rstrip("\n")
    res = record["results"]
    assert set(res["in_domain"]) == {"gz2-cnn", "lens-lastro", "cosmo-cnn", "redshift-cnn1d"}
    assert all(f["n"] >= 500 for f in res["in_domain"].values())  # the full size


@pytest.mark.slow
def test_trust_evaluation_runs_at_tiny_size(have_models, tmp_path):
    out = tmp_path / "RESULTS.md"
    r = subprocess.run([sys.executable, "-m", "benchmarks.trust", "--size", "tiny", "--data",
                        str(tmp_path / "data"), "--out", str(out), "--no-cards"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    text = out.read_text()
    for part in ("### Out-of-domain flag", "### Test-time augmentation", "### What the flag"):
        assert part in text
    record = json.loads((tmp_path / "TRUST.json").read_text())
    assert len(record["results"]["shifts"]) >= 20
