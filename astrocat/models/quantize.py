"""``astrocat compile MODEL --precision int8``: a cheaper INT8 variant, validated before
it is written.

Static quantisation in ONNX Runtime's QDQ form: weights INT8 per output channel,
activations with ranges calibrated on the model's *own* simulated survey, preprocessed
exactly as its card says (``datasets.load_task`` then ``preprocess.prepare``: what
``infer`` feeds it). Static ranges let ONNX Runtime fuse each quantised Conv/Gemm into
one INT8 kernel (QLinearConv, QGemm); dynamic quantisation, measured before, is the wrong
tool for convolutions, where these networks spend their time.

The variant is then scored against FP32 on a separate held-out simulated sample (another
fresh seed) with the task's own statistics (``train.evaluate``, ``stats``), and judged
by the task's gates (:data:`GATES`). A variant that fails a gate is refused: an
:class:`~astrocat.errors.AstrocatError` names the gate and its numbers, and nothing is
written. A variant that passes gets its own card (``<name>-int8``, ONNX only, never a
default) whose ``[quantization]`` table records how it was made and what it costs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astrocat.errors import AstrocatError
from astrocat.models.card import ModelCard, load_card, write_card

#: Seeds of the simulated surveys used here and nowhere else (training uses 0, the
#: evaluation surveys 99, the sample 2026): calibration, and validation = calibration + 1.
CALIBRATION_SEED = 4001
#: Calibration items (ONNX Runtime's usual few hundred; ranges settle well before that).
CALIBRATION_N = 256
#: Single-thread timing: items per batch (as ``infer`` batches) and interleaved rounds.
TIMING_BATCH, TIMING_ROUNDS = 128, 7
#: Paired bootstrap resamples for the noise of each gated difference.
BOOTSTRAP = 200


@dataclass(frozen=True)
class Survey:
    """Which simulator makes a task's data, and how many held-out items validate it."""

    simulate: str  # ``astrocat simulate`` kind
    validation_n: int
    options: dict[str, Any] = field(default_factory=dict)


#: Validation sizes. The gates compare INT8 with FP32 on the *same* objects, so what must
#: be small is the noise of the paired difference (recorded per gate as ``noise``, a
#: bootstrap standard deviation); these n put it at least ~10x under each limit. The
#: merger gate is the exception: FP32's 68.3 % interval narrows as 1/sqrt(n), so n is the
#: evaluation survey's 3000 (scripts/evaluate_zoo.sh), at which the interval is about +-12
#: galaxies at the injected 5 % and the gate reads "no more than ~12 net galaxies cross
#: the 0.3 threshold".
SURVEYS: dict[str, Survey] = {
    "morphology": Survey("galaxies", 3000, {"merger_fraction": 0.05}),
    "lens": Survey("lenses", 2000),
    "redshift": Survey("spectra", 10000),
    "cosmology": Survey("fields", 1000),
}


@dataclass(frozen=True)
class Gate:
    """One rule for INT8 against FP32 on the same validation sample."""

    metric: str
    rule: str  # rise: INT8 - FP32 <= limit; drop: FP32 - INT8 <= limit; abs: |INT8| <= limit;
    #            inside: INT8 within FP32's interval (metric_lower, metric_upper)
    limit: float = 0.0

    @property
    def text(self) -> str:
        return {"rise": f"{self.metric} rises by <= {self.limit}",
                "drop": f"{self.metric} drops by <= {self.limit}",
                "abs": f"|{self.metric}| <= {self.limit}",
                "inside": f"INT8 {self.metric} inside FP32's 68.3% Beta interval"}[self.rule]

    def change(self, fp32: dict[str, float], int8: dict[str, float]) -> float:
        """The gated quantity: positive is worse, except ``abs``/``inside`` (a value)."""
        a, b = fp32[self.metric], int8[self.metric]
        return {"rise": b - a, "drop": a - b, "abs": abs(b), "inside": b - a}[self.rule]

    def passed(self, fp32: dict[str, float], int8: dict[str, float]) -> bool:
        if self.rule == "inside":
            lo, hi = fp32[f"{self.metric}_lower"], fp32[f"{self.metric}_upper"]
            return bool(lo <= int8[self.metric] <= hi)
        return bool(self.change(fp32, int8) <= self.limit)


#: The gates, per task: all must pass for a variant to be written.
GATES: dict[str, tuple[Gate, ...]] = {
    "morphology": (Gate("rmse", "rise", 0.005), Gate("merger_fraction", "inside")),
    "lens": (Gate("auroc", "drop", 0.005),),
    "redshift": (Gate("sigma_nmad", "rise", 0.001), Gate("bias", "abs", 0.002)),
    "cosmology": (Gate("rmse_omega_m", "rise", 0.003), Gate("rmse_sigma_8", "rise", 0.003)),
}


@dataclass(frozen=True)
class Recipe:
    """How a graph is quantised. Chosen by measurement on the four bundled models (256
    calibration items, the validation surveys above, one thread on an AMD EPYC with VNNI):

    * MinMax ranges. Entropy gave the same figures at 1.3-1.4x the calibration time;
      Percentile (99.999) lowered cosmo-cnn's and lens-lastro's deviations but raised
      gz2-cnn's (max 0.095 against 0.060) and tripled lens-lastro's AUROC drop (0.0013
      against 0.0004); Distribution deviated more on every model.
    * 7-bit weights (``reduce_range``), since 0.4: on x86 CPUs without VNNI (AVX2 only;
      many cloud and HPC nodes) ONNX Runtime's u8s8 kernels add pairs of u8 x s8 products
      in 16 bits and saturate with 8-bit weights, so a variant with them computed what its
      gates measured only on VNNI CPUs and ``--precision int8`` kept FP32 elsewhere. With
      7-bit weights no pair can saturate and every x86 CPU computes the same integers.
      Measured on a 2-core AMD EPYC without VNNI (2026-12-07): every gate passes; the
      deviations from FP32 grow (gz2-cnn max 0.10 against 0.06 with 8-bit weights on a
      VNNI CPU), the speed-up stays (``[quantization.speed]`` of each card).
    * Conv/Gemm/MatMul only: INT8 Add/Mul/MaxPool/Relu as well (gz2-cnn 2.5x instead of
      2.1x) doubled cosmo-cnn's deviation and put gz2-cnn's decision-tree arithmetic in
      INT8 (max deviation 0.13).
    * Per-layer sensitivity decides which of those layers stay float (``sensitivity``).
      Folding post-ReLU batch-norm scales into the layer before (cross-layer
      equalisation) made lens-lastro's activations harder to quantise, not easier.
    """

    method: str = "MinMax"  # onnxruntime CalibrationMethod name
    op_types: tuple[str, ...] = ("Conv", "Gemm", "MatMul")  # MatMul+Add become Gemm
    activations: str = "QUInt8"  # weights are always QInt8, per output channel
    reduce_range: bool = True  # 7-bit weights: exact u8s8 on x86 with or without VNNI
    #: A layer stays float when INT8 in it alone moves the outputs by more than this
    #: fraction of their spread. Measured: lens-lastro's first five convolutions 0.63-1.45
    #: (likely because faint arcs beside bright galaxies need more than 256 linear levels),
    #: every other layer of the four bundled models <= 0.05.
    sensitivity: float = 0.1

    def describe(self) -> dict[str, Any]:
        return {"calibration_method": self.method, "op_types": list(self.op_types),
                "activations": self.activations, "weights": "QInt8, per channel",
                "reduce_range": self.reduce_range, "sensitivity_limit": self.sensitivity}


#: Per-task departures from the default recipe, each for a measured reason.
RECIPES: dict[str, Recipe] = {
    # INT8 dense layers clipped the rare high-z spectra that 256 calibration spectra do
    # not reach (|dz| up to 0.14 at z = 0.58, 99.9th percentile 0.067, on 10,000) while
    # saving no time (~1 % of the network's multiply-adds): convolutions only (max
    # 0.006-0.008 on two surveys).
    "redshift": Recipe(op_types=("Conv",)),
}


def recipe_for(task: str) -> Recipe:
    return RECIPES.get(task, Recipe())


# --------------------------------------------------------------------------- data


def _command(survey: Survey, n: int, seed: int) -> str:
    opts = "".join(f" --{k.replace('_', '-')} {v}" for k, v in survey.options.items())
    return f"astrocat simulate {survey.simulate} --n {n} --seed {seed}{opts}"


def survey_inputs(card: ModelCard, n: int, seed: int, workdir: Path
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Simulate ``n`` items of the card's task; network inputs (as ``infer`` prepares them,
    items it would refuse dropped) and their truth."""
    from astrocat.kernels.preprocess import prepare
    from astrocat.models.datasets import load_task
    from astrocat.simulate import simulate

    survey = SURVEYS[card.task]
    folder = workdir / f"{survey.simulate}-{seed}"
    path = simulate(survey.simulate, n, folder, seed, progress=False, **survey.options)
    x, y = load_task(card.task, card.input, path if card.task == "redshift" else folder)
    x = prepare(x, card.input)
    ok = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    return x[ok], y[ok]


# --------------------------------------------------------------------------- quantising


def _outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """A graph's outputs, optimised as ``infer`` runs it (QDQ pairs fused to INT8 kernels)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
    return np.asarray(y, np.float64).reshape(len(x), -1)


def quantize_graph(src: Path, dst: Path, x: np.ndarray, recipe: Recipe) -> dict[str, float]:
    """Static QDQ quantisation of ``src`` into ``dst``, calibrated on inputs ``x``; returns
    each weighted layer's sensitivity (layers above ``recipe.sensitivity`` stay float).

    A layer's sensitivity is the rms change of the outputs when it alone is INT8, over the
    spread (standard deviation) of the FP32 outputs, both on ``x``.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = iter([{name: x[i:i + 32]} for i in range(0, len(x), 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    pre, ranges = dst.with_name("pre.onnx"), dst.with_name("ranges.json")
    # ORT's advised pre-pass (graph optimisation, ONNX shape inference); the symbolic
    # pass needs sympy and nothing here has a symbolic dimension but the batch.
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    model = onnx.load(str(pre))
    layers = [n.name for n in model.graph.node if n.op_type in recipe.op_types]
    if not layers:
        raise AstrocatError(f"the graph has no {'/'.join(recipe.op_types)} layer to quantise")

    def run(float_layers: list[str]) -> np.ndarray:
        quantize_static(
            str(pre), str(dst), Batches(model.graph.input[0].name),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(recipe.op_types),
            per_channel=True, reduce_range=recipe.reduce_range,
            activation_type=QuantType[recipe.activations], weight_type=QuantType.QInt8,
            nodes_to_exclude=float_layers, calibrate_method=CalibrationMethod[recipe.method],
            calibration_cache_path=str(ranges))  # calibrated once, reused per trial
        return _outputs(dst, x)

    ref = _outputs(pre, x)
    spread = float(ref.std(axis=0).mean())
    if not spread > 0:
        raise AstrocatError("the calibration inputs give every item the same outputs: they "
                            "cannot calibrate anything (constant or degenerate inputs?)")
    sensitivity = {}
    for name in layers:
        y = run([k for k in layers if k != name])
        sensitivity[name] = float(np.sqrt(np.mean((y - ref) ** 2)) / spread)
    keep = [k for k in layers if sensitivity[k] > recipe.sensitivity]
    if len(keep) == len(layers):
        raise AstrocatError(f"every layer is too sensitive for INT8 (each alone moves the "
                            f"outputs by > {recipe.sensitivity} of their spread): no variant")
    run(keep)
    pre.unlink()
    ranges.unlink()
    return sensitivity


# --------------------------------------------------------------------------- judging


def task_metrics(task: str, pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The task's held-out figures (``train.evaluate``), plus the merger fraction with its
    Beta 68.3 % interval for morphology (the science report's definition)."""
    from astrocat.kernels.gz_tree import galaxy_zoo2
    from astrocat.models.train import evaluate
    from astrocat.science import morphology, stats
    from astrocat.science.morphology import MERGER_COLUMN

    out = {k: float(v) for k, v in evaluate(task, pred, truth, truth).items()
           if not k.startswith(("baseline", "n_"))}
    if task == "morphology":
        opts = {o.name: o.default for o in morphology.OPTIONS}
        m = pred[:, galaxy_zoo2().index(MERGER_COLUMN)]
        f = stats.beta_fraction(int((m >= opts["merger_threshold"]).sum()), len(m),
                                opts["confidence"])
        out |= {"merger_fraction": f.value, "merger_fraction_lower": f.lower,
                "merger_fraction_upper": f.upper}
    return out


def judge(task: str, a: np.ndarray, b: np.ndarray, truth: np.ndarray, seed: int
          ) -> tuple[dict[str, float], dict[str, float], list[dict[str, Any]]]:
    """FP32 (``a``) and INT8 (``b``) figures against the truth, and one row per gate: the
    rule, both figures, the change, its noise and the verdict.

    ``noise`` is the bootstrap standard deviation of the change, resampling objects
    paired (the same ones for both models): how much of a change is sampling luck.
    """
    fp32, int8 = task_metrics(task, a, truth), task_metrics(task, b, truth)
    gates = GATES[task]
    rng = np.random.default_rng(seed)
    changes = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, len(truth), len(truth))
        fa, fb = task_metrics(task, a[i], truth[i]), task_metrics(task, b[i], truth[i])
        changes.append([g.change(fa, fb) for g in gates])
    noise = np.std(np.asarray(changes), axis=0)
    rows = [{"gate": g.text, "metric": g.metric, "rule": g.rule, "limit": g.limit,
             "fp32": fp32[g.metric], "int8": int8[g.metric], "change": g.change(fp32, int8),
             "noise": float(sd), "passed": g.passed(fp32, int8)}
            for g, sd in zip(gates, noise, strict=True)]
    return fp32, int8, rows


def _ms_per_item(cards: list[ModelCard], x: np.ndarray) -> list[float]:
    """Single-thread ms per item of each card: the best of interleaved rounds (other work
    on the machine only ever adds time; interleaving spreads drift over all alike)."""
    from astrocat.engines.base import open_engine

    engines = [open_engine(c, "onnxruntime", threads=1) for c in cards]
    batch = x[:TIMING_BATCH]
    times: list[list[float]] = [[] for _ in cards]
    for e in engines:
        e.predict(batch)  # warm-up
    for _ in range(TIMING_ROUNDS):
        for e, t in zip(engines, times, strict=True):
            t0 = time.perf_counter()
            e.predict(batch)
            t.append((time.perf_counter() - t0) * 1e3 / len(batch))
    return [min(t) for t in times]


# --------------------------------------------------------------------------- the command


def _round(v: Any) -> Any:
    """Six significant figures: what a card needs, without float noise."""
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def _check_seeds(seed: int) -> None:
    from astrocat.simulate import EVALUATION_SEED, SAMPLE_SEED, TRAINING_SEED

    reserved = {TRAINING_SEED: "training", EVALUATION_SEED: "the evaluation surveys",
                SAMPLE_SEED: "the sample"}
    for s in (seed, seed + 1):
        if s in reserved:
            raise AstrocatError(f"seed {s} is {reserved[s]}'s: calibration (seed) and "
                                "validation (seed + 1) need surveys of their own")


def quantize_steps(model: str, out: Path | None = None, calibration_n: int = CALIBRATION_N,
                   validation_n: int | None = None, seed: int = CALIBRATION_SEED, *,
                   recipe: Recipe | None = None, calibration_inputs: np.ndarray | None = None,
                   ) -> Generator[str, None, ModelCard]:
    """:func:`quantize`, yielding a progress line per step; returns the written card.

    ``calibration_inputs``: network inputs to calibrate on instead of the simulated survey
    (experiments and tests); the card records that they were supplied.
    """
    import onnxruntime as ort

    from astrocat.models.graph import check_graph
    from astrocat.models.zoo import resolve

    card = resolve(model)
    card.verify()
    if "onnx" not in card.files:
        raise AstrocatError(f"model '{card.name}' has no ONNX graph to quantise "
                            "(`astrocat compile` it to ONNX first)")
    check_graph(card)
    if card.task not in SURVEYS:
        raise AstrocatError(f"no simulated survey for task '{card.task}'")
    _check_seeds(seed)
    survey, recipe = SURVEYS[card.task], recipe or recipe_for(card.task)
    validation_n = validation_n or survey.validation_n
    name = f"{card.name}-int8"
    out = Path(out) if out else card.directory.parent / name

    with tempfile.TemporaryDirectory(prefix="astrocat-int8-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        if calibration_inputs is None:
            x_cal, _ = survey_inputs(card, calibration_n, seed, work)
            cal_data = f"SIMULATED: {_command(survey, calibration_n, seed)}"
        else:
            x_cal = np.asarray(calibration_inputs, np.float32)
            cal_data = "caller-supplied network inputs"
        yield f"calibration: {len(x_cal)} items ({cal_data}), {time.perf_counter() - t0:.1f}s"

        variant = work / "variant"
        variant.mkdir()
        t0 = time.perf_counter()
        sensitivity = quantize_graph(card.weights("onnx"), variant / "model.onnx", x_cal,
                                     recipe)
        in_float = [k for k, v in sensitivity.items() if v > recipe.sensitivity]
        size = {"fp32": card.weights("onnx").stat().st_size,
                "int8": (variant / "model.onnx").stat().st_size}
        yield (f"quantised ({recipe.method}, {'+'.join(recipe.op_types)}; "
               f"{len(sensitivity) - len(in_float)} of {len(sensitivity)} layers INT8): "
               f"{size['fp32'] / 1e6:.2f} MB -> {size['int8'] / 1e6:.2f} MB, "
               f"{time.perf_counter() - t0:.1f}s")

        # the variant's features differ from FP32's: its reference is its own to compute
        raw = {k: v for k, v in card.raw.items()
               if k not in ("files", "sha256", "metrics", "evaluation", "quantization",
                            "reference")}
        raw |= {"name": name, "default_for": [], "files": {"onnx": "model.onnx"},
                "description": f"{card.description} [static INT8 (QDQ) variant of "
                               f"{card.name}, validated against it; see [quantization]]"}
        write_card(raw, variant)  # provisional: the engine opens it as infer would
        int8_card = load_card(variant)

        checked = yield from validate_steps(card, int8_card, validation_n, seed + 1, work)
        failed = [g for g in checked["gates"] if not g["passed"]]
        if failed:
            raise AstrocatError(
                f"INT8 variant of '{card.name}' refused, nothing written: " + "; ".join(
                    f"gate '{g['gate']}' failed (FP32 {g['fp32']:.5f}, INT8 {g['int8']:.5f}, "
                    f"change {g['change']:+.5f})" for g in failed))
        raw["metrics"] = _round({**checked["int8"], "n_validation": checked["validation"]["n"]})
        raw["quantization"] = _round({
            "method": "static INT8 in QDQ form (onnxruntime.quantization.quantize_static)",
            **recipe.describe(),
            "onnxruntime": ort.__version__,
            "source_model": card.name,
            "source_sha256": card.fingerprint,
            "layers_in_float": in_float,
            "sensitivity": sensitivity,
            "calibration": {"n": len(x_cal), "seed": seed, "data": cal_data},
            **{k: checked[k] for k in ("validation", "fp32", "int8", "deviation", "gates",
                                       "speed")},
            "validated_on": validated_on(recipe),
            "bytes": size,
        })
        write_card(raw, variant)
        check_graph(load_card(variant))
        out.mkdir(parents=True, exist_ok=True)
        for f in ("model.onnx", "card.toml"):  # weights first: a card never points ahead
            shutil.move(variant / f, out / f)
    yield f"card: {out / 'card.toml'}"
    if card.reference is not None:  # its rows' ood_distance needs its own reference
        yield (f"next: astrocat models reference {name} --data DIR (the training sample "
               f"{card.name}'s reference was fitted on: {card.reference.record.get('data', '?')})")
    return load_card(out)


def validate_steps(card: ModelCard, int8_card: ModelCard, validation_n: int, seed: int,
                   work: Path) -> Generator[str, None, dict[str, Any]]:
    """Score ``int8_card`` against its FP32 ``card`` on the held-out simulated survey
    ``seed`` (the gates) and time both on one thread, here; yields a line per step and
    returns the record a card keeps (``validation``, ``fp32``, ``int8``, ``deviation``,
    ``gates``, ``speed``)."""
    from astrocat.engines.base import open_engine

    t0 = time.perf_counter()
    x_val, y_val = survey_inputs(card, validation_n, seed, work)
    threads = os.cpu_count() or 1
    a = open_engine(card, "onnxruntime", threads).predict(x_val)
    b = open_engine(int8_card, "onnxruntime", threads).predict(x_val)
    fp32, int8, gates = judge(card.task, a, b, y_val, seed)
    val_data = f"SIMULATED: {_command(SURVEYS[card.task], validation_n, seed)}"
    yield f"validation: {len(x_val)} items ({val_data}), {time.perf_counter() - t0:.1f}s"
    for g in gates:
        yield (f"  {g['gate']}: FP32 {g['fp32']:.5f}, INT8 {g['int8']:.5f} (noise "
               f"{g['noise']:.1e}) -> {'pass' if g['passed'] else 'FAIL'}")
    ms_fp32, ms_int8 = _ms_per_item([card, int8_card], x_val)
    batch = min(TIMING_BATCH, len(x_val))
    yield (f"speed, one thread, batch {batch}: FP32 {ms_fp32:.3f} ms/item, INT8 "
           f"{ms_int8:.3f} ms/item ({ms_fp32 / ms_int8:.2f}x)")
    diff = b.astype(np.float64) - a
    return _round({
        "validation": {"n": len(x_val), "seed": seed, "data": val_data},
        "fp32": fp32, "int8": int8,
        "deviation": {"rms": float(np.sqrt(np.mean(diff ** 2))),
                      "max_abs": float(np.abs(diff).max())},
        "gates": gates,
        "speed": {"threads": 1, "batch": batch, "timing": f"best of {TIMING_ROUNDS} "
                  "interleaved rounds", "ms_per_item_fp32": ms_fp32,
                  "ms_per_item_int8": ms_int8, "speedup": ms_fp32 / ms_int8, "cpu": _cpu()},
    })


def recheck_steps(name: str) -> Generator[str, None, dict[str, Any]]:
    """Run a written INT8 variant's gates and timing again on *this* CPU, on the same
    validation survey as when it was made, and keep the result in its card as a
    ``[[quantization.checked_on]]`` entry (one per set of INT8 instruction sets, the
    newest kept). ``--precision int8`` reads it on CPUs like this one: a variant that
    failed a gate here, or ran slower than FP32 here, keeps FP32 (``zoo.variant``).

    Why: INT8 speed and even the integers computed depend on the CPU (VNNI or not), so a
    card that records one CPU says nothing about the next kind."""
    import platform

    import onnxruntime as ort

    from astrocat.models.zoo import instruction_sets, resolve

    variant = resolve(name)
    variant.verify()
    quant = variant.raw.get("quantization")
    if not quant or "source_model" not in quant:
        raise AstrocatError(f"'{variant.name}' is not an INT8 variant written by "
                            "`astrocat compile --precision int8` (its card has no "
                            "[quantization] naming its source model)")
    source = _source_of(variant, quant["source_model"])
    source.verify()
    if source.fingerprint != quant["source_sha256"]:
        raise AstrocatError(f"'{source.name}' is not the model '{variant.name}' was made "
                            f"from (sha256 {source.fingerprint[:12]}, the card records "
                            f"{quant['source_sha256'][:12]}): quantise it again")
    seed, n = int(quant["validation"]["seed"]), _survey_size(quant, variant.task)
    with tempfile.TemporaryDirectory(prefix="astrocat-int8-") as tmp:
        checked = yield from validate_steps(source, variant, n, seed, Path(tmp))
    sets = list(instruction_sets() or ())
    entry = {"cpu": _cpu(), "machine": platform.machine().lower(), "instruction_sets": sets,
             "onnxruntime": ort.__version__, "date": time.strftime("%Y-%m-%d", time.gmtime()),
             "passed": all(g["passed"] for g in checked["gates"]), **checked}
    raw = dict(variant.raw)
    kept = [e for e in quant.get("checked_on", [])
            if (e.get("machine"), e.get("instruction_sets")) != (entry["machine"], sets)]
    raw["quantization"] = {**quant, "checked_on": [*kept, entry]}
    write_card(raw, variant.directory)
    verdict = "passed every gate" if entry["passed"] else "FAILED a gate"
    yield (f"{variant.name} on {entry['cpu']} ({', '.join(sets) or 'no x86 INT8 sets'}): "
           f"{verdict}, {checked['speed']['speedup']:.2f}x FP32; recorded in "
           f"{variant.directory / 'card.toml'} [[quantization.checked_on]]")
    return entry


def _source_of(variant: ModelCard, name: str) -> ModelCard:
    """The FP32 model a variant was made from: beside it (where ``compile --precision
    int8`` writes a variant by default, bundled or not), else a bundled model by name."""
    from astrocat.models.card import CARD_FILENAME
    from astrocat.models.zoo import bundled

    beside = variant.directory.parent / name
    if (beside / CARD_FILENAME).is_file():
        return load_card(beside)
    if name in bundled():
        return bundled()[name]
    raise AstrocatError(f"'{variant.name}' was made from '{name}', which is neither beside "
                        f"it ({beside}) nor bundled: put that model's folder there")


def _survey_size(quant: dict[str, Any], task: str) -> int:
    """How many items the validation survey a card records was simulated with (its
    command, ``... --n N ...``; the items kept may be fewer), else the task's default."""
    import re

    found = re.search(r"--n (\d+)", quant.get("validation", {}).get("data", ""))
    return int(found.group(1)) if found else SURVEYS[task].validation_n


def quantize(model: str, out: Path | None = None, calibration_n: int = CALIBRATION_N,
             validation_n: int | None = None, seed: int = CALIBRATION_SEED, *,
             recipe: Recipe | None = None, calibration_inputs: np.ndarray | None = None,
             log: Callable[[str], None] = lambda line: None) -> ModelCard:
    """Calibrate, validate and write ``<name>-int8`` (default: beside the model's folder),
    or raise ``AstrocatError`` naming the failed gate, having written nothing."""
    return run_steps(quantize_steps(model, out, calibration_n, validation_n, seed,
                                    recipe=recipe, calibration_inputs=calibration_inputs), log)


def run_steps(steps: Generator[str, None, Any],
              log: Callable[[str], None] = lambda line: None) -> Any:
    """Drive a ``*_steps`` generator to its end, handing each progress line to ``log``;
    its return value."""
    while True:
        try:
            log(next(steps))
        except StopIteration as done:
            return done.value


def validated_on(recipe: Recipe) -> dict[str, Any]:
    """Where the gates ran, and on which CPUs the variant computes what they measured."""
    import platform

    from astrocat.models.zoo import instruction_sets

    machine = platform.machine().lower()
    sets = list(instruction_sets() or ())
    return {"cpu": _cpu(), "machine": machine, "instruction_sets": sets,
            "valid_on": ("every x86-64 CPU (with or without VNNI: 7-bit weights never "
                         "saturate u8s8 sums) and ARM" if recipe.reduce_range else
                         "x86-64 CPUs with VNNI (avx512_vnni or avx_vnni), and ARM")}


def _cpu() -> str:
    """The CPU and whether it has VNNI (INT8 dot products without the saturation older x86
    CPUs risk): the speed-up, and in rare cases the results, depend on it."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                  if ln.startswith("model name")), platform.machine())
    return f"{model}, {'VNNI' if 'vnni' in info else 'no VNNI'}"
