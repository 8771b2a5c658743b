"""Write examples/astrocat_tour.ipynb (no outputs): the notebook tour of the Python API.

The test suite executes it in a real Jupyter kernel (tests/test_notebook.py); edit the
cells here and re-run ``python scripts/make_tour_notebook.py``.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# astrocat from a notebook

The same runs as the command line, as Python calls. The sample survey (`sample/`, beside
this notebook) and the four bundled models are **simulated**: the models were trained on
surveys astrocat itself simulates, not on the real Galaxy Zoo, Gaia or lens-challenge data.
Outputs go to `notebook-out/`."""),
    ("code", """from pathlib import Path

import astrocat

SAMPLE = Path("sample")
OUT = Path("notebook-out")
OUT.mkdir(exist_ok=True)
astrocat.__version__"""),
    ("md", """## Run inference
Every input becomes one row: predictions, or an error row saying what to fix (the sample
holds five deliberately broken files). A second run reuses the finished parts."""),
    ("code", """run = astrocat.infer(SAMPLE, OUT / "catalog.parquet")
run"""),
    ("code", """print(run.n_rows, "rows,", run.n_errors, "errors")"""),
    ("md", """## Open the catalog
Any layout (a file, a dataset directory, a HATS catalog, a store or `STORE@N`). Readers
take the columns and row filters they need; astropy tables keep units, descriptions and
UCDs."""),
    ("code", """cat = astrocat.open_catalog(run.out)
cat"""),
    ("code", """galaxies = cat.to_table(
    columns=["object_id", "ra", "dec", "gz_smooth", "gz_odd_merger", "ood_flag"],
    filters=[("model", "==", "gz2-cnn"), ("status", "==", "ok")],
)
galaxies[:5]"""),
    ("code", """errors = cat.to_pandas(columns=["source", "error"],
                        filters=[("status", "==", "error")])
errors"""),
    ("md", """## The science report
Numbers as Python objects (`summary["morphology"]`, ...), shown as tables and figures."""),
    ("code", """summary = astrocat.summarize(cat)
summary"""),
    ("code", """summary["morphology"]["merger"]"""),
    ("code", """summary.figure("redshift_2d")"""),
    ("md", """## Errors are exceptions, with the messages the command line prints"""),
    ("code", """try:
    astrocat.open_catalog(OUT / "no-such-catalog.parquet")
except astrocat.AstrocatError as err:
    print("astrocat says:", err)"""),
    ("md", """## HATS: the same run as a HEALPix-partitioned catalog that LSDB opens"""),
    ("code", """hats_run = astrocat.infer(SAMPLE, OUT / "hats", layout="hats", progress=False)
sky = astrocat.open_catalog(hats_run.out).to_lsdb()
sky.cone_search(ra=180, dec=0, radius_arcsec=60 * 3600).compute()[["object_id", "ra", "dec"]]"""),
]


def main() -> None:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = Path(__file__).resolve().parents[1] / "examples" / "astrocat_tour.ipynb"
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
