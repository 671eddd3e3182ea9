"""The CLI's transfer bar, drawn from training.storage's progress callback."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from trackday.transfer_bar import transfer_bar
from training import storage


def test_the_bar_shows_each_phase_of_a_real_upload(tmp_path: Path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=160)
    source = tmp_path / "tub.tar.zst"
    source.write_bytes(b"x" * 300_000)

    with transfer_bar(console) as progress:
        storage.upload(source, str(tmp_path / "bucket" / "tub.tar.zst"), progress=progress)

    drawn = out.getvalue()
    assert f"verifying {tmp_path}/bucket/tub.tar.zst" in drawn  # the last phase, at its end
    assert "300.0/300.0 kB" in drawn


def test_no_bar_off_a_terminal(tmp_path: Path):
    out = io.StringIO()
    with transfer_bar(Console(file=out, force_terminal=False)) as progress:
        progress("uploading a.bin", 10, 20)
    assert out.getvalue() == ""
