"""The science: one module per task, behind one protocol (``base.ScienceTask``).

``TASKS`` is the registry that ``summarize`` (numbers, terminal, figures, HTML), the truth
loader and the CLI walk, in report order. To add a task, write
``astrocat/science/<task>.py`` implementing the protocol and add it to this tuple.
``trust`` comes first: not a task but written as one, it owns the out-of-domain flag's
section, the ``--include-ood`` option every task shares, and ``diff``'s flag changes.
"""

from astrocat.science import cosmology, lenses, morphology, redshift, trust

TASKS = (trust, morphology, redshift, lenses, cosmology)
