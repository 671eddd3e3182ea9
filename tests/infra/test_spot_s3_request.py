"""The spot handler's S3 request (infra/bootstrap/s3_request.py), run with real bash
and curl against the SigV4-verifying S3 stand-in: it is signed as S3 accepts it, and the
role's keys never appear in curl's argv, which any process on the node can read."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from infra.bootstrap.s3_request import S3_FUNCTION
from tests.infra import aws_standins

REGION = "eu-west-1"
BUCKET = "trackday-runs"
KEY = "dr-1/model/deepracer_checkpoints.json"


def test_the_handlers_s3_request_is_signed_and_keeps_the_keys_off_the_command_line(
    tmp_path: Path,
) -> None:
    role = aws_standins.Role(
        "trackday-manager",
        [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}],
    )
    account = aws_standins.Account(REGION, [role])
    account.objects[(BUCKET, KEY)] = b'{"last_checkpoint": {"name": "3_Step-30.ckpt"}}'
    server = aws_standins.s3(account)
    argv_log = tmp_path / "argv"
    wrapper = tmp_path / "bin" / "curl"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/bash\nprintf "%s\\n" "$@" >> {argv_log}\nexec {shutil.which("curl")} "$@"\n'
    )
    wrapper.chmod(0o755)
    url = f"http://127.0.0.1:{server.server_address[1]}/{BUCKET}/{KEY}"
    script = (
        f"region={REGION} ak='{role.access_key}' sk='{role.secret_key}' session='{role.token}'\n"
        + S3_FUNCTION
        + f"s3 GET '{url}'\n"
    )
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            env={"PATH": f"{wrapper.parent}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stdout == account.objects[(BUCKET, KEY)].decode()
    argv = argv_log.read_text()
    assert role.secret_key not in argv and role.token not in argv
