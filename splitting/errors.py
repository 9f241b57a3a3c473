"""User-facing errors.

Every mistake a user can make (an unknown model, a malformed trace, a corrupt profile, a bad config key)
raises :class:`DynsplitError` with a one-line message that names the offending value or file and says what
was expected. The command line prints it as ``dynsplit: error: <message>`` and exits with status 2,
without a traceback. Programming errors keep their ordinary exception types.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DynsplitError(ValueError):
    """A user mistake, reported as one line (CLI exit status 2)."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice to ``value``, or ``""`` if none is close."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
