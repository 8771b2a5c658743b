"""Strict TOML tables: every key known, typed and range-checked, as data.

Model cards and job files are tables a person writes by hand; a misspelt key must be an
error naming the nearest valid one, never silently ignored. Each table's fields are a
``Fields`` mapping (field -> required, check); ``check_table`` enforces it.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astrocat.errors import AstrocatError

Check = Callable[[Any], str | None]  # a problem with the value, or None


def number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def numbers(v: Any) -> bool:
    return number(v) or (isinstance(v, list) and bool(v) and all(number(x) for x in v))


def one_of(options: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        if v in options:
            return None
        near = difflib.get_close_matches(str(v), options, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"{v!r} is not one of {', '.join(options)}{hint}"
    return check


def in_range(lo: float, hi: float | None, lo_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if not number(v):
            return f"should be a number, got {v!r}"
        if (v <= lo if lo_open else v < lo) or (hi is not None and v > hi):
            return f"is {v}; it must be {'>' if lo_open else '>='} {lo}" + (
                f" and <= {hi}" if hi is not None else "")
        return None
    return check


def typed(test: Callable[[Any], bool], what: str) -> Check:
    return lambda v: None if test(v) else f"should be {what}, got {v!r}"


Fields = dict[str, tuple[bool, Check | None]]  # field -> (required, check)


def check_table(table: dict[str, Any], fields: Fields,
                where: str, error: type[AstrocatError] = AstrocatError) -> None:
    """Raise ``error`` naming the first unknown, missing or invalid field of ``table``."""
    for key in table:
        if key not in fields:
            near = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else \
                f"; valid fields: {', '.join(fields)}"
            raise error(f"{where}: unknown field '{key}'{hint}")
    for key, (required, check) in fields.items():
        if key not in table:
            if required:
                raise error(f"{where}: missing field '{key}'")
            continue
        problem = check(table[key]) if check else None
        if problem:
            raise error(f"{where}: {key} {problem}")


def read_toml(path: Path, error: type[AstrocatError], what: str) -> dict[str, Any]:
    """The TOML table in ``path`` (``what`` names it: "model card", "job file"), or
    ``error`` saying plainly why not."""
    if not path.is_file():
        raise error(f"no {what} at {path}")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid TOML ({exc})") from exc
