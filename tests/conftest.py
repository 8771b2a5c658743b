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


@pytest.fixture(scope="session")
def sample_catalog(sample_dir, have_models, tmp_path_factory) -> Path:
    """The bundled sample survey run through ``astrocat infer`` once per test session."""
    from click.testing import CliRunner

    from astrocat.cli import main

    out = tmp_path_factory.mktemp("cat") / "catalog.parquet"
    r = CliRunner().invoke(main, ["infer", "--quiet", "--workers", "2", "--input",
                                  str(sample_dir), "--out", str(out)])
    assert r.exit_code == 1, r.output  # the sample holds deliberately broken files
    return out


@pytest.fixture
def deny_reading(monkeypatch):
    """``deny(path)`` makes reading that image fail with EACCES on every path an image
    is opened by (Pillow, and the bytes handed to libjpeg-turbo); ``deny(None)`` lifts it.
    (Tests run as root, which no ``chmod`` stops.)"""
    from astrocat.sources import images

    denied: set[str] = set()
    real_open, real_bytes = images.Image.open, images.read_bytes

    def check(path) -> None:
        if str(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))

    def pil_open(path, *args, **kwargs):
        check(path)
        return real_open(path, *args, **kwargs)

    def read_bytes(path):
        check(path)
        return real_bytes(path)

    monkeypatch.setattr(images.Image, "open", pil_open)
    monkeypatch.setattr(images, "read_bytes", read_bytes)

    def deny(path) -> None:
        denied.clear()
        if path is not None:
            denied.add(str(path))

    return deny
