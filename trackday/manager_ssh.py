"""The Docker engine of a swarm's manager, over SSH with the stack's generated key.

The docker SDK reaches `ssh://` engines with paramiko but only with keys from the operator's
own SSH set-up. The stack's key (the `sshPrivateKey` output, a Pulumi secret) is handed to
paramiko from memory here: it is never written to disk, and never reaches another process.

The manager must prove it holds the host key the stack recorded (`managerHostKey`); no
other key is accepted, not even one in the operator's known_hosts (cloud addresses are
reused), and without a recorded key nothing connects. What that key is worth: on gcp the
stack reads it through the Compute API (the VM's guest attributes); on aws and azure over
its first SSH connection to the new VM, which checks no host key itself, so it trusts the
network path between the deployer and the cloud at that moment (docs/configuration.md).
"""

from __future__ import annotations

import io

import docker
import docker.errors
import paramiko
from docker.transport import SSHHTTPAdapter

from contract.outputs import SwarmSite
from trackday.errors import ManagerError

# Asked for before the engine's own version is known: old enough for every engine in use.
BOOTSTRAP_API_VERSION = "1.41"
_KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
# The one key the engine's connection pool is kept under (see _KeyedSSHAdapter.get_connection).
_POOL_KEY = "http+docker://ssh"


def load_key(text: str) -> paramiko.PKey:
    """A private key from OpenSSH or PEM text; says so clearly when it is none of them."""
    for key_type in _KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ManagerError(
        f"{SwarmSite.key('ssh_private_key')}: not an Ed25519, ECDSA or RSA private key; "
        "pass the stack's outputs with --show-secrets"
    )


def load_host_key(text: str) -> paramiko.PKey:
    """A host's public key from its `.pub` line ("ssh-ed25519 AAAA... comment")."""
    entry = paramiko.hostkeys.HostKeyEntry.from_line(f"host {text.strip()}")
    if entry is None:
        raise ManagerError(
            f"{SwarmSite.key('manager_host_key')}: {text[:40]!r} is not an SSH public key"
        )
    return entry.key


class _KeyedSSHAdapter(SSHHTTPAdapter):
    """docker's SSH transport, logging in with one given key, to a host with a known key."""

    def __init__(
        self,
        base_url: str,
        key: paramiko.PKey,
        port: int | None,
        host_key: paramiko.PKey,
    ) -> None:
        self._key = key
        self._port = port
        self._host_key = host_key
        super().__init__(base_url, shell_out=False)

    def _create_paramiko_client(self, base_url: str) -> None:
        super()._create_paramiko_client(base_url)
        self.ssh_params.update(pkey=self._key, look_for_keys=False, allow_agent=False)
        # docker's transport leaves the port None without one in the URL, which paramiko dials
        # as port 0: a cloud manager (no port given) was unreachable.
        self.ssh_params["port"] = self._port or self.ssh_params.get("port") or 22
        # Only the recorded key: paramiko would prefer a known_hosts entry for the address.
        self.ssh_client.get_host_keys().clear()
        self.ssh_client._system_host_keys.clear()
        self.ssh_client.set_missing_host_key_policy(paramiko.RejectPolicy())
        host = self.ssh_params["hostname"]
        port = self.ssh_params.get("port") or 22
        name = host if port == 22 else f"[{host}]:{port}"
        self.ssh_client.get_host_keys().add(name, self._host_key.get_name(), self._host_key)

    def get_connection(self, url: str, proxies=None):
        """One connection pool for the engine. docker's transport keeps one per request URL,
        each holding an SSH session (`docker system dial-stdio`) open: after ten different
        requests sshd's MaxSessions (10 by default, as on Ubuntu's cloud images) refused the
        next ("no more sessions"), and `trackday dr stop-training` failed on a cloud manager."""
        return super().get_connection(_POOL_KEY, proxies)


def connect(
    address: str,
    user: str,
    private_key: str,
    port: int | None = None,
    host_key: str | None = None,
    timeout: float = 60,
) -> docker.DockerClient:
    """A docker client for the engine on `address`, through SSH as `user` with `private_key`.

    `host_key` (the stack's `managerHostKey`) is required: any other host at that address is
    refused.
    """
    if not host_key or not host_key.strip():
        raise ManagerError(
            f"the stack records no SSH host key for its manager ({address}): refusing to "
            "connect to a host that cannot be told from another; run `pulumi up` for the "
            f"stack (it records {SwarmSite.key('manager_host_key')}), or pass outputs that have it"
        )
    url = f"ssh://{user}@{address}"
    key = load_key(private_key)
    known = load_host_key(host_key)
    # Shell-out mode makes no connection yet; the keyed transport then replaces it.
    client = docker.DockerClient(
        base_url=url, version=BOOTSTRAP_API_VERSION, use_ssh_client=True, timeout=timeout
    )
    api = client.api
    try:
        adapter = _KeyedSSHAdapter(url, key, port, known)
        api.mount("http+docker://ssh", adapter)
        api._custom_adapter = adapter
        api._version = api._retrieve_server_version()
    except (paramiko.SSHException, OSError, docker.errors.DockerException) as exc:
        raise ManagerError(f"cannot reach the Docker engine at {url}: {exc}") from None
    return client
