"""The science registry: every task module implements the protocol, and a new task is one
module plus one registry entry (numbers, terminal section, CLI option and truth layout)."""

from __future__ import annotations

import json
import types

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from test_summary import write_catalog

import astrocat.science as science
from astrocat.cli import main
from astrocat.science import truth
from astrocat.science.base import Context, ScienceTask, TaskOption, values
from astrocat.science.render import Section, Table, num
from astrocat.science.truth import TruthLayout


def test_every_task_module_implements_the_protocol():
    keys = [t.KEY for t in science.TASKS]
    assert keys == ["ood", "morphology", "redshift", "lens", "cosmology"]  # trust first
    for task in science.TASKS:
        assert isinstance(task, ScienceTask), task.__name__
        assert task.TRUTH is None or task.TRUTH.task == task.KEY
    names = [o.name for t in science.TASKS for o in t.OPTIONS]
    assert len(names) == len(set(names))


def test_catalog_package_knows_no_science():
    import astrocat.catalog as catalog_pkg

    for name in ("schema", "writer", "reader"):
        src = (catalog_pkg.__path__[0] + f"/{name}.py")
        text = open(src).read().lower()
        assert "merger" not in text and "lens" not in text and "redshift" not in text, name


def _toy_task() -> types.ModuleType:
    """A fifth task, written the way a contributor would write the module."""
    toy = types.ModuleType("toy")
    toy.KEY = "toy"
    toy.OPTIONS = (TaskOption("toy_threshold", 0.5, "Bright when toy_pred >= this."),)
    toy.TRUTH = TruthLayout(task="toy", signature=frozenset({"ID", "toy_true"}),
                            id_column="ID", columns=("toy_true",),
                            hint="ID,toy_true for toys", label="toy")

    class Acc:
        def __init__(self, ctx: Context) -> None:
            self.columns = ["toy_pred"] if "toy_pred" in ctx.names else []
            self.threshold, self.truth = ctx.options["toy_threshold"], ctx.truth
            self.v: list[np.ndarray] = []
            self.k: list[np.ndarray] = []

        def update(self, batch: pa.RecordBatch, ok: np.ndarray) -> None:
            v = values(batch, "toy_pred")
            sel = ok & np.isfinite(v)
            self.v.append(v[sel])
            if self.truth is not None:
                self.k.append(self.truth.keys(batch.column("object_id").filter(pa.array(sel))))

        def finish(self):
            if not self.v:
                return None
            v = np.concatenate(self.v)
            out = {"n": len(v), "mean": float(v.mean()),
                   "n_bright": int((v >= self.threshold).sum())}
            if self.truth is not None:
                rows = self.truth.lookup(np.concatenate(self.k))
                out["rmse"] = float(np.sqrt(np.mean(
                    (v[rows >= 0] - self.truth.column("toy_true")[rows[rows >= 0]]) ** 2)))
            return out, {}

    toy.start = Acc
    toy.section = lambda r: Section("toy", f"Toys: {r['n']}", [
        Table("Toy numbers", ["mean", "bright"], [[num(r["mean"]), str(r["n_bright"])]])])
    toy.figures = lambda d, r, images: []

    class Cmp:
        columns: list[str] = []

        def update(self, joined) -> None: ...

        def finish(self, a, b):
            return None if a is None or b is None else {"mean_shift": b["mean"] - a["mean"]}

    toy.compare = lambda ctx: Cmp()
    toy.compare_section = lambda c: Section("toy", "Toys, A against B",
                                            [f"mean shift {num(c['mean_shift'])}"])
    return toy


def test_a_new_task_is_one_module_and_one_line(tmp_path, monkeypatch):
    toy = _toy_task()
    assert isinstance(toy, ScienceTask)
    monkeypatch.setattr(science, "TASKS", (*science.TASKS, toy))  # the one line
    n = 6
    cat = write_catalog(tmp_path / "c.parquet",
                        {"object_id": [f"toy_{i}" for i in range(n)], "kind": ["toy"] * n},
                        {"toy_pred": np.array([0.1, 0.2, 0.6, 0.7, 0.9, np.nan])})
    t = tmp_path / "toys.csv"
    t.write_text("ID,toy_true\n0,0.1\n1,0.3\n2,0.6\n3,0.7\n4,0.8\n")
    assert truth.load(t).task == "toy"
    r = CliRunner().invoke(main, ["summarize", str(cat), "--json", "--toy-threshold", "0.65",
                                  "--truth", str(t)])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)["toy"]
    v = np.array([0.1, 0.2, 0.6, 0.7, 0.9], np.float32)
    assert got["n"] == 5 and got["n_bright"] == 2
    assert got["mean"] == pytest.approx(float(v.mean()))
    ref = np.sqrt(np.mean((v - np.array([0.1, 0.3, 0.6, 0.7, 0.8], np.float32)) ** 2))
    assert got["rmse"] == pytest.approx(float(ref), rel=1e-6)
    r = CliRunner().invoke(main, ["summarize", str(cat)])
    assert r.exit_code == 0 and "Toys: 5" in r.output and "Toy numbers" in r.output
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    r = CliRunner().invoke(main, ["summarize", str(cat), "--truth", str(bad)])
    assert r.exit_code == 2 and "ID,toy_true for toys" in r.output
