"""INT8 variants (``astrocat compile MODEL --precision int8``): the shipped ones are valid
cards that agree with FP32 as recorded, and a variant that fails its science gates is
refused without writing anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from astrocat.engines.base import open_engine
from astrocat.errors import AstrocatError
from astrocat.kinds import Kind
from astrocat.models import quantize as q
from astrocat.models import zoo
from astrocat.models.graph import check_graph
from astrocat.models.zoo import bundled, default_for

FP32 = ("gz2-cnn", "redshift-cnn1d", "lens-lastro", "cosmo-cnn")
#: Inputs for these tests only: neither the calibration nor the validation seed.
TEST_SEED = 11


@pytest.mark.parametrize("name", FP32)
def test_shipped_int8_card_is_valid_and_never_a_default(name):
    card = bundled()[f"{name}-int8"]
    card.verify()
    check_graph(card)
    assert card.files == {"onnx": "model.onnx"} and card.default_for == ()
    assert card.task == bundled()[name].task
    quant = card.raw["quantization"]
    assert quant["source_model"] == name
    assert quant["source_sha256"] == bundled()[name].fingerprint
    assert quant["calibration"]["seed"] == q.CALIBRATION_SEED
    assert quant["validation"]["seed"] == q.CALIBRATION_SEED + 1
    assert {g["metric"] for g in quant["gates"]} == {g.metric for g in q.GATES[card.task]}
    assert all(g["passed"] for g in quant["gates"])
    assert quant["bytes"]["int8"] < quant["bytes"]["fp32"]
    assert "SIMULATED" in card.training["data"]
    # 7-bit weights: what the gates measured is what every x86 CPU computes
    assert quant["reduce_range"] is True
    assert "every x86-64" in quant["validated_on"]["valid_on"]
    assert quant["validated_on"]["cpu"] and quant["validated_on"]["machine"]


def test_defaults_stay_fp32():
    for kind, name in [(Kind.RGB_IMAGE, "gz2-cnn"), (Kind.SPECTRUM, "redshift-cnn1d"),
                       (Kind.MONO_IMAGE, "lens-lastro"), (Kind.DENSITY_FIELD, "cosmo-cnn")]:
        assert default_for(kind).name == name


@pytest.mark.parametrize("name", FP32)
def test_int8_agrees_with_fp32_within_recorded_deviation(name, tmp_path):
    fp32, int8 = bundled()[name], bundled()[f"{name}-int8"]
    if not zoo.int8_valid_here(int8):
        pytest.skip("8-bit weights on a CPU without VNNI: ONNX Runtime's INT8 kernels "
                    "saturate here, so --precision int8 keeps FP32 (test_int8_without_vnni_"
                    "needs_7_bit_weights)")
    x, _ = q.survey_inputs(fp32, 12, TEST_SEED, tmp_path)
    a = open_engine(fp32, "onnxruntime").predict(x)
    b = open_engine(int8, "onnxruntime").predict(x)
    assert np.isfinite(b).all() and b.shape == a.shape
    assert np.abs(b - a).max() <= int8.raw["quantization"]["deviation"]["max_abs"]


@pytest.mark.parametrize("name", FP32)
def test_int8_variant_has_its_own_reference_on_the_same_features(name, tmp_path):
    """``--precision int8`` rows keep their out-of-domain distance: each variant carries
    reference statistics of its own features, found in its QDQ graph at FP32's tensor."""
    from astrocat.kernels.ood import input_statistics
    from astrocat.models.graph import feature_tensor
    from astrocat.models.reference import of

    fp32, int8 = bundled()[name], bundled()[f"{name}-int8"]
    assert int8.reference is not None and int8.reference.sha256 != fp32.reference.sha256
    assert int8.reference.features == fp32.reference.features
    assert feature_tensor(int8.weights("onnx")) == fp32.reference.features
    x, _ = q.survey_inputs(fp32, 64, TEST_SEED, tmp_path)
    distances = []
    for card in (fp32, int8):
        heads = open_engine(card, "onnxruntime").run(x)
        stats = input_statistics(x, card.input.layout)
        distances.append(of(card).distance(stats, heads.features))
    a, b = distances
    assert np.isfinite(b).all()
    assert np.corrcoef(a, b)[0, 1] > 0.95  # the same inputs look as far out to both


def test_int8_without_vnni_needs_7_bit_weights(monkeypatch):
    """A variant with 8-bit weights is not, without VNNI, what its gates measured: runs
    keep FP32 there. The shipped variants have 7-bit weights and run on every x86 CPU."""
    import dataclasses

    from astrocat.pipeline.run import build_routing

    shipped = bundled()
    monkeypatch.setattr(zoo, "int8_as_validated", lambda: False)  # a CPU without VNNI
    monkeypatch.setattr(zoo, "instruction_sets", lambda: ("avx2", "avx512f"))  # untimed
    assert {c.name for c in build_routing((), "int8").values()} == {f"{n}-int8" for n in FP32}
    v = shipped["gz2-cnn-int8"]
    eight_bit = dataclasses.replace(v, raw={**v.raw, "quantization": {
        **v.raw["quantization"], "reduce_range": False}})
    assert zoo.int8_valid_here(v) and not zoo.int8_valid_here(eight_bit)
    monkeypatch.setattr(zoo, "bundled", lambda: {**shipped, "gz2-cnn-int8": eight_bit})
    assert zoo.variant(shipped["gz2-cnn"], "int8") is None
    assert build_routing((), "int8")[Kind.RGB_IMAGE].name == "gz2-cnn"
    monkeypatch.setattr(zoo, "int8_as_validated", lambda: True)  # with VNNI: both run
    assert zoo.variant(shipped["gz2-cnn"], "int8").name == "gz2-cnn-int8"


def test_int8_slower_where_it_was_timed_keeps_fp32(monkeypatch):
    """--precision int8 keeps FP32 where the variant's own timing, on a CPU with this one's
    instruction sets, found it slower (redshift-cnn1d on the AVX2-only CPU it was
    quantised on); on other CPUs, and for the faster variants, INT8 runs as asked."""
    from astrocat.pipeline.run import build_routing

    shipped = bundled()
    redshift = shipped["redshift-cnn1d-int8"]
    speed = redshift.raw["quantization"]["speed"]
    assert speed["ms_per_item_int8"] > speed["ms_per_item_fp32"]  # as recorded when made
    assert redshift.raw["quantization"]["validated_on"]["instruction_sets"] == ["avx2"]
    monkeypatch.setattr(zoo, "instruction_sets", lambda: ("avx2",))
    assert not zoo.int8_faster_here(redshift)
    assert zoo.variant(shipped["redshift-cnn1d"], "int8") is None
    routed = {k: c.name for k, c in build_routing((), "int8").items()}
    assert routed[Kind.SPECTRUM] == "redshift-cnn1d"
    assert routed[Kind.RGB_IMAGE] == "gz2-cnn-int8" and routed[Kind.MONO_IMAGE] == \
        "lens-lastro-int8"
    monkeypatch.setattr(zoo, "instruction_sets", lambda: ("avx2", "avx512f", "avx512_vnni"))
    assert zoo.int8_faster_here(redshift)  # never timed on such a CPU: runs as asked
    assert build_routing((), "int8")[Kind.SPECTRUM].name == "redshift-cnn1d-int8"


def test_int8_rechecked_on_a_vnni_cpu_decides_there(monkeypatch):
    """Each shipped variant was checked again on an AVX-512 VNNI CPU
    (``astrocat models recheck-int8``): gates passed, the same integers as where it was
    made (7-bit weights), and on such CPUs redshift-cnn1d's INT8 ran slower than FP32, so
    --precision int8 keeps FP32 for spectra there too; the others run INT8."""
    from astrocat.pipeline.run import build_routing

    vnni = ("avx2", "avx512f", "avx512_vnni", "avx_vnni")
    for name in FP32:
        card = bundled()[f"{name}-int8"]
        quant = card.raw["quantization"]
        (entry,) = [e for e in quant["checked_on"] if tuple(e["instruction_sets"]) == vnni]
        assert entry["passed"] and all(g["passed"] for g in entry["gates"])
        assert entry["validation"]["seed"] == quant["validation"]["seed"]
        # 7-bit weights: the integers agree, so FP32 and INT8 differ alike on both CPUs
        assert entry["deviation"]["max_abs"] == pytest.approx(quant["deviation"]["max_abs"],
                                                              rel=1e-3)
    monkeypatch.setattr(zoo, "instruction_sets", lambda: vnni)
    redshift = bundled()["redshift-cnn1d-int8"]
    assert zoo.int8_record_here(redshift)["cpu"].endswith(", VNNI")
    assert not zoo.int8_faster_here(redshift)
    assert {k: c.name for k, c in build_routing((), "int8").items()} == {
        Kind.RGB_IMAGE: "gz2-cnn-int8", Kind.MONO_IMAGE: "lens-lastro-int8",
        Kind.SPECTRUM: "redshift-cnn1d", Kind.DENSITY_FIELD: "cosmo-cnn-int8"}


def test_recheck_records_this_cpu_once_and_a_failed_gate_keeps_fp32(tmp_path, monkeypatch):
    """`astrocat models recheck-int8` on a copy of a shipped variant: the entry for this
    CPU's instruction sets is written once (a second run replaces it), and a gate failing
    here makes --precision int8 keep FP32 on CPUs like this one."""
    import shutil

    from click.testing import CliRunner

    from astrocat.cli import main
    from astrocat.models.card import load_card, write_card

    here = ("avx2", "avx512f", "test_only_set")
    monkeypatch.setattr(zoo, "instruction_sets", lambda: here)
    copy = tmp_path / "cosmo-cnn-int8"
    shutil.copytree(bundled()["cosmo-cnn-int8"].directory, copy)
    raw = load_card(copy).raw  # as if validated on 100 fields (the same survey, quicker)
    validation = raw["quantization"]["validation"]
    assert "--n 1000 --seed 4002" in validation["data"]
    validation["data"] = validation["data"].replace("--n 1000", "--n 100")
    write_card(raw, copy)
    before = len(raw["quantization"].get("checked_on", []))

    result = CliRunner().invoke(main, ["models", "recheck-int8", str(copy)])
    assert result.exit_code == 0, result.output
    assert "passed every gate" in result.output and "x FP32" in result.output
    card = load_card(copy)
    card.verify()
    entries = card.raw["quantization"]["checked_on"]
    assert len(entries) == before + 1 and entries[-1]["instruction_sets"] == list(here)
    assert entries[-1]["validation"]["n"] == 100 and zoo.int8_valid_here(card)

    impossible = (q.Gate("rmse_omega_m", "rise", -1.0),)
    monkeypatch.setitem(q.GATES, "cosmology", impossible)
    result = CliRunner().invoke(main, ["models", "recheck-int8", str(copy)])
    assert result.exit_code == 1 and "FAILED a gate" in result.output
    assert "Traceback" not in result.output
    card = load_card(copy)
    entries = card.raw["quantization"]["checked_on"]
    assert len(entries) == before + 1 and entries[-1]["passed"] is False
    assert not zoo.int8_valid_here(card)


def test_recheck_refuses_what_is_not_a_variant():
    from click.testing import CliRunner

    from astrocat.cli import main

    result = CliRunner().invoke(main, ["models", "recheck-int8", "cosmo-cnn"])
    assert result.exit_code != 0 and "is not an INT8 variant" in result.output
    assert "Traceback" not in result.output


def test_gates_as_data():
    rmse, merger = q.GATES["morphology"]
    fp32 = {"rmse": 0.080, "merger_fraction": 0.048, "merger_fraction_lower": 0.044,
            "merger_fraction_upper": 0.052}
    assert rmse.passed(fp32, {**fp32, "rmse": 0.0849})
    assert not rmse.passed(fp32, {**fp32, "rmse": 0.0851})
    assert not merger.passed(fp32, {**fp32, "merger_fraction": 0.053})
    (bias_gate,) = [g for g in q.GATES["redshift"] if g.rule == "abs"]
    assert not bias_gate.passed({"bias": 0.0}, {"bias": -0.0021})
    (auroc,) = q.GATES["lens"]
    assert auroc.passed({"auroc": 0.97}, {"auroc": 0.966})
    assert not auroc.passed({"auroc": 0.97}, {"auroc": 0.964})


@pytest.fixture(scope="module")
def cosmo_inputs(tmp_path_factory) -> np.ndarray:
    x, _ = q.survey_inputs(bundled()["cosmo-cnn"], 64, TEST_SEED,
                           tmp_path_factory.mktemp("cosmo"))
    return x


def test_absurd_calibration_is_refused_naming_the_gate(tmp_path, cosmo_inputs):
    out = tmp_path / "cosmo-int8"
    with pytest.raises(AstrocatError, match=r"gate 'rmse_omega_m rises by <= 0\.003' failed "
                                            r"\(FP32 0\.0\d+, INT8 0\.\d+"):
        q.quantize("cosmo-cnn", out, validation_n=200, calibration_inputs=cosmo_inputs * 1e3)
    assert not out.exists()


def test_constant_calibration_is_refused(tmp_path, cosmo_inputs):
    out = tmp_path / "cosmo-int8"
    with pytest.raises(AstrocatError, match="cannot calibrate"):
        q.quantize("cosmo-cnn", out, calibration_inputs=np.full_like(cosmo_inputs, 0.5))
    assert not out.exists()


def test_reserved_seeds_are_refused(tmp_path):
    for seed in (0, 98, 99, 2026):  # training, evaluation (98 + 1), sample
        with pytest.raises(AstrocatError, match="need surveys of their own"):
            q.quantize("cosmo-cnn", tmp_path / "x", seed=seed)
    assert not (tmp_path / "x").exists()


def test_compile_int8_writes_a_checked_variant(tmp_path, monkeypatch):
    """The whole path, through the generator `astrocat compile` prints (a smaller
    validation survey, to stay quick)."""
    from astrocat.models.card import load_card
    from astrocat.models.compile import compile_model

    monkeypatch.setitem(q.SURVEYS, "cosmology", q.Survey("fields", 200))
    out = tmp_path / "cosmo-int8"
    with pytest.raises(AstrocatError, match="TensorRT INT8"):
        list(compile_model("cosmo-cnn", out, True, "int8", 256))
    lines = list(compile_model("cosmo-cnn", out, None, "int8", 256))
    assert any("rmse_omega_m rises by <= 0.003" in line and "pass" in line for line in lines)
    assert lines[-2] == f"card: {out / 'card.toml'}"
    # the variant's features differ from FP32's: its own reference is the next step
    assert lines[-1].startswith("next: astrocat models reference cosmo-cnn-int8 --data ")
    assert "SIMULATED" in lines[-1]
    card = load_card(out)
    card.verify()
    check_graph(card)
    assert card.name == "cosmo-cnn-int8" and card.default_for == ()
    assert card.raw["quantization"]["validation"]["n"] == 200
    assert card.raw["quantization"]["speed"]["threads"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["card.toml", "model.onnx"]


def test_int8_run_says_why_a_model_stayed_fp32(tmp_path, monkeypatch):
    """`infer --precision int8` on a CPU like the AVX-512 VNNI one the variants were
    re-checked on: images run gz2-cnn-int8, spectra stay redshift-cnn1d, and the
    catalog's provenance says why (its INT8 ran slower than FP32 there); an FP32 run
    carries no such note."""
    import shutil

    import pyarrow.parquet as pq

    from astrocat import api
    from astrocat.catalog.reader import provenance

    monkeypatch.setattr(zoo, "instruction_sets",
                        lambda: ("avx2", "avx512f", "avx512_vnni", "avx_vnni"))
    src = Path(__file__).resolve().parents[1] / "examples" / "sample"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in sorted((src / "galaxies").glob("*.jpg"))[:3]:
        shutil.copy(p, inputs)
    shutil.copy(src / "spectra" / "spectra.parquet", inputs)

    run = api.infer(inputs, tmp_path / "int8.parquet", precision="int8", progress=False)
    assert [line for line in run.lines() if line.startswith("precision:")] == [
        f"precision: redshift-cnn1d ran in FP32 ({run.precision['redshift-cnn1d']})"]
    models = provenance(pq.read_schema(tmp_path / "int8.parquet"))["models"]
    assert set(models) == {"gz2-cnn-int8", "redshift-cnn1d"}
    assert "precision_reason" not in models["gz2-cnn-int8"]
    why = models["redshift-cnn1d"]["precision_reason"]
    assert why.startswith("redshift-cnn1d-int8 ran at 0.") and "x FP32" in why
    assert "VNNI" in why

    run = api.infer(inputs, tmp_path / "fp32.parquet", progress=False)
    assert run.precision == {} and not any(x.startswith("precision:") for x in run.lines())
    models = provenance(pq.read_schema(tmp_path / "fp32.parquet"))["models"]
    assert set(models) == {"gz2-cnn", "redshift-cnn1d"}
    assert all("precision_reason" not in m for m in models.values())


def test_recheck_finds_a_users_source_model_beside_its_variant(tmp_path, monkeypatch):
    """A variant of a user's own model (``compile --precision int8`` writes it beside the
    model's folder) is re-checked against that model; one whose model is neither beside
    it nor bundled is refused, saying where to put it."""
    import shutil

    from astrocat.models.card import load_card, write_card

    monkeypatch.setattr(zoo, "instruction_sets", lambda: ("avx2", "test_only_set"))
    shutil.copytree(bundled()["cosmo-cnn"].directory, tmp_path / "my-cosmo")
    raw = load_card(tmp_path / "my-cosmo").raw
    write_card({**raw, "name": "my-cosmo", "default_for": []}, tmp_path / "my-cosmo")
    variant = tmp_path / "my-cosmo-int8"
    shutil.copytree(bundled()["cosmo-cnn-int8"].directory, variant)
    raw = load_card(variant).raw
    quant = raw["quantization"]
    quant["source_model"] = "my-cosmo"
    quant["validation"]["data"] = quant["validation"]["data"].replace("--n 1000", "--n 100")
    write_card({**raw, "name": "my-cosmo-int8"}, variant)

    entry = q.run_steps(q.recheck_steps(str(variant)))
    assert entry["passed"] and entry["instruction_sets"] == ["avx2", "test_only_set"]

    shutil.rmtree(tmp_path / "my-cosmo")
    with pytest.raises(AstrocatError, match="neither beside it .* nor bundled"):
        q.run_steps(q.recheck_steps(str(variant)))

