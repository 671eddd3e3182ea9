"""`trackday donkey ...`: archive, upload, train and fetch DonkeyCar models."""

import typer

app = typer.Typer(help="DonkeyCar: archive tubs, upload, train, fetch models.", no_args_is_help=True)
