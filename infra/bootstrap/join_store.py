"""The swarm formed by the nodes themselves, through the cloud's secret store: no SSH from
the deployer (issue 11 item 2: a CI runner's address is not in `network.allowedCidrs`).

The manager, once `docker swarm init` is done, writes the worker join token and its own
private address to the stack's secret with its own identity (the only identity allowed to
write it); each worker, with its identity (allowed to read it only), waits for that secret
and joins. The token travels through pipes only (jq into the Engine API), never on a command
line, and never in user data. The manager labels the workers that joined itself (a timer,
labels from the pool's config): a worker cannot claim a role. The manager finally publishes
"bootstrap done", which the deployer waits for through the cloud's API.

GCP (the only store so far): Secret Manager REST v1 — `POST .../secrets/{id}:addVersion` with
`{"payload": {"data": <base64>}}`, `GET .../secrets/{id}/versions/latest:access` answering
`{"name", "payload": {"data"}}` and 404 while the secret has no version
(https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/addVersion,
.../projects.secrets.versions/access); the access token from the metadata server
(`instance/service-accounts/default/token`, header `Metadata-Flavor: Google`), and "done" as
the guest attribute `trackday/bootstrap` (PUT to `instance/guest-attributes/...`; the
deployer reads it with `instances.getGuestAttributes`).

Azure: Key Vault secrets REST 7.4 with RBAC — `PUT {vault}/secrets/{name}?api-version=7.4`
with `{"value"}` adds a version (permission secrets/set: "Key Vault Secrets Officer"), `GET
{vault}/secrets/{name}?api-version=7.4` answers `{"value", "id", "attributes"}`, 404
`SecretNotFound` before it exists (secrets/get: "Key Vault Secrets User")
(https://learn.microsoft.com/rest/api/keyvault/secrets/set-secret/set-secret, .../get-secret);
the bearer token from IMDS for resource `https://vault.azure.net` and the node's
user-assigned identity (`GET http://169.254.169.254/metadata/identity/oauth2/token
?api-version=2018-02-01&resource=...&client_id=...`, header `Metadata: true`;
https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
"Done" is the vault's `trackday-ready` secret, `{"bootstrap": "done", "hostKey", "vmId"}` (the
VM id from IMDS `instance/compute/vmId`: a replaced manager's is new), which the
deployer reads with its own sign-in (infra/targets/azure_ready.py).

AWS: Systems Manager Parameter Store with the instance role (infra/bootstrap/aws_store.py says
how): the manager puts `{token, manager}` to the SecureString join parameter (its role may
put exactly that one and its siblings), workers get it (their role may get that one only);
"done" is the sibling String parameter `trackday-ready`, `{"bootstrap": "done", "hostKey",
"vmId"}` (the EC2 instance id), which the deployer reads (infra/targets/aws_ready.py).
"""

from __future__ import annotations

import shlex
import urllib.parse
from collections.abc import Mapping

import infra.bootstrap.aws_store as aws_store
from contract.swarm import ROLE_LABEL
from infra.bootstrap.spec import (
    AZURE_READY_SECRET,
    NODE_ENV_FILE,
    SWARM_PORT,
    JoinStore,
    Role,
    node_labels,
    shell_script,
)

GCP_METADATA = "http://metadata.google.internal/computeMetadata/v1"
GCP_SECRET_MANAGER = "https://secretmanager.googleapis.com/v1"
AZURE_IMDS = "http://169.254.169.254/metadata"
IMDS_API_VERSION = "2018-02-01"
IMDS_INSTANCE_API_VERSION = "2021-02-01"
VAULT_RESOURCE = "https://vault.azure.net"
VAULT_API = "7.4"
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
DOCKER_SOCKET = "/var/run/docker.sock"
LABEL_SCRIPT = "/usr/local/sbin/trackday-label-workers"
# Where the manager says its bootstrap is done: namespace/key of a GCP guest attribute.
READY_ATTRIBUTE = "trackday/bootstrap"
READY_VALUE = "done"
# A worker waits this long for the manager's token before its bootstrap fails (and retries).
JOIN_WAIT_MINUTES = 40
JOIN_POLL_SECONDS = 10


# The bearer header goes to a private file (mktemp: mode 0600) that curl reads with -H @file:
# the access token is never an argument either.
def store_auth(store: JoinStore | None = None, identity: str | None = None) -> str:
    """Defines `store_login`, which writes the node identity's bearer header to $store_auth
    (gcp: the VM's service account; azure: the user-assigned identity `identity`, for
    Key Vault; aws: the instance role's credentials, as a curl config for `-K`)."""
    if store is not None and store.cloud == "aws":
        return aws_store.login(store.secret)
    if store is None or store.cloud == "gcp":
        token_url = f"{GCP_METADATA}/instance/service-accounts/default/token"
        header = "Metadata-Flavor: Google"
    else:
        if not identity:
            raise ValueError("an azure node reads its store with its identity's client id")
        token_url = azure_token_url(identity, VAULT_RESOURCE)
        header = "Metadata: true"
    return f"""\
store_auth=$(mktemp)
store_body=$(mktemp)
trap 'rm -f "$store_auth" "$store_body"' EXIT
store_login() {{
  curl -fsS -H '{header}' \\
    '{token_url}' \\
    | jq -r '"Authorization: Bearer " + .access_token' > "$store_auth"
}}
"""


def azure_token_url(identity: str, resource: str) -> str:
    """IMDS's token endpoint for a user-assigned identity (by client id) and a resource."""
    return (
        f"{AZURE_IMDS}/identity/oauth2/token?api-version={IMDS_API_VERSION}"
        f"&resource={urllib.parse.quote(resource, safe='')}&client_id={identity}"
    )


def publish_section(store: JoinStore) -> str:
    """The manager's bootstrap, after `swarm init`: writes the token and its address (after
    `store_auth`, as every section that calls `store_login`)."""
    if store.cloud == "aws":
        return f"""\
store_login
docker swarm join-token --quiet worker \\
  | jq --raw-input --arg manager "$TRACKDAY_PRIVATE_IP:{SWARM_PORT}" \\
    '{{token: ., manager: $manager}}' \\
  | {aws_store.put(aws_store.parameter_name(store.secret), "SecureString")}"""
    if store.cloud == "gcp":
        body, write = (
            "tostring | @base64 | {payload: {data: .}}",
            f"{GCP_SECRET_MANAGER}/{store.secret}:addVersion",
        )
    else:
        body, write = "tostring | {value: .}", f"-X PUT {store.secret}?api-version={VAULT_API}"
    return f"""\
store_login
docker swarm join-token --quiet worker \\
  | jq --raw-input --arg manager "$TRACKDAY_PRIVATE_IP:{SWARM_PORT}" \\
    '{{token: ., manager: $manager}} | {body}' \\
  | curl -fsS -H @"$store_auth" -H 'Content-Type: application/json' --data-binary @- \\
    {write} > /dev/null
"""


def ready_section(store: JoinStore) -> str:
    """The manager's bootstrap, last: tells the deployer (who waits for it) that it is done.

    gcp: a guest attribute (the host key is already in `hostkeys/`); azure: the vault's ready
    secret, with the SSH host key the deployer then pins (type and key, no comment); aws:
    the same in the ready parameter, with the instance id."""
    if store.cloud == "gcp":
        return f"""\
curl -fsS -X PUT -H 'Metadata-Flavor: Google' --data-binary "{READY_VALUE}" \\
  {GCP_METADATA}/instance/guest-attributes/{READY_ATTRIBUTE}
"""
    if store.cloud == "aws":
        return f"""\
store_login
{aws_store.instance_id()}awk '{{print $1 " " $2}}' {HOST_KEY_FILE} \\
  | jq --raw-input --arg vm "$instance_id" \\
    '{{bootstrap: "{READY_VALUE}", hostKey: ., vmId: $vm}}' \\
  | {aws_store.put(aws_store.sibling(store.secret, AZURE_READY_SECRET))}"""
    return f"""\
store_login
vm_id=$(curl -fsS -H 'Metadata: true' \\
  '{AZURE_IMDS}/instance/compute/vmId?api-version={IMDS_INSTANCE_API_VERSION}&format=text')
awk '{{print $1 " " $2}}' {HOST_KEY_FILE} \\
  | jq --raw-input --arg vm "$vm_id" \\
    '{{bootstrap: "{READY_VALUE}", hostKey: ., vmId: $vm}} | tostring | {{value: .}}' \\
  | curl -fsS -X PUT -H @"$store_auth" -H 'Content-Type: application/json' --data-binary @- \\
    {store.ready_secret}?api-version={VAULT_API} > /dev/null
"""


def join_section(store: JoinStore) -> str:
    """A worker's bootstrap: waits for the manager's token, then joins through the Engine API.

    404 means the manager has not written it yet (on azure the secret may also hold the
    placeholder the deployer created it with: no token yet); any other failure (a refused
    identity) fails the bootstrap loudly, and systemd retries it."""
    minutes = JOIN_WAIT_MINUTES
    if store.cloud == "aws":
        decode = aws_store.STORED
        wait = aws_store.wait_for_token(store.secret, minutes, JOIN_POLL_SECONDS)
        return _join(decode, wait)
    if store.cloud == "gcp":
        read = f"{GCP_SECRET_MANAGER}/{store.secret}/versions/latest:access"
        decode = 'jq -r .payload.data "$store_body" | base64 -d'
    else:
        read = f"{store.secret}?api-version={VAULT_API}"
        decode = 'jq -r .value "$store_body"'
    return _join(
        decode,
        f"""\
  deadline=$((SECONDS + {minutes * 60}))
  while :; do
    store_login
    status=$(curl -sS -o "$store_body" -w '%{{http_code}}' -H @"$store_auth" \\
      '{read}') || status=000
    if [ "$status" = 200 ]; then
      stored | jq -e '.token? // empty' > /dev/null 2>&1 && break
    elif [ "$status" != 404 ]; then
      echo "trackday: reading the join token from {store.secret} failed (HTTP $status):" \\
        "$(jq -r '.error.message? // empty' "$store_body" 2>/dev/null)" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "trackday: the manager wrote no join token to {store.secret} in {minutes} min" >&2
      exit 1
    fi
    sleep {JOIN_POLL_SECONDS}
  done
""",
    )


def _join(decode: str, wait: str) -> str:
    """Unless in a swarm already: `wait` until `stored` (`decode`) gives the token, then join."""
    return f"""\
stored() {{ {decode}; }}
if [ "$(docker info --format '{{{{.Swarm.LocalNodeState}}}}')" != active ]; then
{wait}  # shellcheck source=/dev/null
  . {NODE_ENV_FILE}
  stored \\
    | jq --arg address "$TRACKDAY_PRIVATE_IP" \\
      '{{JoinToken: .token, RemoteAddrs: [.manager], AdvertiseAddr: $address,
        ListenAddr: ($address + ":{SWARM_PORT}")}}' \\
    | curl -fsS --unix-socket {DOCKER_SOCKET} -H 'Content-Type: application/json' \\
      --data-binary @- http://localhost/swarm/join >&2
fi
"""


def label_args(role: Role, labels: Mapping[str, str]) -> str:
    """The `docker node update` arguments that set a node's labels."""
    return " ".join(
        f"--label-add {shlex.quote(f'{key}={value}')}"
        for key, value in node_labels(role, labels).items()
    )


def label_workers_script(labels: Mapping[str, str]) -> str:
    """Run on the manager by a timer: gives every joined worker without a role its labels
    (the pool's worker labels: every worker is a simulation node)."""
    args = label_args("worker", labels)
    return shell_script(
        "Labels the workers that joined this manager's swarm (a worker cannot label itself).",
        f"""\
[ "$(docker info --format '{{{{.Swarm.LocalNodeState}}}}')" = active ] || exit 0
docker node ls --filter role=worker --format '{{{{.ID}}}}' | while read -r id; do
  if ! docker node inspect --format '{{{{json .Spec.Labels}}}}' "$id" \\
    | jq -e --arg role {shlex.quote(ROLE_LABEL)} '(. // {{}}) | has($role)' > /dev/null; then
    docker node update {args} "$id"
  fi
done
""",
    )
