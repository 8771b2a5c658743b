"""Exceptions whose message is meant for a person running a survey job.

Anything raised as an ``AstrocatError`` is shown to the user as is (no traceback);
``InputError`` marks a single unusable input and becomes an error row in the catalog.
"""


class AstrocatError(Exception):
    """A problem the user can act on: bad argument, bad model card, unreachable scheduler."""


class InputError(AstrocatError):
    """One input (file, HDU or table row) cannot be used; the run goes on without it."""


class TransientInputError(InputError):
    """An input that could not be read this time for a reason outside the file's content
    (permissions, an I/O error, a file replaced mid-run): its row is retried next run."""


class CardError(AstrocatError):
    """A model card is missing, malformed, or does not match its weights."""
