"""``summarize --plots/--report``: the figures exist, are PNGs, the page is self-contained,
mosaics read source images (or say why not), and a plain summary stays light."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from PIL import Image
from test_summary import survey

from astrocat.cli import main
from astrocat.science.figures import make_figures
from astrocat.science.report import to_html
from astrocat.science.summary import SummaryOptions, collect

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def imaged(tmp_path_factory) -> dict:
    """A small survey whose galaxy JPEGs and lens FITS files exist on disk."""
    tmp = tmp_path_factory.mktemp("imaged")
    d = survey(tmp, n_gal=60, n_merge=6, n_spec=80, n_lens=30, n_field=8)
    rng = np.random.default_rng(0)
    (tmp / "galaxies").mkdir()
    (tmp / "lenses").mkdir()
    for i in range(60):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(
            tmp / "galaxies" / f"{200000 + i}.jpg")
    for i in range(30):
        fits.PrimaryHDU(rng.normal(0, 1, (20, 20)).astype(np.float32)).writeto(
            tmp / "lenses" / f"imageEUC_VIS-{300000 + i}.fits")
    return d


def test_figures_and_html_report(imaged, tmp_path):
    plots, html = tmp_path / "plots", tmp_path / "report.html"
    args = ["summarize", str(imaged["catalog"]), "--plots", str(plots), "--report", str(html),
            "--json", "--prototypes", "3", *(a for t in imaged["truth"] for a in ("--truth",
                                                                               str(t)))]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    names = {f["name"] for f in report["figures"]}
    expected = {
        "morphology_answers", "morphology_histograms", "merger_fraction", "morphology_truth",
        "label_correlation", "morphology_prototypes_interest",
        "morphology_prototypes_interest_true", "morphology_prototypes_1",
        "morphology_prototypes_2", "morphology_prototypes_3", "merger_examples",
        "redshift_histograms", "redshift_2d", "redshift_bias", "lens_scores", "lens_roc",
        "lens_rates", "lens_confusion", "lens_candidates", "cosmology_fields",
        "lens_completeness_purity", "lens_reliability", "morphology_reliability"}
    assert expected <= names, expected - names
    for f in report["figures"]:
        data = Path(f["file"]).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    assert not any("could not be read" in n for n in report["notes"])
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') == len(report["figures"])
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "Merger fraction against threshold" in page and "AUROC" in page
    first = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(first).startswith(PNG)


def test_mosaics_skipped_with_a_note_when_images_are_elsewhere(imaged, tmp_path):
    s = collect(imaged["catalog"], SummaryOptions(images=True, images_root=tmp_path))
    figs = make_figures(s)
    assert not any(f.name.startswith("morphology_prototypes") and f.png for f in figs)
    assert any(f.note and "--images-root" in f.note for f in figs)
    assert {"redshift_histograms", "lens_scores", "cosmology_fields"} <= {
        f.name for f in figs if f.png}  # z is carried; no lens or field truth given
    assert "lens_roc" not in {f.name for f in figs}
    page = to_html(s.report, [f for f in figs if f.png])
    assert page.startswith("<!DOCTYPE html>") and "Lens finding" in page


def test_plain_summary_does_not_import_matplotlib(imaged):
    code = ("import sys\nfrom click.testing import CliRunner\nfrom astrocat.cli import main\n"
            f"r = CliRunner().invoke(main, ['summarize', {str(imaged['catalog'])!r}])\n"
            "assert r.exit_code == 0, r.output\n"
            "assert 'matplotlib' not in sys.modules\nprint('light')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "light" in r.stdout, r.stderr[-2000:]
