"""Node bootstrap: every rendered document passes `cloud-init schema`, every script `shellcheck`,
and what the documents do (Swarm roles, labels, power-off timers, no secret) is checked on them."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from contract.swarm import WORKLOAD_LABEL
from infra import bootstrap, gateway
from infra.bootstrap import NodeBootstrap
from infra.bootstrap.spec import JoinStore
from infra.nodes import gzip_base64

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7wrFzfOn0XQ3qgKj1TAm1ZcA0IQH2HKxq4V1f1l3M td"
CLIENT_ID = "0f9c2a5e-3b1d-4c7e-9a8f-2d6b1e4c7a90"
CLOUD_INIT_SCHEMA = Path("/usr/lib/python3/dist-packages/cloudinit/config/schemas")
KEYS_URL = "https://trackday-dev-0a1b2c.vault.azure.net/secrets/gateway-keys"
GATEWAY = gateway.node_service(gateway.GatewaySettings("trackdaydata", CLIENT_ID, KEYS_URL))

JOIN_STORE = JoinStore("gcp", "projects/trackday-test/secrets/trackday-swarm-join")
AZURE_STORE = JoinStore("azure", "https://trackday-dev-0a1b2c.vault.azure.net/secrets/swarm-join")
AWS_STORE = JoinStore("aws", "arn:aws:ssm:us-east-1:123456789012:parameter/trackday/dev/swarm-join")
BASE = NodeBootstrap(role="manager", cloud="aws", ssh_user="trackday", ssh_public_key=SSH_KEY)
NODES = {
    "aws-manager-ttl": replace(BASE, ttl_hours=8),
    "aws-worker-idle-prepull": replace(
        BASE,
        role="worker",
        idle_minutes=20,
        prepull_images=("awsdeepracercommunity/deepracer-simapp:5.3.3-gpu",),
    ),
    "gcp-manager-cpu-labels": replace(
        BASE, cloud="gcp", gpu=False, labels={"zone": "europe-west4-a"}, ttl_hours=0.5
    ),
    "gcp-worker": replace(BASE, cloud="gcp", role="worker"),
    "aws-manager-join-store": replace(BASE, join_store=AWS_STORE, spot=True),
    "aws-worker-join-store": replace(BASE, role="worker", join_store=AWS_STORE),
    "gcp-manager-join-store": replace(BASE, cloud="gcp", join_store=JOIN_STORE),
    "gcp-worker-join-store": replace(BASE, cloud="gcp", role="worker", join_store=JOIN_STORE),
    "azure-manager-join-store": replace(
        BASE, cloud="azure", azure_identity_client_id=CLIENT_ID, join_store=AZURE_STORE
    ),
    "azure-worker-join-store": replace(
        BASE,
        cloud="azure",
        role="worker",
        azure_identity_client_id=CLIENT_ID,
        join_store=AZURE_STORE,
    ),
    "azure-manager-gateway": replace(
        BASE,
        cloud="azure",
        azure_identity_client_id=CLIENT_ID,
        join_store=AZURE_STORE,
        services=(GATEWAY,),
        ttl_hours=12,
        idle_minutes=30,
        idle_gpu_percent=5,
    ),
    "azure-worker": replace(
        BASE, cloud="azure", role="worker", azure_identity_client_id=CLIENT_ID, ttl_hours=4
    ),
    # Spot nodes (infra/bootstrap/spot.py), the largest user data of each cloud.
    "aws-manager-spot": replace(BASE, spot=True, ttl_hours=8, idle_minutes=30),
    "gcp-worker-spot": replace(BASE, cloud="gcp", role="worker", spot=True),
    "azure-manager-spot": replace(
        BASE,
        cloud="azure",
        azure_identity_client_id=CLIENT_ID,
        services=(GATEWAY,),
        spot=True,
        join_store=AZURE_STORE,
    ),
}


def document(node: NodeBootstrap) -> dict:
    text = bootstrap.user_data(node)
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def files(node: NodeBootstrap) -> dict[str, str]:
    return {entry["path"]: entry["content"] for entry in document(node)["write_files"]}


def shellcheck(script: str) -> None:
    assert script.startswith("#!/bin/bash\n")
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", "-"],
        input=script,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    for tool in ("cloud-init", "shellcheck", "systemd-analyze"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: run scripts/setup test")


@pytest.mark.parametrize("name", NODES)
def test_user_data_passes_cloud_init_schema(name: str, tmp_path: Path) -> None:
    path = tmp_path / "user-data"
    path.write_text(bootstrap.user_data(NODES[name]))
    result = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def known_cloud_config_keys() -> set[str]:
    """Top-level keys some cloud-init module reads (`cloud-init schema` lets unknown ones pass)."""
    schema = json.loads((CLOUD_INIT_SCHEMA / "schema-cloud-config-v1.json").read_text())
    keys: set[str] = set()
    for ref in schema["allOf"]:
        definition = schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]
        keys.update(definition.get("properties", {}))
    return keys


@pytest.mark.parametrize("name", NODES)
def test_user_data_uses_only_keys_cloud_init_knows(name: str) -> None:
    assert set(document(NODES[name])) <= known_cloud_config_keys()


@pytest.mark.parametrize("name", NODES)
def test_every_embedded_script_passes_shellcheck(name: str) -> None:
    scripts = {path: text for path, text in files(NODES[name]).items() if text.startswith("#!")}
    assert bootstrap.BOOTSTRAP_SCRIPT in scripts and bootstrap.POWEROFF_SCRIPT in scripts
    for script in scripts.values():
        shellcheck(script)


@pytest.mark.parametrize("name", NODES)
def test_systemd_units_pass_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    units = {
        Path(path).name: text
        for path, text in files(NODES[name]).items()
        if path.startswith(bootstrap.SYSTEMD_DIR)
    }
    for unit_name, text in units.items():
        (tmp_path / unit_name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(units)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    # The node's own scripts (and Docker) are not installed on this machine: only that may fail.
    absent = re.compile(r"Command (/usr/local/sbin/trackday-[a-z-]+|/usr/bin/docker) is not exec")
    problems = [line for line in result.stderr.splitlines() if not absent.search(line)]
    assert problems == [], result.stderr


def test_manager_initialises_the_swarm_on_its_private_address_and_labels_itself_trainer() -> None:
    node = NODES["gcp-manager-cpu-labels"]
    script = files(node)[bootstrap.BOOTSTRAP_SCRIPT]
    assert 'docker swarm init --advertise-addr "$TRACKDAY_PRIVATE_IP"' in script
    assert '--listen-addr "$TRACKDAY_PRIVATE_IP:2377"' in script
    assert "--label-add trackday.role=trainer --label-add zone=europe-west4-a" in script
    assert "nvidia" not in script  # a CPU node gets plain Docker


def test_worker_user_data_neither_joins_nor_holds_a_token() -> None:
    text = bootstrap.user_data(NODES["aws-worker-idle-prepull"])
    assert "swarm init" not in text and "swarm join" not in text
    assert "SWMTKN" not in text and "JoinToken" not in text


def test_gpu_node_makes_nvidia_the_default_runtime_and_advertises_gpus_to_swarm() -> None:
    script = files(NODES["aws-manager-ttl"])[bootstrap.BOOTSTRAP_SCRIPT]
    assert "nvidia-ctk runtime configure --runtime=docker --set-as-default" in script
    assert '"node-generic-resources"' in script and 'map("GPU=" + .)' in script
    assert 'swarm-resource = "DOCKER_RESOURCE_GPU"' in script
    # The GPU set-up comes before the swarm exists, the ready marker after everything.
    assert script.index("nvidia-ctk") < script.index("swarm init")
    assert script.rstrip().endswith(f"touch {bootstrap.READY_FILE}")


def test_ttl_timer_powers_off_after_ttl_hours() -> None:
    rendered = files(NODES["aws-manager-ttl"])
    timer = rendered["/etc/systemd/system/trackday-ttl.timer"]
    assert "OnBootSec=480min" in timer
    service = rendered["/etc/systemd/system/trackday-ttl.service"]
    assert f"ExecStart={bootstrap.POWEROFF_SCRIPT}" in service
    assert (
        "OnBootSec=30min"
        in files(NODES["gcp-manager-cpu-labels"])["/etc/systemd/system/trackday-ttl.timer"]
    )
    runcmd = document(NODES["aws-manager-ttl"])["runcmd"]
    assert ["systemctl", "daemon-reload"] in runcmd
    assert "trackday-ttl.timer" in runcmd[-1] and "trackday-idle.timer" not in runcmd[-1]


def test_idle_check_uses_the_configured_minutes_and_gpu_threshold() -> None:
    rendered = files(NODES["azure-manager-gateway"])
    script = rendered[bootstrap.IDLE_SCRIPT]
    assert f"--filter label={WORKLOAD_LABEL}" in script
    assert '[ "${utilisation:-0}" -ge 5 ]' in script
    assert "-ge 30 ]; then" in script
    assert "OnUnitActiveSec=1min" in rendered["/etc/systemd/system/trackday-idle.timer"]
    assert bootstrap.IDLE_SCRIPT not in files(NODES["aws-manager-ttl"])


def test_azure_power_off_deallocates_with_the_node_identity() -> None:
    script = files(NODES["azure-worker"])[bootstrap.POWEROFF_SCRIPT]
    assert f"client_id={CLIENT_ID}" in script and "/deallocate?" in script
    assert "deallocate" not in files(NODES["aws-manager-ttl"])[bootstrap.POWEROFF_SCRIPT]


def test_gateway_goes_on_the_azure_manager_without_its_keys() -> None:
    rendered = files(NODES["azure-manager-gateway"])
    assert rendered[f"/etc/systemd/system/{gateway.UNIT}"] == GATEWAY.unit
    assert rendered[gateway.SETTINGS_FILE] == GATEWAY.files[gateway.SETTINGS_FILE]
    assert gateway.KEYS_FILE not in rendered
    assert "RCLONE_AUTH_KEY" not in bootstrap.user_data(NODES["azure-manager-gateway"])
    script = rendered[bootstrap.BOOTSTRAP_SCRIPT]
    assert f"systemctl enable --now {gateway.UNIT}" in script


def test_user_data_stays_under_each_clouds_limit() -> None:
    # AWS accepts 16 KiB of user data before base64 (its target sends it gzipped: a spot
    # manager's text is larger), Azure 64 KiB of custom data after base64 (3/4 of it before),
    # GCP 256 KiB per metadata value.
    limits = {"aws": 16 * 1024, "azure": 64 * 1024 * 3 // 4, "gcp": 256 * 1024}
    for node in NODES.values():
        text = bootstrap.user_data(node)
        sent = base64.b64decode(gzip_base64(text)) if node.cloud == "aws" else text.encode()
        assert len(sent) < limits[node.cloud]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "leader"}, "node role 'leader' is not one of manager, worker"),
        ({"cloud": "ibm"}, "cloud 'ibm' is not one of aws, azure, gcp"),
        ({"ssh_user": "Root User"}, "SSH user 'Root User' is not a valid Linux user name"),
        ({"ssh_public_key": "AAAA nokeytype"}, "SSH public key must be one line in OpenSSH"),
        ({"ssh_public_key": SSH_KEY + "\nssh-rsa AAAA x"}, "SSH public key must be one line"),
        ({"labels": {"trackday.role": "trainer"}}, "trackday.role is set from the node's role"),
        ({"labels": {"Zone": "a"}}, "node label key 'Zone' must be lowercase"),
        ({"labels": {"zone": "a b"}}, "node label zone='a b'"),
        ({"prepull_images": ("img; rm -rf /",)}, "pre-pull image 'img; rm -rf /' is not an image"),
        ({"ttl_hours": 0}, "budget.ttlHours 0 must be above 0"),
        ({"idle_minutes": 2}, "budget idle minutes 2 must be between 5 and 1440"),
        ({"idle_gpu_percent": 0}, "idle GPU threshold 0 must be a percentage"),
        ({"cloud": "azure"}, "azure nodes need azure_identity_client_id"),
        ({"role": "worker", "services": (GATEWAY,)}, "run on the manager only"),
    ],
)
def test_bad_node_settings_are_refused_with_a_clear_message(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        replace(BASE, **change)
