"""The one exception type a source raises when it cannot deliver its records."""


class SourceError(Exception):
    """A source failed (timeout, refused, non-zero exit, unusable answer).

    The message is meant for operators: it says what was called and why it failed,
    and never contains credentials.
    """
