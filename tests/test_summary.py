"""``astrocat summarize``: each section against an independent calculation on known data.

Catalogs here are synthetic (pyarrow, the catalog's own column definitions), small and
built in milliseconds, so these tests need no trained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from astrocat.catalog.schema import BASE_COLUMNS, Column, to_field
from astrocat.cli import main
from astrocat.kernels.gz_tree import galaxy_zoo2
from astrocat.science import stats, truth
from astrocat.science.streaming import TopK
from astrocat.science.summary import SummaryOptions, collect, summarize, to_json

TREE = galaxy_zoo2()


def write_catalog(path: Path, rows: dict[str, list], outputs: dict[str, np.ndarray],
                  carried: dict[str, np.ndarray] | None = None,
                  input_root: str | None = None) -> Path:
    """A catalog with the base columns, float32 outputs and carried columns, as infer writes."""
    n = len(rows["object_id"])
    base = {"object_id": rows["object_id"], "source": rows.get("source", [""] * n),
            "hdu": [-1] * n, "row": [-1] * n, "kind": rows["kind"],
            "model": [""] * n, "ra": [np.nan] * n, "dec": [np.nan] * n,
            "status": rows.get("status", ["ok"] * n), "error": rows.get("error", [""] * n)}
    cols = [*BASE_COLUMNS] + [Column(k, pa.float32()) for k in outputs] + [
        Column(k, pa.from_numpy_dtype(v.dtype)) for k, v in (carried or {}).items()]
    arrays = [pa.array(base[c.name], c.type) for c in BASE_COLUMNS]
    arrays += [pa.array(np.asarray(v, np.float32)) for v in outputs.values()]
    arrays += [pa.array(v) for v in (carried or {}).values()]
    meta = {b"astrocat": json.dumps({"input_root": input_root or str(path.parent)}).encode()}
    schema = pa.schema([to_field(c) for c in cols], metadata=meta)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)
    return path


def survey(tmp: Path, n_gal: int = 400, n_merge: int = 20, n_spec: int = 300,
           n_lens: int = 120, n_field: int = 30, seed: int = 1) -> dict:
    """A mixed catalog with known truth, plus the truth CSVs in the published layouts."""
    rng = np.random.default_rng(seed)
    nan = np.full
    n = n_gal + n_spec + n_lens + n_field + 3
    gz_true = TREE.normalise(rng.gamma(0.6, 1.0, (n_gal, 37)))
    jm = TREE.index("gz_odd_merger")
    merger = np.zeros(n_gal, bool)
    merger[rng.choice(n_gal, n_merge, replace=False)] = True
    gz_true[:, jm] = np.where(merger, 0.6, 0.05)
    gz_pred = np.clip(gz_true + rng.normal(0, 0.05, gz_true.shape), 0, 1).astype(np.float32)
    gz_pred[:, jm] = np.where(merger, 0.55, 0.08)
    zt = rng.uniform(0.0, 0.4, n_spec)
    zp = zt + 0.01 + rng.normal(0, 0.005, n_spec)
    is_lens = np.arange(n_lens) % 2 == 0
    pl = np.where(is_lens, rng.uniform(0.4, 1.0, n_lens), rng.uniform(0.0, 0.6, n_lens))
    om_t, s8_t = rng.uniform(0.1, 0.5, n_field), rng.uniform(0.6, 1.0, n_field)
    ids = ([str(200000 + i) for i in range(n_gal)] + [str(9000 + i) for i in range(n_spec)]
           + [f"imageEUC_VIS-{300000 + i}" for i in range(n_lens)]
           + [f"field_{i}" for i in range(n_field)] + ["bad1", "bad2", "bad3"])
    kind = (["rgb_image"] * n_gal + ["spectrum"] * n_spec + ["mono_image"] * n_lens
            + ["density_field"] * n_field + ["rgb_image", "mono_image", ""])
    status = ["ok"] * (n - 3) + ["error"] * 3
    error = [""] * (n - 3) + ["JPEG truncated: re-download", "FITS image is 3-D: x",
                              "JPEG truncated: again"]
    out = {}
    for k, c in enumerate(TREE.catalog_columns):
        out[c] = np.r_[gz_pred[:, k], nan(n - n_gal, np.nan)]
    out["z_pred"] = np.r_[nan(n_gal, np.nan), zp, nan(n - n_gal - n_spec, np.nan)]
    out["p_lens"] = np.r_[nan(n_gal + n_spec, np.nan), pl, nan(n_field + 3, np.nan)]
    pre = n_gal + n_spec + n_lens
    out["omega_m_pred"] = np.r_[nan(pre, np.nan), om_t + 0.01, nan(3, np.nan)]
    out["sigma_8_pred"] = np.r_[nan(pre, np.nan), s8_t - 0.02, nan(3, np.nan)]
    z_carried = np.r_[nan(n_gal, np.nan), zt, nan(n - n_gal - n_spec, np.nan)]
    cat = write_catalog(tmp / "cat.parquet",
                        {"object_id": ids, "kind": kind, "status": status, "error": error,
                         "source": [f"lenses/{i}.fits" if k == "mono_image" else
                                    f"galaxies/{i}.jpg" for i, k in zip(ids, kind, strict=True)]},
                        out, {"z": z_carried})
    gz_csv = tmp / "training_solutions_rev1.csv"
    with gz_csv.open("w") as f:
        f.write(",".join(["GalaxyID", *TREE.kaggle_columns]) + "\n")
        for i in range(n_gal):
            f.write(",".join([ids[i], *(f"{x:.6f}" for x in gz_true[i])]) + "\n")
    lens_csv = tmp / "lens_labels.csv"
    lens_csv.write_text("ID,is_lens,Einstein_area,numb_pix_lensed_image,"
                        "flux_lensed_image_in_sigma\n" + "".join(
                            f"{300000 + i},{int(is_lens[i])},1.0,10,5.0\n"
                            for i in range(n_lens)))
    f_csv = tmp / "fields_truth.csv"
    f_csv.write_text("ID,omega_m,sigma_8\n" + "".join(
        f"{i},{om_t[i]:.6f},{s8_t[i]:.6f}\n" for i in range(n_field)))
    return {"catalog": cat, "truth": (gz_csv, lens_csv, f_csv), "gz_true": gz_true,
            "gz_pred": gz_pred, "zt": zt, "zp": zp, "is_lens": is_lens, "p_lens": pl,
            "om": om_t, "s8": s8_t, "merger": merger}


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> dict:
    return survey(tmp_path_factory.mktemp("survey"))


@pytest.fixture(scope="module")
def report(known) -> dict:
    # small batches: every statistic must survive being folded across batches
    return summarize(known["catalog"], SummaryOptions(truth=known["truth"], batch_size=97))


def test_counts_and_legacy_keys(report, known):
    assert report["rows"] == 400 + 300 + 120 + 30 + 3
    assert report["errors"] == 3 and report["ok"] == report["rows"] - 3
    assert report["by_kind"]["rgb_image"] == {"ok": 400, "error": 1}
    assert report["by_kind"]["unrecognised"] == {"error": 1}
    assert report["error_reasons"] == {"JPEG truncated: re-download": 1,  # whole, never cut
                                       "FITS image is 3-D: x": 1, "JPEG truncated: again": 1}
    assert report["error_examples"] == {}  # no reason groups messages that differ
    m = report["morphology"]["merger"]
    assert {"fraction", "lower", "upper", "k", "n"} <= set(m)
    assert "candidates" in report["lens"] and "cosmology" in report and "redshift" in report


def test_morphology_means_confident_counts_and_merger(report, known):
    mo, pred = report["morphology"], known["gz_pred"]
    assert mo["n"] == 400
    for j, a in enumerate(mo["answers"]):
        assert a["kaggle_column"] == TREE.kaggle_columns[j]
        assert np.isclose(a["mean"], pred[:, j].astype(float).mean(), atol=1e-6)
        assert a["n_confident"] == int((pred[:, j] >= 0.5).sum())
    m = mo["merger"]
    assert (m["k"], m["n"]) == (20, 400) and m["fraction"] == 0.05
    assert np.isclose(m["lower"], sps.beta.ppf(0.1585, 21, 381))
    assert np.isclose(m["upper"], sps.beta.ppf(0.8415, 21, 381))
    at = {r["threshold"]: r for r in m["by_threshold"]}
    assert at[0.3]["k"] == 20 and at[0.6]["k"] == 0 and at[0.1]["truth_k"] == 20
    assert m["truth"]["k"] == 20 and m["truth"]["interval_contains_truth"]
    sel = m["truth"]["selection"]
    assert (sel["tp"], sel["fp"], sel["fn"]) == (20, 0, 0)


def test_morphology_against_truth_independent(report, known):
    t = report["morphology"]["truth"]
    p, g = known["gz_pred"].astype(float), known["gz_true"].astype(np.float32).astype(float)
    assert t["n_matched"] == 400 and t["n_catalog_without_truth"] == 0
    assert np.isclose(t["rmse"], np.sqrt(np.mean((p - g) ** 2)), rtol=1e-5)
    assert np.isclose(t["rmse_baseline_mean"], np.sqrt(np.mean((g - g.mean(0)) ** 2)), rtol=1e-5)
    assert np.isclose(t["rmse_baseline_zeros"], np.sqrt(np.mean(g ** 2)), rtol=1e-5)
    a = report["morphology"]["answers"][0]
    y = g[:, 0] >= 0.5
    # AUC independently: the fraction of (positive, negative) pairs ordered right
    pairs = (p[y, 0][:, None] > p[~y, 0][None, :]).mean()
    assert np.isclose(a["auc"], pairs) and a["n_positive"] == int(y.sum())
    c = np.array(report["morphology"]["correlation"]["truth"], dtype=float)
    ref = np.corrcoef(g.T)
    ok = np.isfinite(ref)
    assert np.allclose(c[ok], ref[ok], atol=2e-4)
    cp = np.array(report["morphology"]["correlation"]["predicted"], dtype=float)
    refp = np.corrcoef(p.T)
    assert np.allclose(cp[np.isfinite(refp)], refp[np.isfinite(refp)], atol=2e-4)


def test_redshift_section(report, known):
    z = report["redshift"]
    assert z["truth_column"] == "z" and z["n"] == 300
    ref = stats.redshift_metrics(known["zp"].astype(np.float32), known["zt"].astype(np.float32))
    assert np.isclose(z["metrics"]["sigma_nmad"], ref.sigma_nmad, rtol=1e-4)
    for r in z["bias_table"]:
        assert abs(r["mean_error"] - 0.01) < 0.004  # the injected offset, per bin


def test_lens_section(report, known):
    lens, p, y = report["lens"], known["p_lens"].astype(np.float32), known["is_lens"]
    assert lens["n_candidates"] == int((p >= 0.5).sum())
    got = [c["p_lens"] for c in lens["candidates"]]
    assert got == sorted(got, reverse=True) and len(got) == 20
    assert np.allclose(got, np.sort(p)[::-1][:20])
    t = lens["truth"]
    assert np.isclose(t["auroc"], (p[y][:, None] > p[~y][None, :]).mean())
    order = np.argsort(-p)
    first_fp = np.argmax(~y[order])
    assert np.isclose(t["tpr0"], y[order][:first_fp].sum() / y.sum())
    cm = t["confusion"]
    assert cm["tp"] == int((p[y] >= 0.5).sum()) and cm["fp"] == int((p[~y] >= 0.5).sum())
    assert all(c["is_lens"] == bool(y[int(c["object_id"].split("-")[1]) - 300000])
               for c in lens["candidates"])


def test_cosmology_section(report, known):
    c = report["cosmology"]
    t = c["truth"]
    assert c["n"] == 30 and t["n_matched"] == 30
    assert np.isclose(t["omega_m"]["bias"], 0.01, atol=1e-4)
    assert np.isclose(t["sigma_8"]["rmse"], 0.02, atol=1e-4)
    ref = np.sqrt(np.mean((0.3 - known["om"]) ** 2))
    assert np.isclose(t["omega_m"]["rmse_baseline"], ref, atol=1e-5)
    assert c["fields"][3]["omega_m_true"] == pytest.approx(known["om"][3], abs=1e-6)


def test_json_is_standard_and_complete(report):
    text = to_json(report)
    assert "NaN" not in text
    back = json.loads(text)
    assert {"rows", "ok", "errors", "by_kind", "morphology", "redshift", "lens",
            "cosmology", "truth_files"} <= set(back)


def test_truth_detection_and_join(known, tmp_path):
    gz, lens, fields = known["truth"]
    assert [truth.load(p).task for p in (gz, lens, fields)] == ["morphology", "lens",
                                                               "cosmology"]
    keys = truth.object_keys(pa.array(["200001", "imageEUC_VIS-7", "field_12", "x7y", ""]),
                             "lens")
    assert keys.tolist() == [200001, 7, 12, -1, -1]
    assert truth.object_keys(pa.array(["200001", "g200001"]), "morphology").tolist() == [
        200001, -1]
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    from astrocat.errors import AstrocatError

    with pytest.raises(AstrocatError, match="no known layout"):
        truth.load(bad)
    with pytest.raises(AstrocatError, match="two lens files"):
        truth.load_all([lens, lens])


def test_topk_merges_batches_like_a_global_sort():
    rng = np.random.default_rng(3)
    v = rng.random((500, 3))
    tk = TopK(5, 3)
    for a in range(0, 500, 37):
        ids = pa.array([str(i) for i in range(a, min(a + 37, 500))])
        tk.update(v[a:a + 37], v[a:a + 37], ids, ids)
    for j in range(3):
        assert [int(r["object_id"]) for r in tk.column(j)] == list(np.argsort(-v[:, j])[:5])


def test_roc_auc_hand_counted_and_rates():
    s, y = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), np.array([1, 1, 0, 1, 0, 0])
    assert np.isclose(stats.roc_auc(s, y), 8 / 9)
    assert np.isclose(stats.roc_auc(np.array([0.5, 0.5]), np.array([1, 0])), 0.5)  # a tie
    assert np.isnan(stats.roc_auc(s, np.ones(6)))
    tpr, tnr = stats.rates_by_threshold(s, y, np.array([0.0, 0.65, 0.85, 1.0]))
    assert np.allclose(tpr, [1, 2 / 3, 1 / 3, 0]) and np.allclose(tnr, [0, 2 / 3, 1, 1])
    cm = stats.confusion(s, y, 0.65)
    assert (cm["tp"], cm["fp"], cm["fn"], cm["tn"]) == (2, 1, 1, 2)


def test_without_truth_and_cli(known, tmp_path):
    s = collect(known["catalog"])
    assert "truth" not in s.report["lens"] and "truth" not in s.report["cosmology"]
    assert s.report["redshift"]["truth_column"] == "z"  # carried column found by itself
    r = CliRunner().invoke(main, ["summarize", str(known["catalog"]), "--json",
                                  "--truth", str(known["truth"][1]), "--lens-threshold", "0.9"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["lens"]["threshold"] == 0.9 and "auroc" in out["lens"]["truth"]
    r = CliRunner().invoke(main, ["summarize", str(known["catalog"]), "--truth",
                                  str(known["truth"][0]), "--merger-threshold", "0.5"])
    assert r.exit_code == 0, r.output
    assert "Merger fraction" in r.output and "RMSE" in r.output
    r = CliRunner().invoke(main, ["summarize", str(known["catalog"]), "--truth",
                                  str(tmp_path / "none.csv")])
    assert r.exit_code == 2 and "no such file" in r.output
