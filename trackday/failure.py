"""How every command reports an error: one line, `error: <message>`, on stderr.

The message is printed verbatim: no Rich markup (a `[secret]` or `[default]` in a path or
a credentials hint stays as written) and no wrapping. Commands raise what `fail` returns;
the exit code is the command's (2 where the command line or its input is wrong, as click
exits for usage errors; 1 where the work failed).
"""

from __future__ import annotations

import typer


def fail(message: object, code: int = 1) -> typer.Exit:
    """Print `error: <message>` on stderr; the Exit the caller raises."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
