"""Model cards: what a model eats and emits, where it came from, and how good it is.

A model is a weights file (``.onnx`` and/or ``.keras``) plus a TOML card beside it.
The pipeline reads only the card, so adding a model means adding a card, not code.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrocat.errors import CardError
from astrocat.kinds import Kind

CARD_FILENAME = "card.toml"
PREPROCESSINGS = ("scale_255", "standardize", "minmax", "log_standardize")
TASKS = ("morphology", "redshift", "lens", "cosmology")
WEIGHT_FORMATS = ("onnx", "keras")


@dataclass(frozen=True)
class InputSpec:
    """The array a model expects and how raw pixels/fluxes become it."""

    kind: Kind
    shape: tuple[int, ...]  # one item, without the batch axis
    preprocessing: str
    crop_fraction: float = 1.0  # centre crop of the shorter side before resizing (images)
    mean: float = 0.0  # for standardize / log_standardize
    std: float = 1.0


@dataclass(frozen=True)
class OutputColumn:
    name: str
    unit: str = ""
    description: str = ""


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

    def weights(self, fmt: str) -> Path:
        if fmt not in self.files:
            raise CardError(
                f"model '{self.name}' has no {fmt} weights (card lists: {', '.join(self.files)})"
            )
        return self.directory / self.files[fmt]

    @property
    def fingerprint(self) -> str:
        """sha256 of the primary weights: what provenance and caches key on."""
        return self.sha256.get("onnx") or self.sha256["keras"]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def verify(self) -> None:
        """Check every listed weights file exists and matches its sha256."""
        for fmt, name in self.files.items():
            path = self.directory / name
            if not path.is_file():
                raise CardError(f"model '{self.name}': weights file {path} is missing")
            digest = sha256_file(path)
            if digest != self.sha256[fmt]:
                raise CardError(
                    f"model '{self.name}': sha256 of {path.name} is {digest[:12]}..., the card "
                    f"says {self.sha256[fmt][:12]}...: the weights changed after the card was "
                    "written (retrain/re-export, or update the card deliberately)"
                )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _need(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in table:
        raise CardError(f"{where}: missing field '{key}'")
    value = table[key]
    if not isinstance(value, kind):
        raise CardError(f"{where}: field '{key}' should be {kind}, got {value!r}")
    return value


def parse_card(data: dict[str, Any], directory: Path, where: str) -> ModelCard:
    """Validate a card's TOML content; every problem is a CardError naming the field."""
    name = _need(data, "name", where, str)
    task = _need(data, "task", where, str)
    if task not in TASKS:
        raise CardError(f"{where}: task '{task}' is not one of {', '.join(TASKS)}")
    inp = _need(data, "input", where, dict)
    try:
        kind = Kind(_need(inp, "kind", f"{where} [input]", str))
    except ValueError as exc:
        raise CardError(
            f"{where} [input]: kind must be one of {', '.join(k.value for k in Kind)}"
        ) from exc
    shape = tuple(_need(inp, "shape", f"{where} [input]", list))
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise CardError(f"{where} [input]: shape must be a list of positive integers")
    pre = _need(inp, "preprocessing", f"{where} [input]", str)
    if pre not in PREPROCESSINGS:
        raise CardError(f"{where} [input]: preprocessing '{pre}' not in {PREPROCESSINGS}")
    spec = InputSpec(
        kind=kind,
        shape=shape,
        preprocessing=pre,
        crop_fraction=float(inp.get("crop_fraction", 1.0)),
        mean=float(inp.get("mean", 0.0)),
        std=float(inp.get("std", 1.0)),
    )
    outputs_raw = _need(data, "outputs", where, list)
    outputs = tuple(
        OutputColumn(
            name=_need(o, "name", f"{where} [[outputs]]", str),
            unit=str(o.get("unit", "")),
            description=str(o.get("description", "")),
        )
        for o in outputs_raw
    )
    if not outputs:
        raise CardError(f"{where}: [[outputs]] is empty")
    files = _need(data, "files", where, dict)
    digests = _need(data, "sha256", where, dict)
    if not files or any(f not in WEIGHT_FORMATS for f in files):
        raise CardError(f"{where} [files]: give weights as onnx = '...' and/or keras = '...'")
    for fmt in files:
        if fmt not in digests:
            raise CardError(f"{where} [sha256]: missing digest for the {fmt} weights")
    try:
        default_for = tuple(Kind(k) for k in data.get("default_for", []))
    except ValueError as exc:
        raise CardError(f"{where}: default_for lists an unknown kind ({exc})") from exc
    return ModelCard(
        name=name,
        version=str(data.get("version", "0")),
        task=task,
        architecture=str(data.get("architecture", "")),
        input=spec,
        outputs=outputs,
        files=dict(files),
        sha256=dict(digests),
        directory=directory,
        description=str(data.get("description", "")),
        default_for=default_for,
        training=dict(data.get("training", {})),
        metrics=dict(data.get("metrics", {})),
        raw=data,
    )


def load_card(path: Path) -> ModelCard:
    """Read a card file, or the ``card.toml`` inside a model directory."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILENAME
    if not path.is_file():
        raise CardError(f"no model card at {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: not valid TOML ({exc})") from exc
    return parse_card(data, path.parent, str(path))


def write_card(data: dict[str, Any], directory: Path) -> Path:
    """Write a card, filling in sha256 of every listed weights file."""
    import tomli_w

    data = dict(data)
    data["sha256"] = {fmt: sha256_file(directory / f) for fmt, f in data["files"].items()}
    parse_card(data, directory, "new card")  # refuse to write an invalid card
    path = directory / CARD_FILENAME
    path.write_text(tomli_w.dumps(data))
    return path
