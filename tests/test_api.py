"""The Python API: the same runs, numbers and error messages as the CLI, as objects.

Real files through the real pipeline; the CLI's output is the reference the API must match
(the CLI is a thin layer over ``astrocat.api``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import astrocat
from astrocat.cli import main


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_import_astrocat_is_light_and_names_the_api():
    code = ("import sys, astrocat; assert callable(astrocat.infer); "
            "heavy = [m for m in ('dask', 'pyarrow', 'onnxruntime', 'tensorflow') "
            "if m in sys.modules]; print(heavy)")
    # the attribute access above imports the API itself; a bare import must not
    bare = subprocess.run([sys.executable, "-c", "import sys, astrocat; print(sorted(m for m "
                           "in ('dask', 'pyarrow', 'onnxruntime', 'tensorflow') if m in "
                           "sys.modules))"], capture_output=True, text=True, check=True)
    assert bare.stdout.strip() == "[]"
    used = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert "tensorflow" not in used.stdout
    assert {"infer", "open_catalog", "summarize", "diff", "history", "run"} <= set(dir(astrocat))


def test_infer_gives_the_cli_catalog_and_a_result_object(sample_dir, sample_catalog, tmp_path):
    run = astrocat.infer(sample_dir, tmp_path / "api.parquet", workers=2, progress=False)
    assert (run.n_rows, run.n_errors, run.exit_code) == (429, 5, 1)
    assert "429 rows, 5 errors" in str(run) and "429 rows" in run._repr_html_()
    mine, cli = pq.read_table(run.out), pq.read_table(sample_catalog)
    assert mine.schema.equals(cli.schema, check_metadata=False)
    key = ["source", "hdu", "row"]
    mine, cli = mine.sort_by([(k, "ascending") for k in key]), cli.sort_by(
        [(k, "ascending") for k in key])
    assert mine.column("status").equals(cli.column("status"))
    for name in ("z_pred", "p_lens", "gz_smooth", "ood_distance"):
        a, b = mine.column(name).to_numpy(), cli.column(name).to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert run.catalog.provenance["command"].startswith("astrocat.infer(")
    again = astrocat.infer(sample_dir, run.out, workers=2, progress=False)
    assert again.n_reused == again.n_parts and again.n_rows == 429


def test_catalog_readers_project_filter_and_keep_units(sample_catalog):
    cat = astrocat.open_catalog(sample_catalog)
    assert len(cat) == 429 and cat.layout == "file" and "z_pred" in cat.columns
    html = cat._repr_html_()
    assert "<table>" in html and "z_pred" in html and "deg" in html
    t = cat.to_table(columns=["object_id", "ra", "dec", "z_pred"],
                     filters=[("model", "==", "redshift-cnn1d"), ("status", "==", "ok")])
    assert t.colnames == ["object_id", "ra", "dec", "z_pred"]
    assert len(t) == 204 and str(t["ra"].unit) == "deg"
    assert "Right ascension" in t["ra"].description
    assert t.meta["astrocat"]["models"]["redshift-cnn1d"]["sha256"]
    assert t["object_id"].dtype.kind == "U"
    errors = cat.to_pandas(columns=["source", "error"], filters=pc.field("status") == "error")
    assert len(errors) == 5 and all(errors["error"].str.len() > 10)
    assert sum(b.num_rows for b in cat.iter_batches(["status"], batch_size=50)) == 429


def test_catalog_errors_are_the_cli_messages(sample_catalog, tmp_path):
    missing = tmp_path / "nope.parquet"
    with pytest.raises(astrocat.AstrocatError) as err:
        astrocat.open_catalog(missing)
    r = _cli("summarize", str(missing))
    assert r.exit_code == 2 and f"error: {err.value}" in r.output
    cat = astrocat.open_catalog(sample_catalog)
    with pytest.raises(astrocat.AstrocatError, match="no column"):
        cat.to_table(columns=["no_such_column"])
    with pytest.raises(astrocat.AstrocatError, match="layout='hats'"):
        cat.to_lsdb()
    with pytest.raises(astrocat.AstrocatError, match="unknown summary option"):
        astrocat.summarize(cat, figures=False, merger_treshold=0.2)
    with pytest.raises(astrocat.AstrocatError, match="memory_budget"):
        astrocat.infer(tmp_path, tmp_path / "x.parquet", memory_budget="lots")


def test_summarize_numbers_are_the_cli_json(sample_catalog, tmp_path):
    result = astrocat.summarize(sample_catalog, figures=False, merger_threshold=0.4)
    r = _cli("summarize", str(sample_catalog), "--json", "--merger-threshold", "0.4")
    assert r.exit_code == 0
    assert json.loads(result.to_json()) == json.loads(r.stdout)
    assert result["morphology"]["merger"]["threshold"] == 0.4
    assert "astrocat-report" in result._repr_html_() and "<body" not in result._repr_html_()


def test_summary_figures_show_themselves_and_save(sample_catalog, tmp_path):
    result = astrocat.summarize(astrocat.open_catalog(sample_catalog))
    fig = result.figure("redshift_histograms")
    assert fig._repr_png_().startswith(b"\x89PNG")
    files = result.save_figures(tmp_path / "figs")
    assert files["redshift_histograms"].read_bytes() == fig.png
    page = result.write_html(tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(result.figures)


def test_diff_and_history_of_a_store(sample_dir, tmp_path):
    survey = tmp_path / "survey"
    survey.mkdir()
    for p in sorted((sample_dir / "galaxies").glob("*.jpg"))[:12]:
        shutil.copy(p, survey)
    job = tmp_path / "job.toml"
    job.write_text(f'[job]\nname = "n"\ninput = ["{survey}"]\nout = "{tmp_path / "store"}"\n'
                   'retention = 5\n')
    first = astrocat.run(job, progress=False)
    for p in sorted((sample_dir / "galaxies").glob("*.jpg"))[12:15]:
        shutil.copy(p, survey)
    second = astrocat.run(job, progress=False)
    assert (first.version, second.version, second.changes["added"]) == (1, 2, 3)
    versions = astrocat.history(tmp_path / "store")
    assert [v["version"] for v in versions] == [1, 2] and versions[-1]["latest"]
    d = astrocat.diff(tmp_path / "store")
    r = _cli("diff", str(tmp_path / "store"), "--json")
    assert json.loads(d.to_json()) == json.loads(r.stdout)
    assert d["rows_b"] - d["rows_a"] == 3 and "astrocat diff" in d._repr_html_()
    assert len(astrocat.open_catalog(f"{tmp_path / 'store'}@1")) == 12
    with pytest.raises(astrocat.AstrocatError, match="no store"):
        astrocat.history(tmp_path / "nothing-here")


def test_cli_help_does_not_import_the_api():
    r = subprocess.run([sys.executable, "-c", "import sys; from astrocat.cli import main; "
                        "sys.argv=['astrocat','--help']\ntry: main()\nexcept SystemExit: pass\n"
                        "print('astrocat.api' in sys.modules, 'dask' in sys.modules)"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip().splitlines()[-1] == "False False"


def test_the_cli_spells_out_the_choices_and_defaults_the_library_holds():
    """The CLI writes ``--engine``, ``--decode`` and ``--hats-margin`` out (it imports no
    engine or layout module for ``--help``): they must stay the library's."""
    import inspect

    from astrocat.catalog.layouts import MARGIN_ARCSEC
    from astrocat.engines.base import ENGINES
    from astrocat.pipeline.feed import DECODES

    infer = main.commands["infer"]
    params = {p.name: p for p in infer.params}
    assert tuple(params["engine"].type.choices) == ENGINES
    check = {p.name: p for p in main.commands["models"].commands["check"].params}
    assert tuple(check["engine"].type.choices) == ENGINES
    assert tuple(params["decode"].type.choices) == DECODES
    assert params["hats_margin"].default == MARGIN_ARCSEC
    api_default = inspect.signature(astrocat.infer).parameters["hats_margin_arcsec"].default
    assert api_default == MARGIN_ARCSEC


def test_the_readme_python_example_runs(sample_dir, tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- python-api-example -->", 2)[1]
    code = block.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "sample").symlink_to(sample_dir)
    exec(compile(code, "README.md", "exec"), {})
