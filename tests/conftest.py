"""Shared fixtures: real files on disk, made once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from astrocat.models.zoo import bundled


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A copy of the bundled sample survey (examples/sample), so tests may modify it."""
    src = Path(__file__).resolve().parents[1] / "examples" / "sample"
    dst = tmp_path_factory.mktemp("sample") / "sample"
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def have_models() -> None:
    missing = {"gz2-cnn", "redshift-cnn1d", "lens-lastro", "cosmo-cnn"} - set(bundled())
    if missing:
        pytest.fail(f"bundled models missing: {sorted(missing)}")
