"""Drift per run, per model, through the real ``astrocat infer``: recorded in the catalog's
provenance, said in the run's summary, shown by ``summarize``, ``diff`` and ``history``;
merged over parts, partitions and reused parts; catalogs written before it still read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

import astrocat
from astrocat.catalog.writer import PART_META_KEY
from astrocat.cli import main
from astrocat.kernels import drift
from astrocat.pipeline import drift_report

GALAXIES = "galaxies"


def _provenance(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"astrocat"])


def _noisy_copy(src: Path, dst: Path, sigma: float) -> Path:
    """The sample's galaxies with ``sigma`` (8-bit levels) more noise: the same sky seen by
    a much worse camera, nothing in the files saying so."""
    dst.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for p in sorted(src.glob("*.jpg")):
        a = np.asarray(Image.open(p), np.float32)
        a = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(dst / p.name, quality=90)
    return dst


@pytest.fixture(scope="module")
def runs(sample_dir, have_models, tmp_path_factory) -> dict:
    """A fresh run of the sample's 150 galaxies (small partitions), the same galaxies
    through a much noisier camera, and their store after a second, changed run."""
    tmp = tmp_path_factory.mktemp("drift")
    fresh = astrocat.infer(sample_dir / GALAXIES, tmp / "fresh.parquet", partition_size=16,
                           progress=False)
    whole = astrocat.infer(sample_dir / GALAXIES, tmp / "whole.parquet", progress=False)
    noisy_dir = _noisy_copy(sample_dir / GALAXIES, tmp / "noisy", sigma=30)
    noisy = astrocat.infer(noisy_dir, tmp / "noisy.parquet", progress=False)
    return {"tmp": tmp, "fresh": fresh, "whole": whole, "noisy": noisy,
            "noisy_dir": noisy_dir, "sample": sample_dir}


def test_a_fresh_run_reads_in_domain_and_records_its_test(runs):
    d = _provenance(runs["fresh"].out)["models"]["gz2-cnn"]["drift"]
    assert d["verdict"] == "in_domain", d
    assert d["n"] == 150
    assert 0 <= d["statistic"] < drift.MIN_STATISTIC and d["p_value"] > drift.ALPHA
    assert 0.8 < d["median_ratio"] < 1.25
    assert d["expected_beyond"] == 0.05 and "Kolmogorov" in d["test"]
    assert drift.Sketch.from_json(d["sketch"]).n == 150
    assert drift.Baseline.from_json(d["reference"]).n == 1000  # the held-out inputs
    assert runs["fresh"].drift["gz2-cnn"]["verdict"] == "in_domain"
    assert not any(line.startswith("drift:") for line in runs["fresh"].lines())


def test_partitions_merge_to_the_record_of_one(runs):
    """Ten partitions' sketches, merged on the driver, give what one partition gives."""
    a = _provenance(runs["fresh"].out)["models"]["gz2-cnn"]["drift"]
    b = _provenance(runs["whole"].out)["models"]["gz2-cnn"]["drift"]
    assert runs["fresh"].n_parts > 5 > runs["whole"].n_parts
    assert a["sketch"] == b["sketch"]
    assert {k: v for k, v in a.items()} == {k: v for k, v in b.items()}


def test_a_noisier_camera_reads_shifted_or_far_and_the_summary_says_so(runs):
    d = runs["noisy"].drift["gz2-cnn"]
    assert d["verdict"] in ("shifted", "far"), d
    assert d["median_ratio"] > 1.2 and d["p_value"] < drift.ALPHA
    assert "sketch" not in d  # the summary's record is the verdict, not the sketches
    lines = [line for line in runs["noisy"].lines() if line.startswith("drift:")]
    assert len(lines) == 1 and "gz2-cnn" in lines[0] and "n=150" in lines[0], lines
    r = CliRunner().invoke(main, ["infer", "--input", str(runs["noisy_dir"]), "--out",
                                  str(runs["tmp"] / "noisy-cli.parquet")])
    assert r.exit_code == 0, r.output
    assert "drift: gz2-cnn " in r.output and "Traceback" not in r.output


def test_summarize_shows_the_drift_and_draws_it(runs, tmp_path):
    s = astrocat.summarize(runs["noisy"].out)
    d = s["ood"]["models"]["gz2-cnn"]["drift"]
    recorded = runs["noisy"].drift["gz2-cnn"]
    for key in ("verdict", "n", "statistic", "median_ratio", "beyond_q95"):
        assert d[key] == recorded[key], key  # from the catalog's rows, as the run found
    assert "sketch" not in json.loads(s.to_json())["ood"]["models"]["gz2-cnn"]["drift"]
    text = CliRunner().invoke(main, ["summarize", str(runs["noisy"].out)]).output
    assert "Drift:" in text and d["verdict"] in text.replace(" ", "_").lower()
    fig = s.figure("ood_drift")
    assert fig.png and fig.png.startswith(b"\x89PNG")
    r = CliRunner().invoke(main, ["summarize", str(runs["noisy"].out), "--json"])
    assert r.exit_code == 0
    assert json.loads(r.output)["ood"]["models"]["gz2-cnn"]["drift"]["verdict"] == d["verdict"]


def test_diff_shows_drift_between_versions(runs):
    r = CliRunner().invoke(main, ["diff", str(runs["fresh"].out), str(runs["noisy"].out),
                                  "--json"])
    assert r.exit_code == 0, r.output
    pairs = json.loads(r.output)["ood"]["drift"]["gz2-cnn"]
    assert pairs["a"]["verdict"] == "in_domain"
    assert pairs["b"]["verdict"] in ("shifted", "far")
    text = CliRunner().invoke(main, ["diff", str(runs["fresh"].out),
                                     str(runs["noisy"].out)]).output
    assert "Drift from each model's reference" in text


def test_reused_parts_and_history_keep_the_drift(runs, tmp_path):
    """A second run over more inputs reuses the first run's parts; its drift covers every
    row, and ``history --json`` lists each version's verdict (no sketches)."""
    src = tmp_path / "grow"
    src.mkdir()
    files = sorted((runs["sample"] / GALAXIES).glob("*.jpg"))
    for p in files[:80]:
        shutil.copy(p, src / p.name)
    out = tmp_path / "grow.parquet"
    first = astrocat.infer(src, out, partition_size=16, progress=False)
    for p in files[80:]:
        shutil.copy(p, src / p.name)
    second = astrocat.infer(src, out, partition_size=16, progress=False)
    assert second.n_reused >= 4
    assert first.drift["gz2-cnn"]["n"] == 80 and second.drift["gz2-cnn"]["n"] == 150
    assert second.drift["gz2-cnn"]["statistic"] == runs["whole"].drift["gz2-cnn"]["statistic"]
    r = CliRunner().invoke(main, ["history", str(out), "--json"])
    assert r.exit_code == 0
    versions = json.loads(r.output)
    got = [v["models"]["gz2-cnn"]["drift"] for v in versions]
    assert [d["n"] for d in got] == [80, 150]
    assert all("sketch" not in d and "reference" not in d for d in got)


def test_parts_of_an_earlier_astrocat_get_their_sketch_from_their_column(runs, tmp_path):
    """A part written before parts carried sketches: its rows still count."""
    parts = sorted(Path(f"{runs['whole'].out}.parts").glob("part-*.parquet"))
    table = pq.read_table(parts[0])
    meta = json.loads(table.schema.metadata[PART_META_KEY])
    with_sketch = drift.Sketch.from_json(meta["drift"]["gz2-cnn"])
    del meta["drift"]
    old = tmp_path / parts[0].name
    pq.write_table(table.replace_schema_metadata(
        {**table.schema.metadata, PART_META_KEY: json.dumps(meta).encode()}), old)
    merged = drift_report.merged({"k": meta}, {"k": old}, "gz2-cnn")
    assert np.array_equal(merged.counts, with_sketch.counts) and merged.n > 0


def test_catalogs_written_before_drift_still_summarize():
    old = Path(__file__).parent / "data" / "sample-catalog-0.1.0.parquet"
    s = astrocat.summarize(old)
    assert s["ood"]["has_flag"] is False or all(
        m["drift"]["verdict"] is None for m in s["ood"]["models"].values())
    r = CliRunner().invoke(main, ["summarize", str(old)])
    assert r.exit_code == 0 and "Traceback" not in r.output


def test_a_model_without_held_out_distances_is_untested_and_says_why(runs, tmp_path):
    import dataclasses

    from astrocat.models.zoo import resolve

    card = dataclasses.replace(resolve("gz2-cnn-int8"), reference=None)
    rec = drift_report.record(card, drift.Sketch.of(np.ones(100)))
    assert rec["verdict"] == "untested" and "reference" in rec["reason"]
    assert drift_report.lines({"gz2-cnn-int8": rec})[0].startswith(
        "drift: gz2-cnn-int8 untested")


def test_held_out_distances_leave_every_result_key_as_it_was(tmp_path):
    """The bundled references gained held-out distances (0.4); the rows they give did
    not change, so neither do the result keys: a nightly job reuses its parts."""
    import dataclasses

    from astrocat.models import reference_stats
    from astrocat.models.card import sha256_file
    from astrocat.models.zoo import resolve
    from astrocat.pipeline.plan import result_key

    card = resolve("gz2-cnn")
    ref = reference_stats.of(card)
    assert ref.held_out_distance is not None and len(ref.held_out_distance) == 1000
    before = tmp_path / "reference.npz"  # the same statistics as astrocat 0.3 wrote them
    dataclasses.replace(ref, held_out_distance=None).save(before)
    old = dataclasses.replace(card, directory=tmp_path, reference=dataclasses.replace(
        card.reference, sha256=sha256_file(before)))
    assert old.reference.sha256 != card.reference.sha256
    assert reference_stats.rows_sha256(old) == old.reference.sha256
    assert result_key(old, "onnxruntime") == result_key(card, "onnxruntime")
