"""The science: one module per task, behind one protocol (``base.ScienceTask``).

``TASKS`` is the registry that ``summarize`` (numbers, terminal, figures, HTML), the truth
loader and the CLI walk, in report order. To add a task, write
``astrocat/science/<task>.py`` implementing the protocol and add it to this tuple.
"""

from astrocat.science import cosmology, lenses, morphology, redshift

TASKS = (morphology, redshift, lenses, cosmology)
