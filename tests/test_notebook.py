"""examples/astrocat_tour.ipynb, executed in a real Jupyter kernel (nbclient + ipykernel)
on the bundled sample: it must run without an error and show a table, a summary and a
figure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the [notebook] extra")
nbclient = pytest.importorskip("nbclient", reason="needs the [notebook] extra")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _outputs(cell) -> list[dict]:
    return [o for o in cell.get("outputs", [])]


def test_the_tour_notebook_runs_in_a_kernel_and_shows_table_summary_figure(tmp_path,
                                                                           sample_dir):
    shutil.copy(EXAMPLES / "astrocat_tour.ipynb", tmp_path)
    (tmp_path / "sample").symlink_to(sample_dir)
    nb = nbformat.read(tmp_path / "astrocat_tour.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "commit the notebook without outputs (scripts/make_tour_notebook.py)"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell's traceback, on any error
    cells = [c for c in nb.cells if c.cell_type == "code"]
    html = [o["data"]["text/html"] for c in cells for o in _outputs(c)
            if "text/html" in o.get("data", {})]
    pngs = [o for c in cells for o in _outputs(c) if "image/png" in o.get("data", {})]
    text = "".join(o.get("text", "") for c in cells for o in _outputs(c))
    widgets = [o for c in cells for o in _outputs(c)
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]

    assert "429 rows, 5 errors" in text
    assert any("<table" in h and "gz_smooth" in h for h in html)  # the astropy table
    assert any("astrocat-report" in h and "Galaxy Zoo" in h for h in html)  # the summary
    assert any("data:image/png;base64," in h for h in html)  # its figures, inline
    assert pngs  # summary.figure(...) shows itself
    assert "astrocat says: no catalog at" in text  # the CLI's message, as an exception
    assert widgets  # the progress bar drew in the cell
    assert (tmp_path / "notebook-out" / "hats" / "hats.properties").is_file() or \
        (tmp_path / "notebook-out" / "hats" / "collection.properties").is_file()
