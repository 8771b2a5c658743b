"""Where astrocat keeps what it derives once per machine and reuses (TensorRT plans,
ONNX graphs with their extra heads): ``$XDG_CACHE_HOME/astrocat`` (``~/.cache/astrocat``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir(kind: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "astrocat" / kind


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path``, never half-written, whichever process or thread writes it
    first (two engine threads of one run may both fill an empty cache: each writes its
    own temporary file, so neither replaces the other's half-written one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
