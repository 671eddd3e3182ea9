"""The family of errors trackday reports as one line, with the fix in the message."""


class TrackdayError(Exception):
    """Base of the errors a command prints verbatim instead of a traceback."""


class RunError(TrackdayError):
    """A DeepRacer run cannot be started, stopped or read; the message says why and what to do."""
