from trackday.cli import app

app(prog_name="trackday")
