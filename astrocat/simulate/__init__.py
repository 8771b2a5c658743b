"""Simulated surveys in the real published formats, for training and demos.

The real Galaxy Zoo, Gaia XP, lens-challenge and Quijote data cannot be fetched where
astrocat is built, so the bundled models learn from these instead; each simulator
writes the same file layout the public data uses and a truth file alongside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("galaxies", "spectra", "lenses", "fields", "sample")
TRAINING_SEED = 0
SAMPLE_SEED = 2026
#: The fresh surveys the bundled models are evaluated on (scripts/evaluate_zoo.sh).
EVALUATION_SEED = 99


def simulate(
    kind: str,
    n: int,
    out: Path,
    seed: int | None = None,
    *,
    progress: bool = True,
    workers: int | None = None,
    **options: Any,
) -> Path:
    """Write the survey into ``out`` (created); return the path of its truth/labels file.

    ``seed`` defaults to 0 for the training kinds and to :data:`SAMPLE_SEED` for
    ``sample``, so the demo never repeats training objects. For ``sample`` the return
    value is the truth directory ``<out>_truth``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown survey kind {kind!r}; choose one of {', '.join(KINDS)}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if seed is None:
        seed = SAMPLE_SEED if kind == "sample" else TRAINING_SEED
    if kind == "galaxies":
        from astrocat.simulate import galaxies as mod
    elif kind == "spectra":
        from astrocat.simulate import spectra as mod  # type: ignore[no-redef]
    elif kind == "lenses":
        from astrocat.simulate import lenses as mod  # type: ignore[no-redef]
    elif kind == "fields":
        from astrocat.simulate import fields as mod  # type: ignore[no-redef]
    else:
        from astrocat.simulate import sample as mod  # type: ignore[no-redef]
    return mod.simulate(n, Path(out), seed, progress=progress, workers=workers, **options)


__all__ = ["EVALUATION_SEED", "KINDS", "SAMPLE_SEED", "TRAINING_SEED", "simulate"]
