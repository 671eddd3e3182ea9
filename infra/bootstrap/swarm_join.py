"""The scripts pulumi-command runs over SSH to form the swarm: the manager's join token, a
worker's join (the token on stdin), and the labels the manager gives a joined worker."""

from __future__ import annotations

import shlex

from infra.bootstrap.spec import (
    _ADDRESS_PATTERN,
    _NODE_ID_PATTERN,
    NODE_ENV_FILE,
    READY_FILE,
    READY_TIMEOUT_MINUTES,
    REPORT_AFTER_FAILURES,
    SWARM_PORT,
    NodeBootstrap,
    node_labels,
    shell_script,
)

# The bootstrap retries itself (Restart=on-failure, every BOOTSTRAP_RETRY_SECONDS): a deploy
# waiting on it says so, with its log, once it has failed REPORT_AFTER_FAILURES times in a row,
# instead of waiting out the whole timeout while a broken node keeps retrying.
_WAIT_READY = f"""\
for _ in $(seq {READY_TIMEOUT_MINUTES * 12}); do
  [ -f {READY_FILE} ] && break
  restarts=$(systemctl show --property NRestarts --value trackday-bootstrap.service || echo 0)
  if systemctl is-failed --quiet trackday-bootstrap.service ||
    [ "${{restarts:-0}}" -ge {REPORT_AFTER_FAILURES} ]; then
    echo "trackday: node bootstrap failed:" >&2
    journalctl --no-pager --lines 40 --unit trackday-bootstrap >&2 || true
    exit 1
  fi
  sleep 5
done
[ -f {READY_FILE} ] || {{
  echo "trackday: node bootstrap not done after {READY_TIMEOUT_MINUTES} min:" \\
    "see journalctl -u trackday-bootstrap" >&2
  exit 1
}}
"""


def join_token_script() -> str:
    """Run on the manager over SSH: prints the worker join token (mark its stdout secret)."""
    return shell_script(
        "Prints the Swarm worker join token once the manager's bootstrap is done.",
        _WAIT_READY + "docker swarm join-token --quiet worker\n",
    )


def join_script(manager_address: str) -> str:
    """Run on a worker over SSH, the join token on stdin: joins the swarm, prints the node ID.

    The token goes from stdin through jq into the Engine API, so it is never an argument
    of any process (visible to every user in `ps`).
    """
    if not _ADDRESS_PATTERN.fullmatch(manager_address):
        raise ValueError(f"manager address {manager_address!r} is not a host name or IP address")
    return shell_script(
        "Joins this node to the trackday swarm as a worker; the join token comes on stdin.",
        _WAIT_READY
        + f"""\
# shellcheck source=/dev/null
. {NODE_ENV_FILE}
if [ "$(docker info --format '{{{{.Swarm.LocalNodeState}}}}')" != active ]; then
  jq --raw-input --arg manager {shlex.quote(f"{manager_address}:{SWARM_PORT}")} \\
    --arg address "$TRACKDAY_PRIVATE_IP" \\
    '{{JoinToken: ., RemoteAddrs: [$manager], AdvertiseAddr: $address,
      ListenAddr: ($address + ":{SWARM_PORT}")}}' \\
    | curl -fsS --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' \\
      --data-binary @- http://localhost/swarm/join >&2
fi
docker info --format '{{{{.Swarm.NodeID}}}}'
""",
    )


def label_script(node_id: str, node: NodeBootstrap) -> str:
    """Run on the manager over SSH: gives a joined worker its placement labels.

    `node_id` is what `join_script` printed on the worker.
    """
    node_id = node_id.strip()
    if not _NODE_ID_PATTERN.fullmatch(node_id):
        raise ValueError(f"Swarm node ID {node_id!r} is not 25 lowercase letters and digits")
    return shell_script(
        "Labels a Swarm node for placement.",
        f"docker node update {label_args(node)} {node_id}\n",
    )


def label_args(node: NodeBootstrap) -> str:
    """The `docker node update` arguments that set a node's labels."""
    return " ".join(
        f"--label-add {shlex.quote(f'{key}={value}')}"
        for key, value in node_labels(node.role, node.labels).items()
    )
