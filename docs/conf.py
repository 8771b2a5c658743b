"""Sphinx configuration of astrocat's documentation.

Build it from the repository root (after ``pip install -e '.[docs]'``)::

    python -m sphinx -b html docs docs/_build/html

CI builds it with ``-W --keep-going`` (every warning an error) in ``tests/test_docs.py``.
No page needs the network: no intersphinx, no link checking.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the astrocat beside these docs, installed or not

import astrocat  # noqa: E402

project = "astrocat"
author = "the astrocat developers"
copyright = "the astrocat developers (BSD-3-Clause)"
release = astrocat.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "numpydoc",  # NumPy-style docstrings, as astropy, specutils and photutils write them
    "sphinx_click",  # the CLI reference, from the click commands themselves
    "myst_nb",  # Markdown pages (MyST) and the tour notebook
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "tour/sample", "tour/notebook-out", "**.ipynb_checkpoints"]

# -- Python API (autodoc + numpydoc) ------------------------------------------------------
autodoc_typehints = "none"  # the types are in each docstring's Parameters/Returns
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # members are listed by autodoc in api.rst
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Markdown and the notebook (MyST, myst-nb) ----------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3  # [text](page.md#a-heading) works here as on GitHub
# The tour runs astrocat on the bundled sample when the docs are built (~40 s on 2 cores):
# ASTROCAT_DOCS_EXECUTE=0 renders it without outputs instead.
nb_execution_mode = "force" if os.environ.get("ASTROCAT_DOCS_EXECUTE", "1") != "0" else "off"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_in_temp = False  # it reads sample/ beside itself
nb_merge_streams = True

# -- HTML -----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"astrocat {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "getting-started": [], "changes": []}
html_show_sourcelink = False


def _stage_tour() -> None:
    """Put ``examples/astrocat_tour.ipynb`` where Sphinx reads it (``docs/tour/``, not
    committed), with the bundled sample beside it as the notebook expects (``sample/``)."""
    tour = DOCS / "tour"
    tour.mkdir(exist_ok=True)
    source = ROOT / "examples" / "astrocat_tour.ipynb"
    target = tour / source.name
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)  # only when changed: Sphinx rebuilds what is newer
    if nb_execution_mode != "off":  # a fresh run each build, not "no changes" from the last
        shutil.rmtree(tour / "notebook-out", ignore_errors=True)
    sample = tour / "sample"
    if not sample.exists():
        try:
            sample.symlink_to(ROOT / "examples" / "sample", target_is_directory=True)
        except OSError:  # no symbolic links here (Windows without the privilege)
            shutil.copytree(ROOT / "examples" / "sample", sample)


_stage_tour()

# Click help is plain text; sphinx-click renders it as reStructuredText, where "|B - A|"
# (diff --tolerance) would be a substitution reference. Escape such bars, nothing else.
_SUBSTITUTION_BAR = re.compile(r"(?<![\w\\|])\|(?=[^\s|])")


def _escape_bars(app, ctx, lines: list[str]) -> None:
    for i, line in enumerate(lines):
        if not line.lstrip().startswith(".. "):
            lines[i] = _SUBSTITUTION_BAR.sub(r"\\|", line)


def setup(app):
    for event in ("description", "options", "arguments", "epilog"):
        app.connect(f"sphinx-click-process-{event}", _escape_bars)
