"""astrocat's version, in a module of its own: what records it (run provenance, trained
cards, HATS properties) imports it from here, never from the package facade above them."""

__version__ = "0.4.0"
