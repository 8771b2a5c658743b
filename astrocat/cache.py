"""Where astrocat keeps what it derives once per machine and reuses (TensorRT plans,
ONNX graphs with their extra heads): ``$XDG_CACHE_HOME/astrocat`` (``~/.cache/astrocat``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "astrocat" / kind


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path``, never half-written, whichever process writes it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
