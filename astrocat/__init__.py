"""astrocat: trained networks over survey images, FITS cut-outs and spectra -> catalogs.

The Python API (``astrocat.infer``, ``astrocat.open_catalog``, ``astrocat.summarize``, ...)
lives in :mod:`astrocat.api`; it is imported on first use, so ``astrocat --help`` and
``import astrocat`` stay fast. The exceptions :class:`AstrocatError` and
:class:`InputError` come from :mod:`astrocat.errors`.

Examples
--------
>>> import astrocat
>>> run = astrocat.infer("examples/sample", "catalog.parquet")
>>> astrocat.open_catalog(run.out).to_table(columns=["object_id", "z_pred"],
...                                         filters=[("kind", "==", "spectrum")])
"""

from astrocat._version import __version__
from astrocat.errors import AstrocatError, InputError

_API = ("Catalog", "DiffResult", "RunResult", "SummaryResult", "diff", "export", "history",
        "infer", "open_catalog", "run", "summarize", "train")
__all__ = ["AstrocatError", "InputError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from astrocat import api

        return getattr(api, name)
    raise AttributeError(f"module 'astrocat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
