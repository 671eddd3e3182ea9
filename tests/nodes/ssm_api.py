"""AWS as an aws node reaches it when the nodes form the swarm themselves, for the node tests:
run in a container on the nodes' network,

    python3 ssm_api.py CONFIG CERT KEY STATE

it serves the strict stand-ins of tests/infra/aws_standins.py (mounted beside it, botocore on
PYTHONPATH): Parameter Store over TLS on port 443 (the network knows this container as
`ssm.<region>.amazonaws.com`; its certificate is signed by the test's CA, which the nodes
trust), and IMDSv2 on port 80, answering each node (by its address: the node's forwarder,
aws_api.py, connects from it) with its own role's credentials and instance id. CONFIG (JSON):
`region`, `roles` [{name, statements, access_key, secret_key, token, address, instance_id}],
`parameters` {name: {Value, Type}} as the stack creates them. Every parameter write is
mirrored to STATE/parameters.json (renamed into place), which the test reads.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
from pathlib import Path

import aws_standins  # mounted beside this script


def main(config_file: str, cert: str, key: str, state: str) -> None:
    config = json.loads(Path(config_file).read_text())
    roles = [
        aws_standins.Role(r["name"], r["statements"], r["access_key"], r["secret_key"], r["token"])
        for r in config["roles"]
    ]
    nodes = {
        r["address"]: (role, r["instance_id"])
        for r, role in zip(config["roles"], roles, strict=True)
        if r.get("address")
    }
    account = aws_standins.Account(config["region"], roles)
    for name, parameter in config["parameters"].items():
        account.put(name, parameter["Value"], parameter["Type"])
    mirror = Path(state) / "parameters.json"

    lock = threading.Lock()

    class Ssm(aws_standins.Ssm):
        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"ssm: {format % args}\n")

        def do_POST(self) -> None:
            super().do_POST()
            with lock:
                mirror.with_suffix(".new").write_text(json.dumps(account.parameters))
                mirror.with_suffix(".new").rename(mirror)

    # Both on every address of this container (it is alone on the test's internal network).
    aws_standins.serve(aws_standins.Imds, ("0.0.0.0", 80), node_of=nodes.__getitem__, tokens=set())
    server = aws_standins.ThreadingHTTPServer(("0.0.0.0", 443), Ssm)
    server.account = account  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    sys.stderr.write("serving\n")
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:5])
