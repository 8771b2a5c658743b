"""The benchmark harness runs end to end at tiny size, so it cannot rot.

No timing is asserted here (timings stay out of the test suite): only that every section
of ``RESULTS.md`` is produced from a real run of every stage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = (
    "1. Images (JPEG) vs the component limit",
    "1. Images: whole `astrocat infer` process",
    "2. Spectra (one Parquet table) vs the component limit",
    "2. Spectra: whole `astrocat infer` process",
    "3. FITS cut-outs vs the component limit",
    "3. FITS: whole `astrocat infer` process",
    "3. FITS readers",
    "4. Peak RSS",
    "5. Scaling: `--workers 2`",
    "5. Existing scheduler",
    "6. Start-up: `astrocat --help`",
    "6. Fixed cost: `astrocat infer` on 10 JPEGs",
)


@pytest.mark.slow
def test_harness_runs_at_tiny_size(have_models, tmp_path):
    out = tmp_path / "RESULTS.md"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--size", "tiny", "--out", str(out),
         "--data", str(tmp_path / "data")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    text = out.read_text()
    table = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    for section in SECTIONS:
        assert f"| {section}" in table, f"missing row {section!r}"
    for heading in ("## Misses, with the measured reason", "## Where the time goes",
                    "### Images", "### Spectra", "### FITS", "### Memory",
                    "## GPU rows: planned, not measured", "## How each number is measured"):
        assert heading in text, heading
    assert "**Machine:**" in text and "**Commit:**" in text
    assert "python -m benchmarks.run --size tiny" in text
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["results"]) == {"startup", "images", "spectra", "fits", "memory",
                                    "scaling", "profile"}
    for stage in ("images", "fits"):  # the limit's model at its fastest batch; interleaved
        comp = data["results"][stage]["components"]
        assert str(comp["batch"]) in comp["model_s_by_batch"], comp
        assert comp["interleaved_rate"] > 0 and len(comp["interleaved_processes"]) >= 1
    for stage in ("images", "fits"):  # INT8 in the FP32 runs' minutes, where it runs here
        res = data["results"][stage]  # the bound measured in each FP32 run's minute
        assert all(p["interleaved_rate"] > 0 and p["vs_interleaved"] > 0
                   for p in res["pairs"]), res["pairs"]
        for p in res["pairs"]:  # every thread's switches: a run's engine and decoder
            run = p["astrocat_run"]  # threads wait for each other at least once a batch
            assert run["context_switches"] >= run["n_items"] / 64, run["context_switches"]
            assert p["interleaved_switches_per_item"] > 0, p
        if "int8" in res:
            assert all(p["int8_vs_fp32"] > 0 for p in res["pairs"]), res["pairs"]
            assert f"| {'1. Images' if stage == 'images' else '3. FITS'}: INT8 (" in table
    for stage in ("images", "fits"):  # CPU per step, in a run and in the bound
        steps = data["results"][stage]["components"]["cpu_per_step"]
        ours, bound = steps["run"]["ms_per_item"], steps["bound"]["ms_per_item"]
        assert steps["run"]["items"] > 0 and steps["bound"]["items"] > 0, steps
        for step in ("describe", "read/decode", "model"):  # every wrapper is on the path
            assert ours[step] > 0 and bound[step] > 0, (stage, step, steps)
        assert ours["out-of-domain statistics"] > 0 and ours["part (rows, Arrow, Parquet)"] > 0
        assert bound["out-of-domain statistics"] == 0, steps  # work the bound leaves out
    for stage, steps in data["results"]["profile"].items():  # every wrapped step still runs
        for step in ("read/decode", "model", "Parquet write"):
            assert steps["per_item_s"][step] > 0, (stage, step, steps["per_item_s"])
