"""The one kind of error the command line shows without a traceback."""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """An error in what the user gave: a config, an override, a dataset's files, a results
    folder another process holds. Its message says what is wrong and how to fix it; ``gatlib``
    prints it in one or two lines and exits with status 2 (``--debug`` shows the traceback).

    Concrete errors also derive from the built-in class a caller would expect
    (``ValueError``, ``FileNotFoundError``), so ``except ValueError`` keeps working.
    """
