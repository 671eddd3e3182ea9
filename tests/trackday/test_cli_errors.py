"""Every command prints its errors the same way: `error: <message>` on one line, verbatim.

Before one handler (trackday/failure.py) there were three: `trackday donkey` rendered Rich
markup (a `[secret]` in a path vanished), `trackday dr` printed a literal `[red]error:[/red]`,
and both wrapped long messages at the terminal's width."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from trackday.cli import app

LONG = 200  # wider than any terminal the runner pretends to have


def _error(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, terminal_width=80)
    lines = [line for line in result.stderr.splitlines() if line]
    return result.exit_code, "\n".join(lines)


def test_donkey_errors_show_bracketed_text(tmp_path: Path) -> None:
    tub = tmp_path / "[secret]"
    tub.mkdir()
    code, said = _error(["donkey", "archive", str(tub), "-o", str(tmp_path / "a.tar.zst")])
    assert code == 1
    assert said.startswith("error: 1 problem(s) in the tubs:")
    assert f"{tub}: tub: manifest.json is missing" in said


def test_donkey_cloud_errors_are_one_line_verbatim() -> None:
    stack = "[secret]" + "s" * LONG
    code, said = _error(["donkey", "fetch", "r1", "--stack", stack])
    assert code == 1 and said.startswith("error: ") and "\n" not in said
    assert f"--stack {stack}`" in said


def test_dr_errors_carry_no_markup_and_no_wrapping(tmp_path: Path) -> None:
    outputs = tmp_path / "[secret].json"
    outputs.write_text("{}")
    code, said = _error(["dr", "stop-training", "--stack", "dev", "--outputs", str(outputs)])
    assert code == 1 and "\n" not in said
    assert said.startswith("error: stack dev (None) has no S3 bucket")


def test_a_trackday_error_no_command_catches_is_printed_by_the_one_handler(
    tmp_path: Path,
) -> None:
    """`dr stop-training` leaves the StackError of a missing outputs file to the root
    handler (trackday/cli.py): one verbatim line and exit code 1, not a traceback."""
    outputs = tmp_path / "[secret]" / "outputs.json"
    result = CliRunner().invoke(
        app, ["dr", "stop-training", "--stack", "dev", "--outputs", str(outputs)]
    )
    assert result.exit_code == 1
    assert result.stderr == f"error: --outputs {outputs}: No such file or directory\n"
    assert isinstance(result.exception, SystemExit)  # not the StackError itself
