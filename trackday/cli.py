"""The root of the `trackday` command: one sub-command group per module."""

import typer

from trackday import donkey, dr, plan
from trackday.dashboard.command import dashboard

app = typer.Typer(
    help="Train DonkeyCar and AWS DeepRacer models on your machine or in the cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(donkey.app, name="donkey")
app.add_typer(dr.app, name="dr")
app.command("plan")(plan.plan)
app.command("dashboard")(dashboard)
