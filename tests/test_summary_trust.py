"""``summarize`` and ``diff`` with the trust columns: the out-of-domain flag (its table, rows
left out by default and put back by ``--include-ood``, flag changes between versions),
candidates ranked by the lens logit, and the spread of test-time augmentation against
truth. Synthetic catalogs (``test_summary.survey`` plus the new columns), no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy import stats as sps
from test_summary import survey, write_catalog

from astrocat.cli import main
from astrocat.science import stats
from astrocat.science.compare import compare
from astrocat.science.compare import sections as diff_sections
from astrocat.science.figures import make_figures
from astrocat.science.sections import sections
from astrocat.science.summary import SummaryOptions, collect, summarize

# survey()'s row layout: galaxies, spectra, lens cut-outs, fields, then 3 error rows
N_GAL, N_SPEC, N_LENS, N_FIELD = 400, 300, 120, 30
GAL = slice(0, N_GAL)
SPEC = slice(N_GAL, N_GAL + N_SPEC)
LENS = slice(N_GAL + N_SPEC, N_GAL + N_SPEC + N_LENS)
FIELD = slice(N_GAL + N_SPEC + N_LENS, N_GAL + N_SPEC + N_LENS + N_FIELD)
N = N_GAL + N_SPEC + N_LENS + N_FIELD + 3


def rewrite(src: Path, dst: Path, columns: dict[str, np.ndarray],
            models: dict | None = None) -> Path:
    """``src`` with columns added or replaced (and provenance models), written to ``dst``."""
    t = pq.read_table(src)
    for name, v in columns.items():
        arr = pa.array(v)
        if name in t.column_names:
            t = t.set_column(t.column_names.index(name), name, arr)
        else:
            t = t.append_column(name, arr)
    meta = dict(t.schema.metadata or {})
    prov = json.loads(meta.get(b"astrocat", b"{}"))
    if models is not None:
        prov["models"] = models
    meta[b"astrocat"] = json.dumps(prov).encode()
    pq.write_table(t.replace_schema_metadata(meta), dst)
    return dst


def model_column() -> np.ndarray:
    m = np.full(N, "", dtype=object)
    m[GAL], m[SPEC], m[LENS], m[FIELD] = "gz2-cnn", "redshift-cnn1d", "lens-lastro", "cosmo-cnn"
    return m


@pytest.fixture(scope="module")
def flagged(tmp_path_factory) -> dict:
    """The survey with trust columns: 10 of the 20 mergers and 10 other galaxies flagged,
    the 5 best lens scores flagged, 30 spectra flagged with a +0.5 redshift error, the
    fields' model without reference statistics (NaN distances), and the lens logit."""
    tmp = tmp_path_factory.mktemp("flagged")
    d = survey(tmp)
    flag = np.zeros(N, bool)
    mergers = np.flatnonzero(d["merger"])
    others = np.flatnonzero(~d["merger"])
    flag[mergers[:10]] = flag[others[:10]] = True
    lens_order = np.argsort(-d["p_lens"])
    flag[LENS.start + lens_order[:5]] = True
    bad_spec = np.arange(0, N_SPEC, 10)  # 30 spectra
    flag[SPEC.start + bad_spec] = True
    dist = np.where(flag, 5.0, 1.0).astype(np.float32)
    dist[FIELD] = np.nan
    dist[-3:] = np.nan
    flag[-3:] = False  # error rows: never flagged
    z_pred = pq.read_table(d["catalog"], columns=["z_pred"])["z_pred"].to_numpy().copy()
    z_pred[SPEC.start + bad_spec] += np.float32(0.5)
    logit = np.full(N, np.nan, np.float32)
    p = d["p_lens"].astype(np.float64)
    logit[LENS] = np.log(p / (1 - p)).astype(np.float32)
    cat = rewrite(d["catalog"], tmp / "flagged.parquet",
                  {"model": model_column(), "ood_distance": dist, "ood_flag": flag,
                   "z_pred": z_pred, "p_lens_logit": logit},
                  {"gz2-cnn": {"task": "morphology", "ood_threshold": 3.0},
                   "lens-lastro": {"task": "lens", "ood_threshold": 3.0},
                   "redshift-cnn1d": {"task": "redshift", "ood_threshold": 3.0},
                   "cosmo-cnn": {"task": "cosmology",
                                 "ood": "no reference statistics: ood_distance is NaN"}})
    return {**d, "catalog": cat, "old": d["catalog"], "flag": flag, "bad_spec": bad_spec,
            "lens_order": lens_order, "z_pred": z_pred}


@pytest.fixture(scope="module")
def default(flagged) -> dict:
    return summarize(flagged["catalog"], SummaryOptions(truth=flagged["truth"], batch_size=97))


@pytest.fixture(scope="module")
def included(flagged) -> dict:
    return summarize(flagged["catalog"], SummaryOptions(
        task={"include_ood": True}, truth=flagged["truth"], batch_size=97))


def test_share_flagged_per_model(default):
    o = default["ood"]
    assert o["has_flag"] and not o["include_ood"]
    # a catalog whose provenance records no drift (astrocat < 0.4) says so per model
    assert {m["drift"]["verdict"] for m in o["models"].values()} == {None}
    gz = {k: v for k, v in o["models"]["gz2-cnn"].items() if k != "drift"}
    assert gz == {"ok": 400, "flagged": 20, "share": 0.05, "not_checked": 0,
                  "threshold": 3.0}
    assert o["models"]["lens-lastro"]["flagged"] == 5
    assert o["models"]["lens-lastro"]["share"] == pytest.approx(5 / 120)
    assert o["models"]["redshift-cnn1d"]["flagged"] == 30
    assert {k: v for k, v in o["models"]["cosmo-cnn"].items() if k != "drift"} == {
        "ok": 30, "flagged": 0, "share": 0.0, "not_checked": 30}
    assert (o["ok"], o["flagged"]) == (850, 55)
    assert "" not in o["models"]  # error rows are not ok rows of any model
    text = _text(default)
    assert "Out-of-domain flag: 55 of 850 ok rows flagged" in text
    assert "Flagged rows are left out of the merger fraction" in text


def test_merger_fraction_leaves_flagged_galaxies_out(default, included, flagged):
    m = default["morphology"]["merger"]
    assert (m["k"], m["n"]) == (10, 380)
    assert m["ood"] == {"flagged": 20, "left_out": 20}
    assert m["truth"]["n"] == 380 and m["truth"]["k"] == 10  # the same galaxies
    assert default["morphology"]["n"] == 400  # everything else uses every galaxy
    assert "20 flagged out-of-domain galaxies left out of the merger fraction" in _text(default)
    mi = included["morphology"]["merger"]
    assert (mi["k"], mi["n"]) == (20, 400) and mi["ood"] == {"flagged": 20, "left_out": 0}
    assert "20 flagged out-of-domain galaxies kept in the merger fraction" in _text(included)


def test_lens_candidates_leave_flagged_cut_outs_out(default, included, flagged):
    p = flagged["p_lens"].astype(np.float32)
    order = flagged["lens_order"]
    lens, lens_in = default["lens"], included["lens"]
    above = int((p >= 0.5).sum())
    assert lens_in["n_candidates"] == above and lens["n_candidates"] == above - 5
    ids = [int(c["object_id"].split("-")[1]) - 300000 for c in lens["candidates"]]
    assert ids == list(order[5:25])
    assert [int(c["object_id"].split("-")[1]) - 300000
            for c in lens_in["candidates"]] == list(order[:20])
    assert lens["ood"] == {"flagged": 5, "left_out": 5}
    assert lens["ranked_by"] == "p_lens_logit"
    assert all(c["p_lens_logit"] == pytest.approx(np.log(c["p_lens"] / (1 - c["p_lens"])),
                                                  abs=1e-3) for c in lens["candidates"])
    assert lens["truth"]["auroc"] == lens_in["truth"]["auroc"]  # the metrics use every row
    assert "5 flagged out-of-domain cut-outs with p_lens >= 0.5 left out" in _text(default)


def test_redshift_bias_table_leaves_flagged_spectra_out(default, included, flagged):
    z, zi = default["redshift"], included["redshift"]
    assert z["n"] == zi["n"] == 300  # the distribution uses every spectrum
    assert z["n_with_truth"] == 270 and zi["n_with_truth"] == 300
    assert sum(r["n"] for r in z["bias_table"]) == 270
    assert sum(r["n"] for r in zi["bias_table"]) == 300
    assert z["metrics"]["outlier_fraction"] == 0.0
    assert zi["metrics"]["outlier_fraction"] == pytest.approx(0.1)
    assert z["ood"] == {"flagged": 30, "left_out": 30}
    assert "30 flagged out-of-domain spectra left out" in _text(default)


def test_include_ood_on_the_command_line(flagged):
    def run(*extra: str) -> dict:
        r = CliRunner().invoke(main, ["summarize", str(flagged["catalog"]), "--json", *extra])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    assert run()["morphology"]["merger"]["n"] == 380
    got = run("--include-ood")
    assert got["morphology"]["merger"]["n"] == 400 and got["options"]["include_ood"] is True
    assert run("--no-include-ood")["options"]["include_ood"] is False


def test_a_catalog_without_the_flag_summarizes_as_before_and_says_so(flagged):
    r = summarize(flagged["old"], SummaryOptions(truth=flagged["truth"]))
    assert r["ood"] == {"has_flag": False, "note": r["ood"]["note"]}
    assert "written before astrocat had one" in r["ood"]["note"]
    assert (r["morphology"]["merger"]["k"], r["morphology"]["merger"]["n"]) == (20, 400)
    assert "ood" not in r["morphology"]["merger"] and "ood" not in r["lens"]
    assert "ood" not in r["redshift"] and r["redshift"]["n_with_truth"] == 300
    assert r["lens"]["ranked_by"] == "p_lens"
    assert "p_lens_logit" not in r["lens"]["candidates"][0]
    text = _text(r)
    assert "The catalog has no out-of-domain flag" in text and "logit" not in text


def test_ties_in_p_lens_are_broken_by_the_logit(tmp_path):
    # eight cut-outs saturate at exactly 1.0 in float32; their logits still differ
    logit = np.array([17.5, 40.0, 21.0, 18.2, 33.3, 25.0, 19.9, 28.1, 2.0, -1.0, 0.5])
    p = (1 / (1 + np.exp(-logit))).astype(np.float32)
    assert (p[:8] == 1.0).all()
    n = len(p)
    ids = [f"imageEUC_VIS-{i}" for i in range(n)]
    cat = write_catalog(tmp_path / "ties.parquet",
                        {"object_id": ids, "kind": ["mono_image"] * n},
                        {"p_lens": p, "p_lens_logit": logit})
    r = summarize(cat, SummaryOptions(task={"top": 5}, batch_size=3))
    got = [c["object_id"] for c in r["lens"]["candidates"]]
    assert got == [ids[i] for i in np.argsort(-logit)[:5]]  # 40, 33.3, 28.1, 25, 21
    assert [c["p_lens_logit"] for c in r["lens"]["candidates"]] == pytest.approx(
        [40.0, 33.3, 28.1, 25.0, 21.0], abs=1e-5)
    assert r["lens"]["n_candidates"] == 10  # p_lens >= 0.5 still decides who is one
    text = _text(r)
    assert "by p_lens_logit" in text and "40.000" in text


def test_lens_completeness_purity_and_calibration(default, flagged):
    t = default["lens"]["truth"]
    p, y = flagged["p_lens"].astype(np.float32).astype(float), flagged["is_lens"]
    at = {r["threshold"]: r for r in t["completeness_purity"]}
    assert set(at) == {0.1, 0.3, 0.5, 0.7, 0.9, 0.99}
    for thr, r in at.items():
        sel = p >= thr
        assert r["selected"] == int(sel.sum())
        assert r["completeness"] == pytest.approx((sel & y).sum() / y.sum())
        assert r["purity"] == pytest.approx((sel & y).sum() / sel.sum())
    c = t["calibration"]
    assert c["bins"] == 10 and c["n"] == N_LENS
    ref = stats.reliability(p, y)
    assert c["ece"] == pytest.approx(ref.ece)
    assert sum(b["n"] for b in c["reliability"]) == N_LENS
    text = _text(default)
    assert "Completeness and purity" in text and "expected calibration error" in text


def test_morphology_calibration_pooled_over_answers(default, flagged):
    c = default["morphology"]["truth"]["calibration"]
    pred = flagged["gz_pred"].astype(np.float64)
    true = np.array([[float(f"{x:.6f}") for x in row] for row in flagged["gz_true"]],
                    np.float32).astype(np.float64)
    idx = np.clip(np.floor(pred * 10).astype(int), 0, 9).ravel()
    diff = np.bincount(idx, (pred - true).ravel(), minlength=10)
    assert c["n"] == pred.size and c["bins"] == 10
    assert c["ece"] == pytest.approx(np.abs(diff).sum() / pred.size, rel=1e-5)
    assert "pooled over every answer" in c["binning"]


# --------------------------------------------------------------------------- TTA


@pytest.fixture(scope="module")
def tta(tmp_path_factory) -> dict:
    """The survey with TTA columns: spreads that grow with the actual error, and intervals
    of pred +- 1.2 x spread (some hold the truth, some do not)."""
    tmp = tmp_path_factory.mktemp("tta")
    d = survey(tmp, n_gal=200, n_merge=10, n_spec=50, n_lens=40, n_field=60, seed=5)
    rng = np.random.default_rng(7)
    t = pq.read_table(d["catalog"])
    n = t.num_rows
    cols, truth = {}, {}
    gz_true = np.array([[float(f"{x:.6f}") for x in row] for row in d["gz_true"]], np.float32)
    from astrocat.kernels.gz_tree import galaxy_zoo2

    for j, c in enumerate(galaxy_zoo2().catalog_columns):
        truth[c] = np.r_[gz_true[:, j], np.full(n - 200, np.nan, np.float32)]
    om_true = np.array([float(f"{x:.6f}") for x in d["om"]], np.float32)
    s8_true = np.array([float(f"{x:.6f}") for x in d["s8"]], np.float32)
    pre = 200 + 50 + 40
    truth["omega_m_pred"] = np.r_[np.full(pre, np.nan), om_true, np.full(3, np.nan)]
    truth["sigma_8_pred"] = np.r_[np.full(pre, np.nan), s8_true, np.full(3, np.nan)]
    spreads = {}
    for c in truth:
        pred = t[c].to_numpy(zero_copy_only=False)
        err = np.abs(pred - truth[c])
        std = (err * rng.uniform(0.5, 1.5, n) + 1e-4).astype(np.float32)
        cols[f"{c}_std"] = std
        cols[f"{c}_lo"] = (pred - 1.2 * std).astype(np.float32)
        cols[f"{c}_hi"] = (pred + 1.2 * std).astype(np.float32)
        spreads[c] = (pred, std)
    cat = rewrite(d["catalog"], tmp / "tta.parquet", cols,
                  {"gz2-cnn": {"task": "morphology", "tta": 4},
                   "cosmo-cnn": {"task": "cosmology", "tta": 4}})
    return {**d, "catalog": cat, "cols": cols, "truth_values": truth, "spreads": spreads}


def test_tta_spread_against_error_and_coverage(tta):
    s = collect(tta["catalog"], SummaryOptions(truth=tta["truth"], batch_size=41))
    from astrocat.kernels.gz_tree import galaxy_zoo2

    gz = galaxy_zoo2().catalog_columns
    u = s.report["morphology"]["truth"]["uncertainty"]
    pred = np.column_stack([tta["spreads"][c][0][:200] for c in gz])
    true = np.column_stack([tta["truth_values"][c][:200] for c in gz])
    std = np.column_stack([tta["cols"][f"{c}_std"][:200] for c in gz])
    lo = np.column_stack([tta["cols"][f"{c}_lo"][:200] for c in gz])
    hi = np.column_stack([tta["cols"][f"{c}_hi"][:200] for c in gz])
    err = np.abs(pred - true)
    assert u["views"] == 4 and u["n"] == pred.size
    assert u["spearman_spread_abs_error"] == pytest.approx(
        sps.spearmanr(std.ravel(), err.ravel()).statistic, abs=1e-9)
    assert u["spearman_spread_abs_error"] > 0.5
    inside = (lo <= true) & (true <= hi)
    assert u["coverage"] == pytest.approx(inside.mean())
    assert u["nominal_coverage"] == 0.9
    assert u["coverage_per_answer"]["gz_smooth"] == pytest.approx(inside[:, 0].mean())
    assert sum(b["n"] for b in u["by_spread"]) == pred.size
    means = [b["mean_abs_error"] for b in u["by_spread"]]
    assert means[-1] > means[0]  # larger spread, larger error
    cu = s.report["cosmology"]["truth"]["uncertainty"]
    om = tta["spreads"]["omega_m_pred"]
    rows = slice(290, 350)
    om_inside = ((tta["cols"]["omega_m_pred_lo"][rows] <= tta["truth_values"]["omega_m_pred"][rows])
                 & (tta["truth_values"]["omega_m_pred"][rows]
                    <= tta["cols"]["omega_m_pred_hi"][rows]))
    assert cu["omega_m"]["coverage"] == pytest.approx(om_inside.mean())
    assert cu["omega_m"]["n"] == 60 and cu["sigma_8"]["views"] == 4
    assert np.isfinite(om[1][rows]).all()
    text = _text(s.report)
    assert "Test-time augmentation (4 views)" in text
    names = {f.name for f in make_figures(s) if f.png}
    assert {"morphology_uncertainty", "cosmology_uncertainty", "morphology_reliability",
            "lens_reliability", "lens_completeness_purity"} <= names


def test_no_tta_section_without_truth(tta):
    r = summarize(tta["catalog"])
    assert "truth" not in r["morphology"] and "truth" not in r["cosmology"]


# --------------------------------------------------------------------------- diff


def test_diff_counts_flag_changes(flagged, tmp_path):
    flag = flagged["flag"].copy()
    gal_flagged = np.flatnonzero(flag[GAL])
    gal_clear = np.flatnonzero(~flag[GAL])
    flag[gal_flagged[:2]] = False  # no longer flagged
    flag[gal_clear[:3]] = True  # became flagged
    b = rewrite(flagged["catalog"], tmp_path / "b.parquet", {"ood_flag": flag})
    r = compare(flagged["catalog"], b)
    o = r["ood"]
    assert (o["became_flagged"], o["no_longer_flagged"]) == (3, 2)
    assert o["compared"] == 850 and (o["flagged_a"], o["flagged_b"]) == (55, 56)
    assert len(o["examples_became_flagged"]) == 3
    assert r["morphology"]["merger_a"]["ood_left_out"] == 20
    text = "\n".join(str(i) for s in diff_sections(r) for i in s.items)
    assert "3 became flagged out-of-domain and 2 are no longer flagged" in text
    # an older A: no counts, and the report says why
    r = compare(flagged["old"], b)
    assert r["ood"] == {"note": "Only B has an ood_flag column: flag changes are not "
                                "counted."}
    r = compare(flagged["old"], flagged["old"])
    assert "ood" not in r


# --------------------------------------------------------------------------- helpers


def _text(report: dict) -> str:
    return "\n".join(str(item) if isinstance(item, str) else
                     item.title + "\n" + "\n".join(" ".join(r) for r in item.rows)
                     + "\n" + " ".join(item.columns)
                     for s in sections(report) for item in [s.title, *s.items])
