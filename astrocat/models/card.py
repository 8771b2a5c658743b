"""Model cards: what a model eats and emits, where it came from, and how good it is.

A model is a weights file (``.onnx`` and/or ``.keras``) plus a TOML card beside it.
The pipeline reads only the card, so adding a model means adding a card, not code.
Cards are strict: every field is known (a misspelt one is an error naming the nearest
valid one), typed and range-checked here, and ``graph.check_graph`` compares the card
with the ONNX graph itself before any input is read.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from astrocat.errors import CardError
from astrocat.kernels.spectral import SpectralAxis, grid
from astrocat.kinds import PLANE_KINDS, Kind
from astrocat.sources._fits import HduName, Product
from astrocat.strict import (
    Fields,
    check_table,
    in_range,
    number,
    numbers,
    one_of,
    read_toml,
    typed,
)

CARD_FILENAME = "card.toml"
#: Science tasks a card may name (the keys of ``astrocat.science.TASKS``).
TASKS = ("morphology", "redshift", "lens", "cosmology")
#: How raw pixels/fluxes become network input (``kernels.preprocess.prepare``).
PREPROCESSINGS = ("scale_255", "scale_255_standardize", "standardize", "minmax",
                  "log_standardize")
LAYOUTS = ("NHWC", "NCHW")
#: Pillow's resampling filters, by name.
RESIZE_FILTERS = ("bilinear", "bicubic", "lanczos", "box", "hamming", "nearest")
WEIGHT_FORMATS = ("onnx", "keras")
#: Sections that are free-form records (provenance and measured figures), not checked.
FREE_SECTIONS = ("training", "metrics", "evaluation", "quantization")
#: Transformations a card may declare its task invariant under (``kernels.views``).
INVARIANCES = ("rot90", "flip")
#: What ``models.reference`` writes: the file beside the card and its digest.
REFERENCE_FILENAME = "reference.npz"


@dataclass(frozen=True)
class InputSpec:
    """The array a model expects and how raw pixels/fluxes become it."""

    kind: Kind
    shape: tuple[int, ...]  # one item as the graph takes it (its layout), no batch axis
    preprocessing: str
    layout: str = "NHWC"  # images and planes: channels last (NHWC) or first (NCHW)
    crop_fraction: float = 1.0  # centre crop of the shorter side (images), fractional
    zoom: float = 1.0  # then the central 1/zoom of that crop (images)
    resize_filter: str = "bilinear"  # resampling to the model's size (images)
    antialias: bool = True  # widen the filter when downscaling (Pillow/torchvision)
    mean: float | tuple[float, ...] = 0.0  # standardize: one value or one per channel
    std: float | tuple[float, ...] = 1.0
    # FITS products and stamps that do not match (planes: mono_image, density_field)
    hdu: HduName | None = None  # the image HDU: index, EXTNAME or (EXTNAME, EXTVER)
    plane: int | str | None = None  # a cube's plane: index or band name
    mask_hdu: HduName | None = None  # flagged pixels become NaN before the NaN policy
    mask_bits: int | None = None  # only these bits flag a pixel (default: any non-zero)
    fit: str = "crop"  # stamps of another size: crop | error | pad | resample
    fill: float = 0.0  # pad value, in network-input units (after the card's scaling)
    pixel_scale: float | None = None  # arcsec/px the model was trained at
    scale_mismatch: str = "resample"  # another scale in the WCS: resample | error
    # spectra: the wavelengths the model was trained on, their unit and medium, the flux
    # unit and calibration ([input.spectral_axis]); None: the length must match
    spectral_axis: SpectralAxis | None = None

    @property
    def product(self) -> Product:
        return Product(self.hdu, self.plane, self.mask_hdu, self.mask_bits)

    def identity(self) -> dict[str, Any]:
        """What results depend on, as a plain dict: every field, except the plane fields
        added in astrocat 0.2 while they keep their defaults, so cards written before them
        keep their result keys (a re-run after upgrading recomputes nothing)."""
        out = asdict(self)
        for name, default in PLANE_DEFAULTS.items():
            if out[name] == default:
                del out[name]
        if out["spectral_axis"] is None:  # cards without an axis keep their result keys
            del out["spectral_axis"]
        return out

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of an image or plane input."""
        s = self.shape
        if len(s) == 2:
            return s[0], s[1]
        return (s[1], s[2]) if self.layout == "NCHW" else (s[0], s[1])

    @property
    def channels(self) -> int:
        if self.kind == Kind.SPECTRUM or len(self.shape) == 2:
            return 1
        return self.shape[0] if self.layout == "NCHW" else self.shape[-1]


#: The plane fields and their defaults (astrocat 0.1 behaviour: the first 2-D image HDU,
#: larger stamps centre-cropped, smaller refused, the WCS scale not looked at).
PLANE_DEFAULTS = {f.name: f.default for f in fields(InputSpec)
                  if f.name in ("hdu", "plane", "mask_hdu", "mask_bits", "fit", "fill",
                                "pixel_scale", "scale_mismatch")}
FIT_POLICIES = ("crop", "error", "pad", "resample")
SCALE_MISMATCH = ("resample", "error")


@dataclass(frozen=True)
class OutputColumn:
    name: str
    unit: str = ""
    description: str = ""
    ucd: str = ""  # IVOA UCD1+, e.g. "src.redshift" (VO tools recognise columns by it)
    logit: bool = False  # a sigmoid score: the graph's pre-sigmoid value is kept too


@dataclass(frozen=True)
class ReferenceSpec:
    """The card's ``[reference]``: statistics of its training inputs (``models.reference``)
    for the out-of-domain distance and the TTA intervals."""

    file: str  # beside the card
    sha256: str
    features: str  # the graph tensor whose values are the penultimate features
    threshold: float  # ood_flag: ood_distance above this
    interval_coverage: float | None = None  # TTA intervals calibrated to this coverage
    record: dict[str, Any] = field(default_factory=dict, compare=False)  # provenance


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    task: str
    architecture: str
    input: InputSpec
    outputs: tuple[OutputColumn, ...]
    files: dict[str, str]  # weight format -> file name relative to the card
    sha256: dict[str, str]  # weight format -> hex digest
    directory: Path
    description: str = ""
    default_for: tuple[Kind, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    source: str = ""  # the card file, for messages
    invariances: tuple[str, ...] = ()  # transformations that leave the task unchanged
    reference: ReferenceSpec | None = None
    tta: int = 1  # views averaged per item: the run's --tta, never the card's

    @property
    def reference_path(self) -> Path | None:
        return self.directory / self.reference.file if self.reference else None

    @property
    def warnings(self) -> list[str]:
        """What training found wrong with this model (``[training] warnings``, e.g. a
        held-out score worse than its trivial baseline), for ``models show`` and ``infer``
        to repeat; empty for cards without any."""
        return [str(w) for w in self.training.get("warnings", ())]

    @property
    def logits(self) -> list[str]:
        """Outputs whose pre-sigmoid value the graph keeps (``<name>_logit`` columns)."""
        return [o.name for o in self.outputs if o.logit]

    def weights(self, fmt: str) -> Path:
        if fmt not in self.files:
            raise CardError(
                f"model '{self.name}' has no {fmt} weights (card lists: {', '.join(self.files)})"
            )
        return self.directory / self.files[fmt]

    @property
    def fingerprint(self) -> str:
        """sha256 of the primary weights: what provenance and the engine cache key on."""
        return self.sha256.get("onnx") or self.sha256["keras"]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def verify(self) -> None:
        """Check every listed weights file, and the reference statistics, exist and match
        their sha256."""
        files = dict(self.files)
        digests = dict(self.sha256)
        if self.reference is not None:
            files["reference"], digests["reference"] = self.reference.file, self.reference.sha256
        for fmt, name in files.items():
            path = self.directory / name
            if not path.is_file():
                raise CardError(f"model '{self.name}': {fmt} file {path} is missing")
            digest = sha256_file(path)
            if digest != digests[fmt]:
                what = ("the reference statistics changed after the card was written "
                        "(re-run `astrocat models reference`)" if fmt == "reference" else
                        "the weights changed after the card was written (retrain/re-export, "
                        "or update the card deliberately)")
                raise CardError(f"model '{self.name}': sha256 of {path.name} is "
                                f"{digest[:12]}..., the card says {digests[fmt][:12]}...: {what}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- the schema

def _shape(v: Any) -> str | None:
    if isinstance(v, list) and v and all(isinstance(s, int) and s > 0 for s in v):
        return None
    return f"should be a list of positive integers (the graph's input without the batch " \
           f"axis), got {v!r}"


def _positive(v: Any) -> str | None:
    if not numbers(v):
        return f"should be a number or a list of numbers (one per channel), got {v!r}"
    return None if all(x > 0 for x in (v if isinstance(v, list) else [v])) else \
        f"must be > 0, got {v!r}"


def _hdu_name(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return None
    if isinstance(v, str) and v.strip():
        return None
    if (isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)
            and not isinstance(v[1], bool)):
        return None
    return f'should be an HDU index (1), an EXTNAME ("SCI") or ["SCI", 2] (EXTNAME, EXTVER), ' \
           f"got {v!r}"


def hdu_value(v: Any) -> HduName | None:
    return (v[0], v[1]) if isinstance(v, list) else v


#: field -> (required, check). Top level, [input], each [[outputs]] entry.
TOP_FIELDS: Fields = {
    "name": (True, typed(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty "
                          "string")),
    "version": (False, typed(lambda v: isinstance(v, str), 'a string, e.g. "1.0"')),
    "task": (True, one_of(TASKS)),
    "architecture": (False, typed(lambda v: isinstance(v, str), "a string")),
    "description": (False, typed(lambda v: isinstance(v, str), "a string")),
    "default_for": (False, typed(lambda v: isinstance(v, list) and all(
        k in {x.value for x in Kind} for k in v), f"a list of kinds "
        f"({', '.join(k.value for k in Kind)})")),
    "input": (True, typed(lambda v: isinstance(v, dict), "an [input] table")),
    "outputs": (True, typed(lambda v: isinstance(v, list) and bool(v), "one [[outputs]] "
                             "table per output value, in the graph's order")),
    "files": (True, typed(lambda v: isinstance(v, dict) and bool(v) and all(
        k in WEIGHT_FORMATS and isinstance(f, str) for k, f in v.items()),
        "onnx = 'model.onnx' and/or keras = 'model.keras'")),
    "sha256": (True, typed(lambda v: isinstance(v, dict), "a [sha256] table")),
    "invariances": (False, typed(lambda v: isinstance(v, list) and all(
        x in INVARIANCES for x in v), f"a list of {', '.join(INVARIANCES)}")),
    "reference": (False, typed(lambda v: isinstance(v, dict), "a [reference] table")),
    **{s: (False, typed(lambda v: isinstance(v, dict), "a table")) for s in FREE_SECTIONS},
}
INPUT_FIELDS: Fields = {
    "kind": (True, one_of(tuple(k.value for k in Kind))),
    "shape": (True, _shape),
    "preprocessing": (True, one_of(PREPROCESSINGS)),
    "layout": (False, one_of(LAYOUTS)),
    "crop_fraction": (False, in_range(0.0, 1.0, lo_open=True)),
    "zoom": (False, in_range(1.0, None)),
    "resize_filter": (False, one_of(RESIZE_FILTERS)),
    "antialias": (False, typed(lambda v: isinstance(v, bool), "true or false")),
    "mean": (False, typed(numbers, "a number or a list of numbers (one per channel)")),
    "std": (False, _positive),
    "hdu": (False, _hdu_name),
    "plane": (False, typed(lambda v: (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
                           or (isinstance(v, str) and bool(v.strip())),
                           "a plane index (0 for the first) or a band name")),
    "mask_hdu": (False, _hdu_name),
    "mask_bits": (False, typed(lambda v: isinstance(v, int) and not isinstance(v, bool)
                               and v > 0, "a positive integer bit mask, e.g. 4095")),
    "fit": (False, one_of(FIT_POLICIES)),
    "fill": (False, typed(number, "a number (in network-input units)")),
    "pixel_scale": (False, in_range(0.0, None, lo_open=True)),
    "scale_mismatch": (False, one_of(SCALE_MISMATCH)),
    "spectral_axis": (False, typed(lambda v: isinstance(v, dict), "a table "
                                   "([input.spectral_axis])")),
}
AXIS_SCALES = ("linear", "log10", "ln")
SPECTRAL_AXIS_FIELDS: Fields = {
    "wavelength": (False, typed(lambda v: isinstance(v, list) and len(v) >= 2 and all(
        number(x) for x in v), "a list of at least 2 wavelengths")),
    "start": (False, in_range(0.0, None, lo_open=True)),
    "step": (False, in_range(0.0, None, lo_open=True)),
    "stop": (False, in_range(0.0, None, lo_open=True)),
    "n": (False, typed(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2,
                       "an integer >= 2")),
    "scale": (False, one_of(AXIS_SCALES)),
    "unit": (True, typed(lambda v: isinstance(v, str) and bool(v.strip()), 'a wavelength '
                         'unit, e.g. "nm" or "Angstrom"')),
    "medium": (True, one_of(("vacuum", "air"))),
    "flux_unit": (False, typed(lambda v: isinstance(v, str), 'a flux-density unit, e.g. '
                               '"W / (m2 nm)" (f_lambda) or "Jy" (f_nu)')),
    "calibration": (False, one_of(("absolute", "internal", "any"))),
}
#: A UCD's shape; the words themselves are checked against UCD1+ by ``models check``.
UCD_SYNTAX = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*(;[A-Za-z][A-Za-z0-9_.-]*)*")
OUTPUT_FIELDS: Fields = {
    "name": (True, typed(lambda v: isinstance(v, str) and bool(v.strip()), "a column name")),
    "unit": (False, typed(lambda v: isinstance(v, str), 'a string ("" for none)')),
    "description": (False, typed(lambda v: isinstance(v, str), "a string")),
    "ucd": (False, typed(lambda v: isinstance(v, str) and bool(UCD_SYNTAX.fullmatch(v)),
                         'an IVOA UCD1+: words joined by ";", e.g. "src.redshift" or '
                         '"stat.probability;src.class"')),
    "logit": (False, typed(lambda v: isinstance(v, bool), "true (the output is a sigmoid "
                           "score; keep the graph's pre-sigmoid value) or false")),
}
REFERENCE_FIELDS: Fields = {
    "file": (True, typed(lambda v: isinstance(v, str) and bool(v), "a file name")),
    "sha256": (True, typed(lambda v: isinstance(v, str) and len(v) == 64,
                           "a 64-character hex digest")),
    "features": (True, typed(lambda v: isinstance(v, str) and bool(v), "a graph tensor "
                             "name")),
    "threshold": (True, in_range(0.0, None, lo_open=True)),
    "quantile": (False, in_range(0.0, 1.0, lo_open=True)),
    "interval_coverage": (False, in_range(0.0, 1.0, lo_open=True)),
    **{k: (False, lambda v: None) for k in (
        "method", "data", "command", "n_fit", "n_calibration", "in_domain_flagged",
        "seconds", "engine")},
}


def _reference(raw: dict[str, Any] | None, where: str) -> ReferenceSpec | None:
    if raw is None:
        return None
    check_table(raw, REFERENCE_FIELDS, f"{where} [reference]", CardError)
    cov = raw.get("interval_coverage")
    return ReferenceSpec(raw["file"], raw["sha256"], raw["features"], float(raw["threshold"]),
                         float(cov) if cov is not None else None, dict(raw))


def _per_channel(value: Any, channels: int, key: str, where: str) -> float | tuple[float, ...]:
    if not isinstance(value, list):
        return float(value)
    if len(value) == 1:
        return float(value[0])
    if len(value) != channels:
        raise CardError(f"{where}: {key} has {len(value)} values but the input has "
                        f"{channels} channel(s): give one value, or one per channel")
    return tuple(float(x) for x in value)


def _input_spec(inp: dict[str, Any], where: str) -> InputSpec:
    check_table(inp, INPUT_FIELDS, where, CardError)
    kind, shape = Kind(inp["kind"]), tuple(inp["shape"])
    layout = inp.get("layout", "NHWC")
    spec = InputSpec(kind=kind, shape=shape, preprocessing=inp["preprocessing"], layout=layout,
                     crop_fraction=float(inp.get("crop_fraction", 1.0)),
                     zoom=float(inp.get("zoom", 1.0)),
                     resize_filter=inp.get("resize_filter", "bilinear"),
                     antialias=inp.get("antialias", True))
    if kind == Kind.SPECTRUM:
        if sum(s > 1 for s in shape) != 1 or len(shape) > 2:
            raise CardError(f"{where}: shape {list(shape)}: a spectrum model takes "
                            "[n], [n, 1] or [1, n] flux samples")
    else:
        if len(shape) not in (2, 3):
            raise CardError(f"{where}: shape {list(shape)}: an image model takes "
                            "[height, width, channels] (layout NHWC) or [channels, height, "
                            "width] (layout NCHW)")
        want = 3 if kind == Kind.RGB_IMAGE else 1
        if spec.channels != want:
            other = "NCHW" if layout == "NHWC" else "NHWC"
            flipped = InputSpec(kind, shape, spec.preprocessing, layout=other)
            hint = (f"; did you mean layout = \"{other}\"?" if flipped.channels == want
                    else "")
            raise CardError(f"{where}: shape {list(shape)} with layout = \"{layout}\" "
                            f"has {spec.channels} channels; a {kind.value} model takes "
                            f"{want}{hint}")
        h, w = spec.image_size
        if kind == Kind.RGB_IMAGE and h != w:
            raise CardError(f"{where}: shape {list(shape)}: astrocat crops a square "
                            "from each image, so the model's height and width must be equal")
    if kind != Kind.RGB_IMAGE and inp.get("layout") is not None and kind not in PLANE_KINDS:
        raise CardError(f"{where}: layout applies to images, not {kind.value} inputs")
    plane_keys = [k for k in PLANE_DEFAULTS if k in inp]
    if plane_keys and kind not in PLANE_KINDS:
        raise CardError(f"{where}: {plane_keys[0]} applies to single-band planes (mono_image, "
                        f"density_field), not {kind.value} inputs")
    if "mask_bits" in inp and "mask_hdu" not in inp:
        raise CardError(f"{where}: mask_bits needs mask_hdu (the HDU holding the flags)")
    if inp.get("fit") == "pad" and inp["preprocessing"] == "minmax":
        raise CardError(f"{where}: fit = \"pad\" needs a fill value in network-input units, "
                        "which minmax preprocessing (scaled per item) does not define")
    if "scale_mismatch" in inp and "pixel_scale" not in inp:
        raise CardError(f"{where}: scale_mismatch needs pixel_scale (arcsec/px the model "
                        "was trained at)")
    spec = replace(spec, hdu=hdu_value(inp.get("hdu")), plane=inp.get("plane"),
                   mask_hdu=hdu_value(inp.get("mask_hdu")), mask_bits=inp.get("mask_bits"),
                   fit=inp.get("fit", "crop"), fill=float(inp.get("fill", 0.0)),
                   pixel_scale=(float(inp["pixel_scale"]) if "pixel_scale" in inp else None),
                   scale_mismatch=inp.get("scale_mismatch", "resample"))
    if "spectral_axis" in inp:
        if kind != Kind.SPECTRUM:
            raise CardError(f"{where}: spectral_axis applies to spectrum models, not "
                            f"{kind.value} inputs")
        spec = replace(spec, spectral_axis=_spectral_axis(inp["spectral_axis"], max(shape),
                                                          f"{where} [input.spectral_axis]"))
    channels = spec.channels
    mean = _per_channel(inp.get("mean", 0.0), channels, "mean", where)
    std = _per_channel(inp.get("std", 1.0), channels, "std", where)
    return replace(spec, mean=mean, std=std)


#: Unit strings astropy is known to parse as a wavelength, and as a flux density: a card
#: using them is checked without importing astropy.units (a third of a second per run);
#: any other string is checked by astropy (``tests/test_spectra_fits.py`` checks these).
KNOWN_WAVELENGTH_UNITS = frozenset({"nm", "Angstrom", "AA", "um", "micron", "m", "cm"})
KNOWN_FLUX_UNITS = frozenset({"W / (m2 nm)", "erg / (s cm2 Angstrom)", "Jy", "mJy",
                              "W / (m2 Hz)", "erg / (s cm2 Hz)"})


def _spectral_axis(raw: dict[str, Any], n_model: int, where: str) -> SpectralAxis:
    """The axis a spectrum model was trained on: ``wavelength`` (explicit), or ``start``,
    ``n`` and ``step`` or ``stop`` on a ``scale`` (linear, log10, ln)."""
    check_table(raw, SPECTRAL_AXIS_FIELDS, where, CardError)
    if "wavelength" in raw:
        if {"start", "step", "stop", "n"} & set(raw):
            raise CardError(f"{where}: give wavelength, or start/n/step (or stop), not both")
        lam = tuple(float(x) for x in raw["wavelength"])
    elif "start" in raw and "n" in raw and ("step" in raw) != ("stop" in raw):
        lam = grid(float(raw["start"]), raw["n"], raw.get("step"), raw.get("stop"),
                   raw.get("scale", "linear"))
    else:
        raise CardError(f"{where}: give the wavelengths (wavelength = [...]) or start, n and "
                        "one of step or stop (with scale linear, log10 or ln)")
    if len(lam) != n_model:
        raise CardError(f"{where}: {len(lam)} wavelengths for a model of {n_model} flux "
                        "samples")
    for key in ("unit", "flux_unit"):
        if raw.get(key) and raw[key] not in (KNOWN_WAVELENGTH_UNITS if key == "unit"
                                             else KNOWN_FLUX_UNITS):
            from astropy import units as u  # 0.3 s: only for units not already known

            try:
                unit = u.Unit(raw[key])
            except ValueError as exc:
                raise CardError(f"{where}: {key} {raw[key]!r} is not a unit astropy "
                                f"knows ({exc})") from exc
            kind = "length" if key == "unit" else None
            if kind and not unit.is_equivalent(u.m):
                raise CardError(f"{where}: unit {raw[key]!r} is not a wavelength unit")
    return SpectralAxis(lam, raw["unit"], raw["medium"], raw.get("flux_unit", ""),
                        raw.get("calibration", "any"))


def _outputs(raw: list[Any], where: str) -> tuple[OutputColumn, ...]:
    from astrocat.catalog.schema import BASE_NAMES

    outputs = []
    seen: set[str] = set()
    for i, o in enumerate(raw):
        w = f"{where} [[outputs]] #{i + 1}"
        if not isinstance(o, dict):
            raise CardError(f"{w}: should be a table with name, unit, description")
        check_table(o, OUTPUT_FIELDS, w, CardError)
        name = o["name"]
        if name in BASE_NAMES:
            raise CardError(f"{w}: name '{name}' is a catalog column astrocat writes itself "
                            f"({', '.join(sorted(BASE_NAMES))}); rename the output")
        if name in seen:
            raise CardError(f"{w}: name '{name}' is used more than once; every output needs "
                            "its own column name")
        seen.add(name)
        outputs.append(OutputColumn(name, o.get("unit", ""), o.get("description", ""),
                                    o.get("ucd", ""), o.get("logit", False)))
    return tuple(outputs)


def parse_card(data: dict[str, Any], directory: Path, where: str) -> ModelCard:
    """Validate a card's TOML content; every problem is a CardError naming the field."""
    check_table(data, TOP_FIELDS, where, CardError)
    spec = _input_spec(data["input"], f"{where} [input]")
    outputs = _outputs(data["outputs"], where)
    files, digests = data["files"], data["sha256"]
    warnings = data.get("training", {}).get("warnings", [])
    if not (isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)):
        raise CardError(f"{where} [training]: warnings should be a list of strings, "
                        f"got {warnings!r}")
    check_table(digests, {fmt: (fmt in files, typed(
        lambda v: isinstance(v, str) and len(v) == 64, "a 64-character hex digest"))
        for fmt in WEIGHT_FORMATS}, f"{where} [sha256]", CardError)
    return ModelCard(
        name=data["name"],
        version=data.get("version", "0"),
        task=data["task"],
        architecture=data.get("architecture", ""),
        input=spec,
        outputs=outputs,
        files=dict(files),
        sha256=dict(digests),
        directory=directory,
        description=data.get("description", ""),
        default_for=tuple(Kind(k) for k in data.get("default_for", [])),
        training=dict(data.get("training", {})),
        metrics=dict(data.get("metrics", {})),
        raw=data,
        source=where,
        invariances=tuple(data.get("invariances", ())),
        reference=_reference(data.get("reference"), where),
    )


def load_card(path: Path) -> ModelCard:
    """Read a card file, or the ``card.toml`` inside a model directory."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILENAME
    data = read_toml(path, CardError, "model card")
    return parse_card(data, path.parent, str(path))


def write_card(data: dict[str, Any], directory: Path) -> Path:
    """Write a card, filling in sha256 of every listed weights file."""
    import tomli_w

    data = dict(data)
    data["sha256"] = {fmt: sha256_file(directory / f) for fmt, f in data["files"].items()}
    parse_card(data, directory, "new card")  # refuse to write an invalid card
    path = directory / CARD_FILENAME
    # whole or not at all: a card rewritten in place (a re-check, a reference) is never
    # left half-written by an interrupted run
    partial = path.with_name(f".{CARD_FILENAME}.partial")
    partial.write_text(tomli_w.dumps(data))
    partial.replace(path)
    return path
