"""The scripts that stop a forgotten node from billing: power-off (deallocation on Azure,
where a VM only powered off still bills) and the idle check that calls it."""

from __future__ import annotations

import shlex

from contract.swarm import WORKLOAD_LABEL
from infra.bootstrap.spec import (
    BUILDING_FILE,
    IDLE_SINCE_FILE,
    POWEROFF_SCRIPT,
    READY_FILE,
    NodeBootstrap,
    shell_script,
)


def poweroff_script(node: NodeBootstrap) -> str:
    """Powers the node off, deallocating it on Azure with the node's own identity."""
    if node.cloud != "azure":
        return shell_script(
            f"Powers the node off; a stopped {node.cloud} instance no longer bills for compute.",
            'logger -t trackday "powering off" || true\nsystemctl poweroff\n',
        )
    return shell_script(
        "Deallocates this Azure VM (a VM only powered off still bills), else powers it off.",
        f"""\
imds=http://169.254.169.254/metadata
arm=https://management.azure.com
client_id={shlex.quote(node.azure_identity_client_id or "")}
logger -t trackday "deallocating this VM" || true
deallocate() {{
  local vm token
  vm=$(curl -fsS -H Metadata:true \\
    "$imds/instance/compute/resourceId?api-version=2021-02-01&format=text")
  token=$(curl -fsS -H Metadata:true \\
    "$imds/identity/oauth2/token?api-version=2018-02-01&resource=$arm/&client_id=$client_id" \\
    | jq -r .access_token)
  curl -fsS -X POST -H "Authorization: Bearer $token" -H "Content-Length: 0" \\
    "$arm$vm/deallocate?api-version=2024-07-01"
}}
if ! deallocate; then
  logger -t trackday "deallocation failed: powering off" || true
  systemctl poweroff
fi
""",
    )


def idle_script(node: NodeBootstrap) -> str:
    """Run every minute: powers the node off once it has been idle long enough."""
    return shell_script(
        f"Powers the node off once it has been idle for {node.idle_minutes} minutes: no running"
        f" container labelled {WORKLOAD_LABEL}, no SSH session, every GPU below"
        f" {node.idle_gpu_percent}%.",
        f"""\
busy() {{
  local running utilisation
  [ -f {READY_FILE} ] || return 0
  [ -e {BUILDING_FILE} ] && return 0  # the manager is building the trainer image
  running=$(docker ps --quiet --filter label={WORKLOAD_LABEL}) || return 0
  [ -n "$running" ] && return 0
  # Someone is deploying or running trackday here: both work over SSH.
  [ -n "$(ss -Htn state established '( sport = :22 )')" ] && return 0
  if command -v nvidia-smi >/dev/null 2>&1; then
    utilisation=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits \\
      | sort -n | tail -n 1) || return 0
    [ "${{utilisation:-0}}" -ge {node.idle_gpu_percent} ] && return 0
  fi
  return 1
}}
if busy; then
  rm -f {IDLE_SINCE_FILE}
  exit 0
fi
now=$(date +%s)
[ -f {IDLE_SINCE_FILE} ] || echo "$now" > {IDLE_SINCE_FILE}
since=$(cat {IDLE_SINCE_FILE})
if [ $(( (now - since) / 60 )) -ge {node.idle_minutes} ]; then
  logger -t trackday "idle for {node.idle_minutes} minutes" || true
  exec {POWEROFF_SCRIPT}
fi
""",
    )
