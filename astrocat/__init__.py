"""astrocat: trained networks over survey images, FITS cut-outs and spectra -> catalogs."""

__version__ = "0.1.0"
