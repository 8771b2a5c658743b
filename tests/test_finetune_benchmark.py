"""``benchmarks.finetune`` runs end to end at tiny size, so it cannot rot (issue 27,
item 3). No number is asserted (they are the benchmark's, at full size): only that the
section and the JSON are made from real runs of every step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("tensorflow")


@pytest.mark.slow
def test_the_finetune_benchmark_runs_at_tiny_size(have_models, tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# astrocat benchmarks\n\n## Another section\n\nkept\n")
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.finetune", "--size", "tiny", "--out", str(out),
         "--data", str(tmp_path / "data")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    text = out.read_text()
    assert "## Another section\n\nkept" in text  # only its own section is written
    section = text.split("## Fine-tuning on a shifted survey", 1)[1]
    assert "Everything here is simulated" in section
    assert "python -m benchmarks.finetune --size tiny" in section
    for method in ("zero-shot `gz2-cnn`", "fine-tuned", "from scratch"):
        assert f"| {method} |" in section, method
    data = json.loads((tmp_path / "FINETUNE.json").read_text())
    res = data["results"]
    assert [(row["method"], row["test_set"]) for row in res["rows"]] == [
        ("zero-shot", "unshifted"), ("zero-shot", "shifted"), ("fine-tuned", "shifted"),
        ("from scratch", "shifted")]
    for row in res["rows"]:
        assert 0 <= row["auroc"] <= 1 and row["n"] == 24 and len(row["ci95"]) == 2
        assert row["drift"]["verdict"]  # every infer run recorded one
    trained = [row for row in res["rows"] if row["method"] != "zero-shot"]
    assert trained[0]["parent"].startswith("gz2-cnn ") and trained[1]["parent"] == ""
    assert trained[1]["initialisation"] == "random"
    assert all(row["wall_s"] > 0 and row["epochs_full"] >= 1 for row in trained)
    assert res["differences"][0]["finetuned_minus_scratch"]["difference"] is not None
    sim = json.loads((tmp_path / "data" / "tiny" / "test" / "simulation.json").read_text())
    assert sim["camera"]["pixel_scale"] == 1.4
