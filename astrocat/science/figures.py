"""The science report's figures: every registered task's, in report order, for
``summarize --plots/--report`` (:func:`make_figures`).

What the task modules draw them with (PNG output, photo mosaics, source thumbnails, the
palette) is :mod:`astrocat.science.drawing`, re-exported here: the tasks import it from
there, since this module walks the registry that imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from astrocat.science.drawing import (
    DPI,
    PALETTE,
    THUMB,
    FigureOut,
    Images,
    Palette,
    mosaic,
    new_figure,
    png,
    reliability_figure,
    save_figures,
    spread_axes,
)

if TYPE_CHECKING:
    from astrocat.science.summary import Summary

__all__ = ["DPI", "PALETTE", "THUMB", "FigureOut", "Images", "Palette", "make_figures",
           "mosaic", "new_figure", "png", "reliability_figure", "save_figures", "spread_axes"]


def make_figures(result: Summary) -> list[FigureOut]:
    """Every figure the catalog's sections support, in report order."""
    from astrocat.science import TASKS

    d, r = result.data, result.report
    out: list[FigureOut] = []
    images = Images(d.get("images_root"))
    for task in TASKS:
        if task.KEY in d:
            out += task.figures(d[task.KEY], r[task.KEY], images)
    if images.missing:
        out.append(FigureOut("images", "notes", "", None,
                             f"{images.missing} source image(s) for the mosaics could not be "
                             f"read under {images.root} (--images-root sets where "
                             "`source` paths are relative to)"))
    return out
