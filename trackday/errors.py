"""The family of errors trackday reports as one line, with the fix in the message.

Every exception class in trackday/ is a subclass of `TrackdayError`
(tests/trackday/test_error_family.py), defined here where several modules share one and
next to their module otherwise (`StackError`, `SwarmJobError`, `VertexError`, ...). A
command may catch one (to add to the message, or to exit with another code than 1); any
other reaches the root handler in trackday/cli.py. Both print with `trackday.failure.fail`."""


class TrackdayError(Exception):
    """Base of the errors a command prints verbatim instead of a traceback."""


class ManagerError(TrackdayError):
    """The swarm manager's Docker engine cannot be reached over SSH (its key, its host key,
    the connection); the message names the stack output or the fix."""


class RunError(TrackdayError):
    """A DeepRacer run cannot be started, stopped or read; the message says why and what to do."""
