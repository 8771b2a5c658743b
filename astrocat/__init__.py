"""astrocat: trained networks over survey images, FITS cut-outs and spectra -> catalogs.

The Python API (``astrocat.infer``, ``astrocat.open_catalog``, ``astrocat.summarize``, ...)
lives in :mod:`astrocat.api`; it is imported on first use, so ``astrocat --help`` and
``import astrocat`` stay fast.
"""

from astrocat.errors import AstrocatError, InputError

__version__ = "0.3.0"

_API = ("Catalog", "DiffResult", "RunResult", "SummaryResult", "diff", "export", "history",
        "infer", "open_catalog", "run", "summarize")
__all__ = ["AstrocatError", "InputError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from astrocat import api

        return getattr(api, name)
    raise AttributeError(f"module 'astrocat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
