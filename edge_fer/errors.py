"""The one exception type users see as a one-line error from the CLI."""


class EdgeFerError(Exception):
    """A user-facing error: its message names the file involved and the fix."""
