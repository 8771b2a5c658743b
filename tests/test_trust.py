"""Trust per row: the out-of-domain flag, TTA spread and intervals, logits that rank.

Real files through the real CLI: the bundled sample (in domain), a FITS photograph and a
dense star field (foreign), rotated copies of galaxies written as lossless PNGs (TTA).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from astrocat.cli import main
from astrocat.errors import CardError
from astrocat.kernels import ood
from astrocat.kernels.views import _D4, available, make_views, reduce_views
from astrocat.models.card import load_card
from astrocat.models.zoo import bundled


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def _table(path: Path):
    return pq.read_table(path).to_pandas()


# --------------------------------------------------------------------------- kernels


def test_views_are_the_dihedral_group_identity_first():
    assert len(available(("rot90", "flip"))) == 8
    assert available(("rot90",)) == ((0, False), (2, False), (1, False), (3, False))
    assert available(("flip",)) == ((0, False), (0, True))
    assert available(()) == ((0, False),)
    x = np.arange(2 * 3 * 3 * 2, dtype=np.float32).reshape(2, 3, 3, 2)  # NHWC
    v = make_views(x, available(("rot90", "flip")), "NHWC").reshape(8, 2, 3, 3, 2)
    assert np.array_equal(v[0], x)
    assert np.array_equal(v[1], x[:, ::-1, ::-1])  # half turn
    assert np.array_equal(v[2], x[:, :, ::-1])  # mirror left-right
    # eight distinct images, each a permutation of the same pixels
    assert len({v[i].tobytes() for i in range(8)}) == 8
    assert all(np.array_equal(np.sort(v[i].ravel()), np.sort(x.ravel())) for i in range(8))
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    w = make_views(nchw, available(("rot90", "flip")), "NCHW").reshape(8, 2, 2, 3, 3)
    assert np.array_equal(w.transpose(0, 1, 3, 4, 2), v)  # the same views in either layout
    y = np.array([[1.0], [3.0], [2.0], [6.0]], np.float32)  # 2 views x 2 items
    mean, spread = reduce_views(y, 2)
    assert np.allclose(mean[:, 0], [1.5, 4.5]) and np.allclose(spread[:, 0], [0.7071068,
                                                                              2.1213203])


def test_input_statistics_do_not_change_under_the_views():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 33, 33, 3)).astype(np.float32)
    v = make_views(x, _D4, "NHWC")
    s = ood.input_statistics(v, "NHWC").reshape(8, 4, -1)
    assert s.shape[-1] == ood.N_STATS * 3
    level_to_tail = s[..., : (ood.N_STATS - 1) * 3]  # all but where the input peaks
    assert np.allclose(level_to_tail, level_to_tail[0], atol=1e-5)
    assert np.isfinite(ood.input_statistics(rng.normal(size=(3, 186)), "NHWC")).all()
    # where it peaks: a centred source near 0, one in a corner near the largest offset
    yy, xx = np.mgrid[:64, :64]
    blob = [np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0) for cy, cx in ((32, 32), (6, 58))]
    peak = ood.input_statistics(np.stack(blob)[..., None], "NHWC")[:, -1]
    assert peak[0] < 0.05 and peak[1] > 0.5


def test_input_statistics_quantiles_and_peak_are_their_plain_definitions():
    """The fast forms (a sort for the quantiles, strided block sums for the peak) give
    exactly what nearest-rank quantiles and a reshape-and-mean of 4x4 blocks give."""
    rng = np.random.default_rng(3)
    for shape in ((5, 64, 64, 3), (5, 101, 101, 1), (5, 7, 5, 3)):
        x = rng.normal(size=shape).astype(np.float32)
        stats = ood.input_statistics(x, "NHWC").reshape(len(x), ood.N_STATS, -1)
        sub = np.moveaxis(x, -1, 1)[:, :, ::2, ::2]
        n, c, h, w = sub.shape
        flat = sub.reshape(n, c, -1)
        for k, q in ((2, 0.01), (3, 0.5), (4, 0.99)):  # q01, q50, q99 after mean, log std
            assert np.array_equal(stats[:, k], np.quantile(flat, q, axis=2, method="nearest"))
        bh, bw = min(2, h), min(2, w)
        hh, ww = h // bh * bh, w // bw * bw
        blocks = sub[:, :, :hh, :ww].reshape(n, c, hh // bh, bh, ww // bw, bw).mean(axis=(3, 5))
        row, col = np.divmod(blocks.reshape(n, c, -1).argmax(axis=2), blocks.shape[3])
        peak = np.hypot((row + 0.5) / blocks.shape[2] - 0.5, (col + 0.5) / blocks.shape[3] - 0.5)
        assert np.allclose(stats[:, -1], peak)


# --------------------------------------------------------------------------- the flag


@pytest.fixture(scope="module")
def foreign_fits(tmp_path_factory) -> Path:
    """A portrait photograph and a dense star field as FITS cut-outs of the lens model's
    size: nothing a strong-lens finder was trained on."""
    import matplotlib
    from astropy.io import fits
    from PIL import Image

    out = tmp_path_factory.mktemp("foreign")
    photo_path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photo = np.asarray(Image.open(photo_path).convert("L"), np.float32)
    for i, (y, x) in enumerate([(60, 150), (200, 200), (300, 120)]):
        fits.writeto(out / f"photo_{i}.fits", photo[y:y + 101, x:x + 101])
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:101, :101]
    for i in range(3):  # a globular cluster's core: hundreds of stars, no galaxy
        img = rng.normal(0, 1, (101, 101))
        for _ in range(500):
            cy, cx = rng.uniform(0, 101, 2)
            img += (rng.pareto(1.5) * 20 + 5) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4.5)
        fits.writeto(out / f"cluster_{i}.fits", img.astype(np.float32))
    return out


def test_in_domain_rows_are_rarely_flagged_and_every_ok_row_has_a_distance(sample_catalog):
    t = _table(sample_catalog)
    ok = t[t.status == "ok"]
    assert np.isfinite(ok.ood_distance).all()  # every bundled model has a reference
    assert ok.ood_flag.mean() <= 0.02, ok.groupby("model").ood_flag.mean()
    errors = t[t.status == "error"]
    assert errors.ood_distance.isna().all() and not errors.ood_flag.any()


def test_a_photograph_and_a_star_cluster_are_flagged(foreign_fits, tmp_path):
    code, out = _run("infer", "-q", "--input", str(foreign_fits), "--out",
                     str(tmp_path / "cat.parquet"))
    assert code == 0, out
    t = _table(tmp_path / "cat.parquet")
    assert len(t) == 6 and set(t.model) == {"lens-lastro"}
    assert t.ood_flag.all(), t[["object_id", "p_lens", "ood_distance"]]
    threshold = bundled()["lens-lastro"].reference.threshold
    assert (t.ood_distance > 2 * threshold).all()


def test_a_card_without_reference_gives_nan_and_keeps_its_result_key(tmp_path, sample_dir):
    from astrocat.pipeline.plan import result_key

    dst = tmp_path / "my-cosmo"
    shutil.copytree(bundled()["cosmo-cnn"].directory, dst)
    text = (dst / "card.toml").read_text()
    (dst / "card.toml").write_text(text[: text.index("[reference]")])
    (dst / "reference.npz").unlink()
    card = load_card(dst)
    assert card.reference is None
    code, out = _run("infer", "-q", "--model", str(dst), "--input",
                     str(sample_dir / "fields"), "--out", str(tmp_path / "c.parquet"))
    assert code == 0, out
    t = _table(tmp_path / "c.parquet")
    assert t.ood_distance.isna().all() and not t.ood_flag.any()
    meta = pq.read_schema(tmp_path / "c.parquet").metadata[b"astrocat"].decode()
    assert "no reference statistics" in meta
    # without reference, TTA or logits a card's key is what astrocat 0.2 computed
    import dataclasses
    import hashlib
    import json

    from astrocat.kernels.preprocess import PREPROCESS_VERSION

    before = json.dumps({
        "name": card.name, "weights": card.sha256["onnx"], "input": card.input.identity(),
        "outputs": [{"name": o.name, "unit": o.unit, "description": o.description}
                    for o in card.outputs], "engine": "onnxruntime", "precision": "fp32",
        "preprocess": PREPROCESS_VERSION}, sort_keys=True)
    assert result_key(card, "onnxruntime") == hashlib.sha256(before.encode()).hexdigest()
    assert result_key(dataclasses.replace(card, tta=4), "onnxruntime") != result_key(
        card, "onnxruntime")


def test_models_reference_writes_statistics_that_infer_uses(tmp_path):
    from astrocat.simulate import simulate

    data = tmp_path / "fields"
    simulate("fields", 150, data, seed=5, progress=False, workers=1)
    dst = tmp_path / "my-cosmo"
    shutil.copytree(bundled()["cosmo-cnn"].directory, dst)
    text = (dst / "card.toml").read_text()
    (dst / "card.toml").write_text(text[: text.index("[reference]")])
    (dst / "reference.npz").unlink()
    code, out = _run("models", "reference", str(dst), "--data", str(data))
    assert code == 0, out
    card = load_card(dst)
    card.verify()  # the file's digest is in the card
    assert card.reference.features == "cosmo_cnn_1/dense_1/Relu:0"
    assert card.reference.record["n_fit"] == 100 and card.reference.interval_coverage == 0.9
    assert card.reference.record["in_domain_flagged"] <= 0.02
    code, out = _run("infer", "-q", "--model", str(dst), "--tta", "4", "--input", str(data),
                     "--out", str(tmp_path / "c.parquet"), "--exclude", "*.csv",
                     "--exclude", "*.json")
    assert code == 0, out
    t = _table(tmp_path / "c.parquet")
    assert np.isfinite(t.ood_distance).all() and t.ood_flag.mean() <= 0.05
    assert (t.omega_m_pred_lo <= t.omega_m_pred).all()
    assert (t.omega_m_pred <= t.omega_m_pred_hi).all()
    # a digest that no longer matches the file is refused before any input is read
    (dst / "reference.npz").write_bytes(b"changed")
    code, out = _run("infer", "-q", "--model", str(dst), "--input", str(data),
                     "--out", str(tmp_path / "d.parquet"))
    assert code == 2 and "reference" in out and "sha256" in out, out


def test_card_fields_for_trust_are_checked(tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(bundled()["cosmo-cnn"].directory, dst)
    card = dst / "card.toml"
    good = card.read_text()
    card.write_text(good.replace('"rot90",', '"rotate",'))
    with pytest.raises(CardError, match="invariances"):
        load_card(dst)
    card.write_text(good.replace('features = "cosmo_cnn_1/dense_1/Relu:0"',
                                 'features = "no/such:0"'))
    code, out = _run("infer", "-q", "--model", str(dst), "--input", str(tmp_path),
                     "--out", str(tmp_path / "x.parquet"))
    assert code == 2 and "no/such:0" in out, out
    # logit = true on a graph whose output is no sigmoid: refused, naming the cause
    card.write_text(good.replace('name = "omega_m_pred"', 'name = "omega_m_pred"\nlogit = true'))
    code, out = _run("infer", "-q", "--model", str(dst), "--input", str(tmp_path),
                     "--out", str(tmp_path / "x.parquet"))
    assert code == 2 and "Sigmoid" in out, out


# --------------------------------------------------------------------------- logits


def test_lens_logits_rank_where_the_score_saturates(sample_catalog):
    t = _table(sample_catalog)
    lens = t[(t.model == "lens-lastro") & (t.status == "ok")]
    assert lens.p_lens_logit.is_unique
    p = 1 / (1 + np.exp(-lens.p_lens_logit.astype(np.float64)))
    assert np.allclose(p, lens.p_lens, atol=2e-6)
    # the ties a reader sees (1.000) and float32 makes (beyond a logit of ~17), broken
    assert (lens.p_lens.round(3) == 1.0).sum() >= 5
    order = lens.sort_values("p_lens_logit", ascending=False)
    assert order.p_lens.is_monotonic_decreasing  # the same order, strictly


# --------------------------------------------------------------------------- TTA


def test_tta_columns_equal_the_mean_of_rotated_inputs(tmp_path, sample_dir):
    """Each galaxy and its seven rotations/flips as lossless PNGs, run without TTA, give
    the mean and spread `--tta 8` gives from the original alone (to the resampling's
    rounding: the resize to the model's size is equivariant up to float error)."""
    from PIL import Image

    one, every = tmp_path / "one", tmp_path / "every"
    one.mkdir()
    every.mkdir()
    for src in sorted((sample_dir / "galaxies").glob("*.jpg"))[:4]:
        a = np.asarray(Image.open(src).convert("RGB"))
        Image.fromarray(a).save(one / f"{src.stem}.png")
        for i, (k, mirror) in enumerate(_D4):
            v = np.rot90(a[:, ::-1] if mirror else a, k)
            Image.fromarray(np.ascontiguousarray(v)).save(every / f"{src.stem}_v{i}.png")
    assert _run("infer", "-q", "--tta", "8", "--input", str(one), "--out",
                str(tmp_path / "tta.parquet"))[0] == 0
    assert _run("infer", "-q", "--input", str(every), "--out",
                str(tmp_path / "all.parquet"))[0] == 0
    tta = _table(tmp_path / "tta.parquet").set_index("object_id").sort_index()
    views = _table(tmp_path / "all.parquet")
    views["galaxy"] = views.object_id.str.rsplit("_v", n=1).str[0]
    answers = [o.name for o in bundled()["gz2-cnn"].outputs]
    mean = views.groupby("galaxy")[answers].mean().sort_index()
    spread = views.groupby("galaxy")[answers].std(ddof=1).sort_index()
    assert np.abs(mean.values - tta[answers].values).max() < 3e-3
    assert np.abs(spread.values - tta[[f"{a}_std" for a in answers]].values).max() < 3e-3
    assert spread.values.mean() > 3e-3  # the views do differ: the check has teeth
    lo, hi = tta[[f"{a}_lo" for a in answers]].values, tta[[f"{a}_hi" for a in answers]].values
    assert (lo <= tta[answers].values + 1e-6).all() and (tta[answers].values <= hi + 1e-6).all()
    assert (lo >= 0).all() and (hi <= 1).all()  # inside the range vote fractions take
    meta = pq.read_schema(tmp_path / "tta.parquet").metadata[b"astrocat"].decode()
    assert '"tta": 8' in meta


def test_tta_leaves_spectra_single_view(sample_dir, tmp_path):
    code, out = _run("infer", "-q", "--tta", "4", "--input", str(sample_dir / "spectra"),
                     "--out", str(tmp_path / "z.parquet"))
    assert code in (0, 1), out
    names = pq.read_schema(tmp_path / "z.parquet").names
    assert "z_pred" in names and "z_pred_std" not in names


def test_batch_columns_match_rotating_the_arrays_by_hand():
    """The engine thread's columns against the engine run on hand-rotated arrays."""
    import dataclasses

    from astrocat.engines.base import open_engine
    from astrocat.pipeline.trust import BatchColumns

    card = dataclasses.replace(bundled()["cosmo-cnn"], tta=8)
    x = np.random.default_rng(1).normal(size=(5, 64, 64, 1)).astype(np.float32)
    model = open_engine(card, "onnxruntime")
    cols = BatchColumns(card)(model, x)
    by_hand = []
    for k in range(4):
        for mirror in (False, True):
            v = x[:, :, ::-1] if mirror else x
            for _ in range(k):  # a quarter turn: transpose, then reverse the rows
                v = v.transpose(0, 2, 1, 3)[:, ::-1]
            by_hand.append(model.predict(np.ascontiguousarray(v)))
    by_hand = np.stack(by_hand)
    assert np.allclose(cols["omega_m_pred"], by_hand[..., 0].mean(axis=0), atol=1e-6)
    assert np.allclose(cols["omega_m_pred_std"], by_hand[..., 0].std(axis=0, ddof=1),
                       atol=1e-6)
    assert cols["ood_flag"].dtype == np.bool_ and cols["ood_distance"].shape == (5,)


def test_job_file_takes_tta(tmp_path):
    from astrocat.jobs.jobfile import load_job

    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "n"\ninput = "in"\nout = "store"\ntta = 8\n')
    assert load_job(job).tta == 8
    job.write_text('[job]\nname = "n"\ninput = "in"\nout = "store"\ntta = 0\n')
    with pytest.raises(Exception, match="tta"):
        load_job(job)


def test_tensorflow_gives_the_same_features_and_logits_as_onnx_runtime():
    pytest.importorskip("tensorflow")
    from astrocat.engines.base import open_engine

    card = bundled()["lens-lastro"]
    x = np.random.default_rng(2).normal(size=(4, 101, 101, 1)).astype(np.float32)
    x[:2] += 5 * np.exp(-((np.mgrid[:101, :101] - 50) ** 2).sum(0) / 50.0)[..., None]
    a = open_engine(card, "onnxruntime").run(x)
    b = open_engine(card, "tensorflow").run(x)
    assert a.features.shape == b.features.shape == (4, 64)
    assert np.allclose(a.features, b.features, atol=1e-4)
    assert np.allclose(a.logits, b.logits, atol=1e-4)
    assert np.allclose(1 / (1 + np.exp(-b.logits)), b.values, atol=1e-5)


def test_engine_threads_filling_an_empty_graph_cache_all_get_a_whole_graph(
    tmp_path, monkeypatch
):
    """Two engine threads of one run may both find the cache empty (seen in CI: a run with
    ``engines = 2`` on a fresh machine made every row an error)."""
    import threading

    import onnxruntime as ort

    from astrocat.models.graph import graph_with_heads

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    card = bundled()["gz2-cnn"]
    start, got, failed = threading.Barrier(6), [], []

    def fill() -> None:
        start.wait()
        try:
            got.append(graph_with_heads(card))
        except Exception as err:  # noqa: BLE001 - the test reports every thread's failure
            failed.append(repr(err))

    threads = [threading.Thread(target=fill) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed
    (path, names), *_ = got
    outputs = [o.name for o in ort.InferenceSession(str(path)).get_outputs()]
    assert set(names) <= set(outputs)
    assert [p.name for p in (tmp_path / "cache" / "astrocat" / "graphs").iterdir()
            if p.name.startswith(".")] == []
