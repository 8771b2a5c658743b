"""The kinds of input astrocat knows how to route to a model."""

from enum import StrEnum


class Kind(StrEnum):
    """What a work item *is*, decided from file content, never from the extension alone."""

    RGB_IMAGE = "rgb_image"  # JPEG/PNG galaxy cut-out (greyscale is promoted to RGB)
    MONO_IMAGE = "mono_image"  # single-band FITS image (lens finding by default)
    SPECTRUM = "spectrum"  # one row of a spectra table
    DENSITY_FIELD = "density_field"  # 2-D projected matter density map (.npy, or FITS tagged so)


#: Kinds whose arrays have the same form (one 2-D single-channel plane) and so may be
#: sent to each other's models when the user names a model with ``--model``.
PLANE_KINDS = frozenset({Kind.MONO_IMAGE, Kind.DENSITY_FIELD})
