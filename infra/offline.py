"""Run the Pulumi program offline, under Pulumi's own mock engine, and record what it declares.

`trackday plan`, the tests and the policy pack need the resources a stack would declare
without a Pulumi CLI, plugins or cloud credentials. `pulumi.runtime.set_mocks` replaces the
engine; the monitor below records every registration (type, name, parent, protect, inputs)
and the mocks fill in the few outputs a provider would compute (an e-mail, a URL, a
generated password), so that the program's `apply`s run as they would for real.

Each run gets a fresh contextvars context and event loop: Pulumi keeps its settings, config
and root stack in context variables, so runs never see each other.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

PROJECT = "trackday"
SECRET = "[secret]"


@dataclass(frozen=True)
class DeclaredResource:
    """One resource as `pulumi up` would register it. Secret inputs are shown as "[secret]"."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    protect: bool
    inputs: dict[str, Any]
    secret_inputs: tuple[str, ...] = ()
    # Left in the cloud by `pulumi destroy` (dropped from the stack, not deleted).
    retain_on_delete: bool = False
    # URNs of the resources it was declared to wait for (`depends_on`).
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackOutput:
    value: Any
    secret: bool


@dataclass
class OfflineRun:
    """What a program declared under the mock engine: its resources and stack outputs."""

    stack: str
    resources: list[DeclaredResource] = field(default_factory=list)
    outputs: dict[str, StackOutput] = field(default_factory=dict)
    # Inputs by URN with secrets in the clear, for checks that need the values; never printed.
    raw_inputs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> DeclaredResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {len(found)}")
        return found[0]


def run_offline(
    program: Callable[[], Mapping[str, Any]],
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str] | None = None,
) -> OfflineRun:
    """Run `program` (which declares resources and returns stack outputs) under the mocks.

    `config` is the namespaced config as the Pulumi CLI would hand it to the program
    (`{"trackday:target": "local", "trackday:nodes": '{"count": 2}'}`).
    """
    return contextvars.Context().run(_run, program, stack, dict(config), secret_keys or [])


def stack_config(values: Mapping[str, Any]) -> dict[str, str]:
    """Stack-file values in the form Pulumi passes config on: scalars as text, the rest as JSON."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict | list):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _run(program, stack, config, secret_keys) -> OfflineRun:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    result = OfflineRun(stack=stack)
    monitor = _RecordingMonitor(_ProviderMocks(stack), result)
    try:
        pulumi.runtime.set_all_config(config, secret_keys)
        pulumi.runtime.set_mocks(
            monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor
        )

        @pulumi.runtime.test
        def declare():
            outputs = program()
            return pulumi.Output.all(
                *[_settle(name, value, result) for name, value in outputs.items()]
            )

        declare()
    finally:
        # Pulumi calls the monitor from the loop's worker threads, each of which makes an event
        # loop of its own: end those threads now, so their loops go with them, not at exit.
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)
    result.resources.sort(key=lambda r: r.urn)
    return result


def _settle(name: str, value: Any, result: OfflineRun) -> pulumi.Output:
    """Record an output's resolved value and whether Pulumi keeps it secret."""
    out = pulumi.Output.from_input(value)

    async def record() -> None:
        resolved = await out.future()
        secret = await out.is_secret()
        result.outputs[name] = StackOutput(resolved, bool(secret))

    return pulumi.Output.from_input(asyncio.ensure_future(record()))


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """Pulumi's mock monitor, keeping the parts of each registration the mocks do not see."""

    def __init__(self, mocks: pulumi_mocks.Mocks, result: OfflineRun):
        super().__init__(mocks)
        self.result = result

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
            self.result.raw_inputs[response.urn] = _unwrap(inputs)
            secret_paths: list[str] = []
            self.result.resources.append(
                DeclaredResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=request.custom,
                    protect=bool(request.protect),
                    inputs=_redact(inputs, "", secret_paths),
                    secret_inputs=tuple(secret_paths),
                    retain_on_delete=bool(request.retainOnDelete),
                    dependencies=tuple(request.dependencies),
                )
            )
        return response


def _redact(value: Any, path: str, secret_paths: list[str]) -> Any:
    """Replace secret values by "[secret]", noting where they were."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            secret_paths.append(path)
            return SECRET
        return {k: _redact(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has only floats; ports and sizes read better as ints
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return {type(value).__name__[0].lower() + type(value).__name__[1:]: value.path}
    return value


class _ProviderMocks(pulumi_mocks.Mocks):
    """What the providers would compute on create, as far as the program reads it."""

    def __init__(self, stack: str):
        self.stack = stack
        self.gcp_project = "project"

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        state = _unwrap(dict(args.inputs))
        state.setdefault("name", args.name)
        if args.typ == "pulumi:providers:gcp":
            self.gcp_project = state.get("project", self.gcp_project)
        elif args.typ.startswith("gcp:"):
            # As the provider does: a resource without a project is in the provider's.
            state.setdefault("project", self.gcp_project)
        computed = _COMPUTED.get(args.typ)
        if computed:
            state.update(computed(args.name, state))
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs):
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": _fake("token", "gcp"), "project": "", "region": "", "zone": ""}
        if args.token == "aws:ec2/getAmi:getAmi":
            # The newest image matching the name filter, as EC2 would answer.
            pattern = next(f["values"][0] for f in args.args["filters"] if f["name"] == "name")
            return {
                "id": "ami-0" + _digest(pattern)[:16],
                "name": pattern.replace("*", "20260101"),
                "architecture": "x86_64",
                "ownerId": "898082745236",
                # As the Deep Learning Base GPU AMI ships: a 75 GB root snapshot.
                "rootDeviceName": "/dev/sda1",
                "blockDeviceMappings": [
                    {
                        "deviceName": "/dev/sda1",
                        "ebs": {"volume_size": "75"},
                        "noDevice": "",
                        "virtualName": "",
                    },
                ],
            }
        if args.token == "gcp:compute/getInstanceGuestAttributes:getInstanceGuestAttributes":
            # What the guest publishes at first boot: each host key's type and base64.
            body = "AAAAC3NzaC1lZDI1NTE5AAAAI" + _digest(args.args["name"])[:43]
            return {
                "queryValues": [
                    {"namespace": "hostkeys", "key": "ecdsa-sha2-nistp256", "value": "AAAAE2Vj"},
                    {"namespace": "hostkeys", "key": "ssh-ed25519", "value": body},
                ]
            }
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": _uuid("subscription"),
                "tenantId": _uuid("tenant"),
                "clientId": _uuid("client"),
                "objectId": _uuid("deployer"),
            }
        return {}


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _unwrap(value["value"])
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _fake(kind: str, name: str) -> str:
    """A stable stand-in for a value a provider generates (never a real credential)."""
    return f"mock-{kind}-" + _digest(name)[:16]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _uuid(name: str) -> str:
    h = _digest(name)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _address(prefix: str, name: str) -> str:
    """A stable address in a documentation or private range, one per resource name."""
    return f"{prefix}.{int(_digest(name)[:2], 16) % 250 + 4}"


def _password(n: str, s: dict) -> str:
    """A generated password of the asked length; letters and digits only without `special`."""
    if s.get("special", True):
        return _fake("password", n)
    text = "mock" + (_digest(n) * 4)
    return text[: int(s.get("length", 16))]


def _ssh_key(n: str, s: dict) -> dict:
    """An OpenSSH key pair of the shapes tls.PrivateKey returns (not a usable key)."""
    body = _digest(n)
    return {
        "publicKeyOpenssh": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{body}\n",
        "privateKeyOpenssh": "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        f"{_fake('ssh-key', n)}\n-----END OPENSSH PRIVATE KEY-----\n",
        "privateKeyPem": "-----BEGIN PRIVATE KEY-----\n"
        f"{_fake('pem', n)}\n-----END PRIVATE KEY-----\n",
    }


_COMPUTED: dict[str, Callable[[str, dict], dict]] = {
    "random:index/randomPassword:RandomPassword": lambda n, s: {"result": _password(n, s)},
    "gcp:serviceaccount/account:Account": lambda n, s: {
        "email": f"{s['accountId']}@{s['project']}.iam.gserviceaccount.com",
    },
    "gcp:serviceaccount/key:Key": lambda n, s: {"privateKey": _fake("key", n)},
    "gcp:storage/bucket:Bucket": lambda n, s: {"url": f"gs://{s['name']}"},
    "gcp:artifactregistry/repository:Repository": lambda n, s: {
        "registryUri": (f"{s['location']}-docker.pkg.dev/{s['project']}/{s['repositoryId']}"),
    },
    "docker-build:index:Image": lambda n, s: {
        "ref": f"{s['tags'][0]}@sha256:{hashlib.sha256(n.encode()).hexdigest()}",
        "digest": f"sha256:{hashlib.sha256(n.encode()).hexdigest()}",
    },
    "docker:index/image:Image": lambda n, s: {"repoDigest": f"{s['imageName']}@sha256:{'0' * 64}"},
    "docker:index/remoteImage:RemoteImage": lambda n, s: {"imageId": f"sha256:{'1' * 64}"},
    "random:index/randomString:RandomString": lambda n, s: {
        "result": _digest(n)[: int(s["length"])]
    },
    "tls:index/privateKey:PrivateKey": _ssh_key,
    "aws:s3/bucket:Bucket": lambda n, s: {
        "bucket": s.get("bucket") or n,
        "arn": f"arn:aws:s3:::{s.get('bucket') or n}",
    },
    "aws:iam/role:Role": lambda n, s: {"arn": f"arn:aws:iam::123456789012:role/{n}"},
    "aws:cloudwatch/logGroup:LogGroup": lambda n, s: {
        "arn": f"arn:aws:logs:us-east-1:123456789012:log-group:{n}"
    },
    "azure-native:storage:StorageAccount": lambda n, s: {"name": s["accountName"]},
    "azure-native:keyvault:Vault": lambda n, s: {
        "name": s["vaultName"],
        "properties": {**s["properties"], "vaultUri": f"https://{s['vaultName']}.vault.azure.net/"},
    },
    # The azure and aws managers' "done" (infra/targets/store_wait.py): the host key it
    # published.
    "pulumi-python:dynamic:Resource": lambda n, s: (
        {"host_key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{_digest(n)}"}
        if "secret" in s or "parameter" in s
        else {}
    ),
    "aws:ssm/parameter:Parameter": lambda n, s: {
        "arn": f"arn:aws:ssm:us-east-1:123456789012:parameter{s['name']}"
    },
    "azure-native:managedidentity:UserAssignedIdentity": lambda n, s: {
        "clientId": _uuid(f"{n}-client"),
        "principalId": _uuid(f"{n}-principal"),
    },
    "azure-native:network:PublicIPAddress": lambda n, s: {"ipAddress": _address("198.51.100", n)},
    "azure-native:network:NetworkInterface": lambda n, s: {
        "ipConfigurations": [
            {**c, "privateIPAddress": _address("10.42.1", n)} for c in s["ipConfigurations"]
        ]
    },
    "azure-native:compute:VirtualMachine": lambda n, s: {
        "vmId": _uuid(n),
        # The API answers with a map of the identities given as a list.
        "identity": {
            **s.get("identity", {}),
            "userAssignedIdentities": {
                i: {} for i in s.get("identity", {}).get("userAssignedIdentities", [])
            },
        },
    },
    "gcp:compute/instance:Instance": lambda n, s: {
        "networkInterfaces": [
            {
                **s["networkInterfaces"][0],
                "networkIp": _address("10.42.1", n),
                "accessConfigs": [
                    {"natIp": c.get("natIp") or _address("198.51.100", n)}
                    for c in s["networkInterfaces"][0].get("accessConfigs") or [{}]
                ],
            }
        ],
        "instanceId": _digest(n)[:19],
    },
    "aws:ec2/instance:Instance": lambda n, s: {
        "publicIp": _address("198.51.100", n),
        "privateIp": _address("10.42.1", n),
    },
    "aws:ec2/spotInstanceRequest:SpotInstanceRequest": lambda n, s: {
        "publicIp": _address("198.51.100", n),
        "privateIp": _address("10.42.1", n),
        "spotInstanceId": "i-0" + _digest(n)[:16],
    },
    "aws:ec2/eip:Eip": lambda n, s: {"publicIp": _address("203.0.113", n)},
    "gcp:compute/address:Address": lambda n, s: {"address": _address("203.0.113", n)},
}
