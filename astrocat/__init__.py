"""astrocat: trained neural networks over survey images, FITS cut-outs and spectra -> Parquet catalogs."""

__version__ = "0.1.0"
