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
    ``None`` when there is none (no variant passed its validation gates)."""
    if precision == "fp32":
        return card
    return bundled().get(f"{card.name}-{precision}")
