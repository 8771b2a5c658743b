"""One part's catalog rows, accumulated column by column as a partition is processed.

Base columns grow a value per row; model outputs arrive a batch at a time and are
scattered into float32 columns when the part is written, so no per-value Python work is
done for the 37 Galaxy Zoo answers of each galaxy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from astrocat.catalog.columns import to_arrow
from astrocat.catalog.schema import (
    BASE_COLUMNS,
    Column,
    catalog_output_columns,
    sentinel,
    to_field,
)
from astrocat.models.card import ModelCard

DEFAULTS = {"object_id": "", "source": "", "hdu": -1, "row": -1, "kind": "", "model": "",
            "ra": float("nan"), "dec": float("nan"), "status": "ok", "error": ""}


class Rows:
    """Column-wise accumulation of one part's rows."""

    def __init__(self, cards: dict[str, ModelCard], output_order: tuple[str, ...]) -> None:
        self.base: dict[str, list] = {c.name: [] for c in BASE_COLUMNS}
        self.outputs: list[Column] = catalog_output_columns(cards[n] for n in output_order)
        self._results: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self.carried: dict[str, tuple[pa.DataType, list]] = {}
        self.retry: set[int] = set()
        self.n = 0

    def add(self, **base) -> int:
        for name, values in self.base.items():
            values.append(base.get(name, DEFAULTS[name]))
        for _, values in self.carried.values():
            values.append(None)
        self.n += 1
        return self.n - 1

    def carry(self, index: int, name: str, type_: pa.DataType, value) -> None:
        if name not in self.carried:
            self.carried[name] = (type_, [None] * self.n)
        self.carried[name][1][index] = value

    def fail(self, index: int, message: str, retry: bool = False) -> None:
        """Make row ``index`` an error row; ``retry``: the next run recomputes it."""
        self.base["status"][index] = "error"
        self.base["error"][index] = message
        if retry:
            self.retry.add(index)

    def results(self, index: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """A batch's columns (name -> n values) for rows ``index``."""
        self._results.append((index, columns))

    @property
    def n_errors(self) -> int:
        return sum(1 for v in self.base["status"] if v == "error")

    def table(self) -> pa.Table:
        out = {c.name: np.full(self.n, sentinel(c.type), c.type.to_pandas_dtype())
               for c in self.outputs}
        ok = np.array([s == "ok" for s in self.base["status"]], bool)
        for index, columns in self._results:
            keep = ok[index]  # a row that failed after its batch ran keeps its sentinel
            for name, values in columns.items():
                out[name][index[keep]] = values[keep]
        fields = [to_field(c) for c in BASE_COLUMNS] + [to_field(c) for c in self.outputs]
        arrays = [to_arrow(self.base[c.name], c.type) for c in BASE_COLUMNS]
        arrays += [to_arrow(out[c.name], c.type) for c in self.outputs]
        for name, (type_, values) in self.carried.items():
            fill = sentinel(type_)
            fields.append(pa.field(name, type_, nullable=False, metadata={b"carried": b"1"}))
            arrays.append(to_arrow([fill if v is None else v for v in values], type_))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
