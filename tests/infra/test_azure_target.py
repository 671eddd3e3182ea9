"""The `azure` stack as shipped, under Pulumi's mocks: storage, identity, network, nodes, S3."""

from __future__ import annotations

import base64

import pytest
import yaml

from infra import gateway
from infra.config import ConfigError
from infra.targets import azure as azure_target
from tests.infra.stacks import plain_secret_leaks, run_stack, shipped_values, with_keys

ACCOUNT = "azure-native:storage:StorageAccount"
VM = "azure-native:compute:VirtualMachine"
ROLE = "azure-native:authorization:RoleAssignment"
NSG = "azure-native:network:NetworkSecurityGroup"
COMMAND = "command:remote:Command"


@pytest.fixture(scope="module")
def azure():
    return run_stack("azure", shipped_values("azure"))


@pytest.fixture(scope="module")
def azure5():
    return run_stack("azure", with_keys("azure", nodes={"count": 5}))


def _user_data(vm) -> dict:
    return yaml.safe_load(base64.b64decode(vm.inputs["osProfile"]["customData"]))


def test_storage_account_is_https_only_tls12_private_and_kept_by_destroy(azure):
    account = azure.one(ACCOUNT)
    assert account.retain_on_delete and not account.protect
    inputs = account.inputs
    assert inputs["enableHttpsTrafficOnly"] is True
    assert inputs["minimumTlsVersion"] == "TLS1_2"
    assert inputs["allowBlobPublicAccess"] is False
    assert inputs["allowSharedKeyAccess"] is False
    assert inputs["accountName"].startswith("trackday") and len(inputs["accountName"]) == 20
    service = azure.one("azure-native:storage:BlobServiceProperties").inputs
    assert service["accountName"] == inputs["accountName"]
    assert service["isVersioningEnabled"] is True
    container = azure.one("azure-native:storage:BlobContainer")
    assert container.inputs["publicAccess"] == "None"
    assert container.inputs["containerName"] == "trackday"
    assert container.retain_on_delete and not container.protect


def test_identity_holds_blob_data_contributor_on_the_account_only(azure):
    identity = azure.one("azure-native:managedidentity:UserAssignedIdentity")
    account_id = f"{azure.one(ACCOUNT).name}-id"
    blob = [
        r.inputs for r in azure.of_type(ROLE)
        if r.inputs["roleDefinitionId"].endswith(azure_target.BLOB_DATA_CONTRIBUTOR)
    ]  # fmt: skip
    assert {(b["principalType"], b["scope"]) for b in blob} == {
        ("ServicePrincipal", account_id),
        ("User", account_id),  # whoever runs `pulumi up`, for submit and fetch
    }
    assert all(b["roleDefinitionId"].startswith("/subscriptions/") for b in blob)
    # The only other role: deallocating each node's own VM at power-off.
    others = [r.inputs for r in azure.of_type(ROLE) if r.inputs not in blob]
    vm = azure.one(VM)
    assert [(o["scope"], o["roleDefinitionId"].rsplit("/", 1)[-1]) for o in others] == [
        (f"{vm.name}-id", azure_target.VM_CONTRIBUTOR)
    ]
    assert vm.inputs["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": [f"{identity.name}-id"],
    }


def test_nsg_opens_admin_ports_to_allowed_cidrs_and_the_rest_only_inside_the_subnet(azure):
    rules = {r["name"]: r for r in azure.one(NSG).inputs["securityRules"]}
    allowed = [r for r in rules.values() if r["access"] == "Allow"]
    admin = [r for r in allowed if r["sourceAddressPrefixes"] == ["203.0.113.7/32"]]
    assert sorted(r["destinationPortRange"] for r in admin) == ["22", "2376"]
    inside = [r for r in allowed if r not in admin]
    assert {r["sourceAddressPrefixes"][0] for r in inside} == {"10.42.1.0/24"}
    assert sorted((r["protocol"], r["destinationPortRange"]) for r in inside) == [
        ("Tcp", "2377"),
        ("Tcp", "7946"),
        ("Tcp", str(gateway.PORT)),
        ("Udp", "4789"),
        ("Udp", "7946"),
    ]
    assert rules["deny-other-vnet"]["access"] == "Deny"
    assert all(r["priority"] < rules["deny-other-vnet"]["priority"] for r in allowed)
    subnet = azure.one("azure-native:network:Subnet").inputs
    assert subnet["networkSecurityGroup"] == {"id": f"{azure.one(NSG).name}-id"}


def test_vms_are_spot_n_series_with_ssh_keys_only_and_the_gpu_driver(azure):
    vm = azure.one(VM)
    inputs = vm.inputs
    assert inputs["hardwareProfile"] == {"vmSize": "Standard_NC4as_T4_v3"}
    assert inputs["priority"] == "Spot"
    assert inputs["evictionPolicy"] == "Deallocate"
    assert inputs["billingProfile"] == {"maxPrice": -1}
    linux = inputs["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"][0]["keyData"].startswith("ssh-ed25519 ")
    assert "adminPassword" not in inputs["osProfile"]
    assert inputs["storageProfile"]["osDisk"]["diskSizeGB"] == 150
    driver = azure.one("azure-native:compute:VirtualMachineExtension").inputs
    assert (driver["publisher"], driver["type"]) == ("Microsoft.HpcCompute", "NvidiaGpuDriverLinux")
    assert driver["vmName"] == vm.name


def test_regular_priority_when_not_spot():
    run = run_stack("azure", with_keys("azure", nodes={"spot": False, "spotMaxPrice": None}))
    inputs = run.one(VM).inputs
    assert inputs["priority"] == "Regular"
    assert "evictionPolicy" not in inputs and "billingProfile" not in inputs


def test_gateway_runs_on_the_manager_only_inside_the_vnet(azure5):
    vms = {vm.name.rsplit("-", 1)[-1]: vm for vm in azure5.of_type(VM)}
    manager = _user_data(next(vm for vm in azure5.of_type(VM) if vm.name.endswith("manager")))
    units = {f["path"]: f["content"] for f in manager["write_files"]}
    unit = units[f"/etc/systemd/system/{gateway.UNIT}"]
    assert f"--addr ${{TRACKDAY_PRIVATE_IP}}:{gateway.PORT}" in unit
    account = azure5.one(ACCOUNT).inputs["accountName"]
    assert f"RCLONE_CONFIG_BLOB_ACCOUNT={account}" in units[gateway.SETTINGS_FILE]
    assert "RCLONE_CONFIG_BLOB_USE_MSI=true" in units[gateway.SETTINGS_FILE]
    workers = [vm for name, vm in vms.items() if name != "manager"]
    assert len(workers) == 4
    for worker in workers:
        paths = {f["path"] for f in _user_data(worker)["write_files"]}
        assert f"/etc/systemd/system/{gateway.UNIT}" not in paths
    outputs = {k: o.value for k, o in azure5.outputs.items()}
    assert outputs["s3Endpoint"] == f"http://{outputs['managerPrivateAddress']}:{gateway.PORT}"
    assert outputs["managerPrivateAddress"].startswith("10.42.1.")


def test_gateway_keys_are_generated_secrets_handed_over_ssh(azure):
    passwords = azure.of_type("random:index/randomPassword:RandomPassword")
    assert {(p.inputs["length"], p.inputs["special"]) for p in passwords} == {
        (20, False),
        (40, False),
    }
    store = next(c for c in azure.of_type(COMMAND) if c.name.endswith("gateway-store"))
    assert "stdin" in store.secret_inputs and "connection" in store.secret_inputs
    key_file = azure.raw_inputs[store.urn]["stdin"]
    outputs = azure.outputs
    assert outputs["s3AccessKeyId"].secret and outputs["s3SecretAccessKey"].secret
    assert f"{outputs['s3AccessKeyId'].value},{outputs['s3SecretAccessKey'].value}" in key_file
    assert plain_secret_leaks(azure) == []


def test_outputs_give_submit_what_it_needs(azure):
    outputs = {k: o.value for k, o in azure.outputs.items()}
    assert outputs["target"] == "azure"
    assert outputs["bucketUrl"] == "az://trackday"
    assert outputs["nodeBucketUrl"] == "s3://trackday"
    assert outputs["storageAccount"] == azure.one(ACCOUNT).inputs["accountName"]
    assert outputs["location"] == "eastus"
    secret = {k for k, o in azure.outputs.items() if o.secret}
    assert secret == {"sshPrivateKey", "s3AccessKeyId", "s3SecretAccessKey"}


def test_named_storage_account_is_used_and_a_bad_one_refused():
    run = run_stack("azure", with_keys("azure", azure={"storageAccount": "mytrackdaydata"}))
    assert run.one(ACCOUNT).inputs["accountName"] == "mytrackdaydata"
    assert run.of_type("random:index/randomString:RandomString") == []
    with pytest.raises(ConfigError, match=r"azure.storageAccount: 'My-Data' is not valid"):
        run_stack("azure", with_keys("azure", azure={"storageAccount": "My-Data"}))
