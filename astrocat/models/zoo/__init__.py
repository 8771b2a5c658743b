"""Bundled models: one folder each, weights plus ``card.toml`` (see the README)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from astrocat.errors import CardError
from astrocat.kinds import PLANE_KINDS, Kind
from astrocat.models.card import CARD_FILENAME, ModelCard, load_card


def zoo_root() -> Path:
    return Path(str(resources.files("astrocat.models.zoo")))


@cache
def bundled() -> dict[str, ModelCard]:
    """Every bundled model's card, by name."""
    cards = {}
    for sub in sorted(zoo_root().iterdir()):
        if (sub / CARD_FILENAME).is_file():
            card = load_card(sub)
            cards[card.name] = card
    return cards


def resolve(name_or_path: str) -> ModelCard:
    """A bundled model by name, or a user's model by card path or model directory."""
    if name_or_path in bundled():
        return bundled()[name_or_path]
    path = Path(name_or_path)
    if path.exists():
        if path.suffix in (".onnx", ".keras"):
            for candidate in (path.with_suffix(".toml"), path.parent / CARD_FILENAME):
                if candidate.is_file():
                    return load_card(candidate)
            raise CardError(
                f"{path} has no model card: write {path.with_suffix('.toml')} describing its "
                "input and outputs (see `astrocat models show` for an example)"
            )
        return load_card(path)
    known = ", ".join(bundled()) or "none"
    raise CardError(f"unknown model '{name_or_path}': not a bundled model ({known}) nor a path")


def default_for(kind: Kind) -> ModelCard | None:
    """The bundled model that handles ``kind`` when the user names none."""
    for card in bundled().values():
        if kind in card.default_for:
            return card
    return None


def accepts(card: ModelCard, kind: Kind) -> bool:
    """Whether items of ``kind`` can be fed to ``card``'s model (a named model's reach)."""
    if card.input.kind == kind:
        return True
    return card.input.kind in PLANE_KINDS and kind in PLANE_KINDS


def variant(card: ModelCard, precision: str) -> ModelCard | None:
    """The bundled ``precision`` variant of a model (``gz2-cnn`` -> ``gz2-cnn-int8``):
    ``None`` when there is none (no variant passed its validation gates), where this CPU
    would not compute it as validated (8-bit weights on x86 without VNNI: see below), or
    where it ran slower than FP32 on a CPU like this one (:func:`int8_faster_here`)."""
    if precision == "fp32":
        return card
    found = bundled().get(f"{card.name}-{precision}")
    if found is not None and precision == "int8" and int8_kept_fp32(found) is not None:
        return None
    return found


def int8_kept_fp32(found: ModelCard) -> str | None:
    """Why ``--precision int8`` runs FP32 here in place of the bundled INT8 variant
    ``found`` (for the run's provenance), or None where the variant runs."""
    record = int8_record_here(found)
    if not int8_valid_here(found):
        if record is not None and record.get("passed") is False:
            return (f"{found.name} failed a science gate when re-checked on a CPU like this "
                    f"one ({record.get('cpu', '?')}, {record.get('date', '?')})")
        return (f"{found.name} has 8-bit weights, which this CPU (no VNNI) does not "
                "compute as its gates measured")
    if not int8_faster_here(found):
        speed = record["speed"]
        return (f"{found.name} ran at {speed['ms_per_item_fp32'] / speed['ms_per_item_int8']:.2f}x"
                f" FP32 (one thread) on a CPU with this one's instruction sets "
                f"({speed.get('cpu', '?')})")
    return None


def int8_valid_here(card: ModelCard) -> bool:
    """Whether this CPU computes an INT8 variant as its gates measured it. Where the
    variant's gates were run again on a CPU with this one's instruction sets
    (``astrocat models recheck-int8``), their verdict decides. Otherwise: a variant
    quantised with ``reduce_range`` (7-bit weights) is exact on every x86 CPU: a pair of
    u8 x s7 products cannot overflow the 16-bit sums of AVX2's u8s8 kernels, so with or
    without VNNI the integer arithmetic is the same. One with 8-bit weights is valid only
    where :func:`int8_as_validated` holds."""
    checked = int8_record_here(card)
    if checked is not None and "passed" in checked:
        return bool(checked["passed"])
    if card.raw.get("quantization", {}).get("reduce_range"):
        return True
    return int8_as_validated()


def int8_faster_here(card: ModelCard) -> bool:
    """Whether an INT8 variant is worth running here: not where its card's timing (one
    thread each) on a CPU with this one's instruction sets found it slower than FP32.
    Elsewhere it runs as asked. redshift-cnn1d's variant ran at 0.91x FP32 when quantised
    on an AMD EPYC without VNNI (0.79x in the benchmarks there) and at 0.78x on one with
    AVX-512 VNNI, so ``--precision int8`` keeps FP32 for spectra on such CPUs."""
    record = int8_record_here(card)
    if record is None or "speed" not in record:
        return True
    speed = record["speed"]
    return speed["ms_per_item_int8"] < speed["ms_per_item_fp32"]


def int8_record_here(card: ModelCard) -> dict | None:
    """The card's validation record taken on a CPU with this one's INT8 instruction sets:
    a ``[[quantization.checked_on]]`` entry (a later re-check), else the record of where
    it was made (``[quantization]``'s ``speed`` and ``validated_on``); None when no CPU
    like this one checked it."""
    quant = card.raw.get("quantization", {})
    here = instruction_sets()
    if here is None:
        return None
    for entry in reversed(quant.get("checked_on", [])):
        if tuple(entry.get("instruction_sets", ())) == here:
            return entry
    made = quant.get("validated_on", {})
    if "speed" in quant and tuple(made.get("instruction_sets", ())) == here:
        return {"speed": quant["speed"]}
    return None


#: ``platform.machine()`` of x86 CPUs, whose INT8 kernels depend on these sets.
X86 = ("x86_64", "amd64", "i386", "i686")
#: The x86 instruction sets INT8 kernels' speed and exactness depend on.
INT8_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni")


@cache
def instruction_sets() -> tuple[str, ...] | None:
    """Which of ``INT8_SETS`` this CPU has, in that order (None off x86, or unknown)."""
    import platform

    if platform.machine().lower() not in X86:
        return None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return None
    return tuple(s for s in INT8_SETS if s in flags)


@cache
def int8_as_validated() -> bool:
    """Whether ONNX Runtime's INT8 kernels here compute what a variant with 8-bit weights
    was validated to compute. On x86 CPUs without VNNI (AVX2 only) ONNX Runtime's u8s8
    kernels saturate 16-bit intermediate sums of 8-bit weights, and the outputs drift
    several times beyond the recorded deviation (measured: vote fractions by up to 0.20
    against a recorded 0.06), so ``--precision int8`` keeps FP32 there for such variants,
    as the run's provenance shows."""
    import platform

    if platform.machine().lower() not in X86:
        return True  # ARM's dot-product kernels do not saturate
    sets = instruction_sets()
    if sets is None:
        return False  # unknown: FP32 is the safe answer
    return "avx512_vnni" in sets or "avx_vnni" in sets
