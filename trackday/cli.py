"""The root of the `trackday` command: one sub-command group per module.

Every `TrackdayError` a command leaves uncaught is printed here, by the one handler
(`trackday.failure.fail`: `error: <message>`, verbatim, exit code 1), never as a traceback.
"""

import click
import typer
from typer.core import TyperGroup

from trackday import donkey, dr, plan
from trackday.dashboard.command import dashboard
from trackday.errors import TrackdayError
from trackday.failure import fail


class _Commands(TyperGroup):
    """The root group: what every sub-command runs inside."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TrackdayError as error:
            raise fail(error) from None


app = typer.Typer(
    cls=_Commands,
    help="Train DonkeyCar and AWS DeepRacer models on your machine or in the cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(donkey.app, name="donkey")
app.add_typer(dr.app, name="dr")
app.command("plan")(plan.plan)
app.command("dashboard")(dashboard)
