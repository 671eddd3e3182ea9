"""The `azure` stack as shipped, under Pulumi's mocks: storage, identity, network, nodes, S3."""

from __future__ import annotations

import base64

import pytest
import yaml

from infra import cloud_rules, gateway, offline
from infra.config import ConfigError
from infra.targets import azure_storage
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
    identities = {
        r.name: r for r in azure.of_type("azure-native:managedidentity:UserAssignedIdentity")
    }
    data = identities.pop("trackday-azure-identity")
    account_id = f"{azure.one(ACCOUNT).name}-id"
    blob = [
        r.inputs for r in azure.of_type(ROLE)
        if r.inputs["roleDefinitionId"].endswith(azure_storage.BLOB_DATA_CONTRIBUTOR)
    ]  # fmt: skip
    # The data identity, and whoever runs `pulumi up` (for submit and fetch): under the
    # mocks a client other than the Azure CLI signed in, as in CI: a service principal.
    assert [(b["principalType"], b["scope"]) for b in blob] == [
        ("ServicePrincipal", account_id),
        ("ServicePrincipal", account_id),
    ]
    assert all(b["roleDefinitionId"].startswith("/subscriptions/") for b in blob)
    vm = azure.one(VM)
    assert vm.inputs["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": [
            f"{identities['trackday-azure-nodes-manager-identity'].name}-id",
            f"{data.name}-id",
        ],
    }


def test_each_node_may_only_deallocate_itself(azure5):
    role = azure5.one("azure-native:authorization:RoleDefinition")
    assert role.inputs["permissions"] == [
        {
            "actions": [
                "Microsoft.Compute/virtualMachines/read",
                "Microsoft.Compute/virtualMachines/deallocate/action",
            ]
        }
    ]
    groups = azure5.of_type("azure-native:resources:ResourceGroup")
    group = next(r for r in groups if r.name.endswith("group"))
    assert role.inputs["assignableScopes"] == [f"{group.name}-id"]
    assignments = [
        r.inputs for r in azure5.of_type(ROLE) if r.inputs["roleDefinitionId"] == f"{role.name}-id"
    ]
    vms = azure5.of_type(VM)
    assert len(assignments) == len(vms) == 5
    for vm in vms:
        (mine,) = [a for a in assignments if a["scope"] == f"{vm.name}-id"]
        own = f"{vm.name}-identity"
        assert mine["principalType"] == cloud_rules.MANAGED_IDENTITY_PRINCIPAL_TYPE
        assert mine["principalId"] == offline._uuid(f"{own}-principal")
        assert f"{own}-id" in vm.inputs["identity"]["userAssignedIdentities"]
        data = yaml.safe_load(base64.b64decode(vm.inputs["osProfile"]["customData"]))
        assert offline._uuid(f"{own}-client") in str(data), "its power-off uses its own identity"
    # Only the manager carries the data identity; no node holds a built-in VM role.
    workers = [vm for vm in vms if "worker" in vm.name]
    assert all(len(vm.inputs["identity"]["userAssignedIdentities"]) == 1 for vm in workers)
    assert all("9980e02c" not in r.inputs["roleDefinitionId"] for r in azure5.of_type(ROLE))


def test_deployer_principal_type_follows_the_sign_in():
    assert cloud_rules.azure_deployer_principal_type(cloud_rules.AZURE_CLI_CLIENT_ID) == "User"
    assert cloud_rules.azure_deployer_principal_type(offline._uuid("ci")) == "ServicePrincipal"
    run = run_stack("azure", with_keys("azure", azure={"deployerPrincipalType": "Group"}))
    deployer = [r for r in run.of_type(ROLE) if r.name.endswith("storage-deployer")]
    assert [r.inputs["principalType"] for r in deployer] == ["Group"]
    with pytest.raises(ConfigError, match=r"azure.deployerPrincipalType: 'Robot' is not valid"):
        run_stack("azure", with_keys("azure", azure={"deployerPrincipalType": "Robot"}))


def test_every_principal_type_is_one_arm_knows(azure5):
    types = {r.inputs.get("principalType") for r in azure5.of_type(ROLE)} - {None}
    assert types <= cloud_rules.AZURE_PRINCIPAL_TYPES


def test_nsg_opens_admin_ports_to_allowed_cidrs_and_the_rest_only_inside_the_subnet(azure):
    rules = {r["name"]: r for r in azure.one(NSG).inputs["securityRules"]}
    allowed = [r for r in rules.values() if r["access"] == "Allow"]
    admin = [r for r in allowed if r["sourceAddressPrefixes"] == ["203.0.113.7/32"]]
    assert sorted(r["destinationPortRange"] for r in admin) == ["22"]
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


def test_driver_extension_installs_no_cuda_and_the_deploy_waits_for_it(azure5):
    """The extension may reboot the VM and holds dpkg while it runs: the deploy's wait for the
    manager's "done" starts only once the manager's extension is done (the bootstrap itself
    retries until it is)."""
    extensions = azure5.of_type("azure-native:compute:VirtualMachineExtension")
    drivers = {r.inputs["vmName"]: r for r in extensions}
    assert all(d.inputs["settings"] == {"installCUDA": False} for d in drivers.values())
    ready = next(
        r for r in azure5.of_type("pulumi-python:dynamic:Resource") if r.name.endswith("-ready")
    )
    assert drivers["trackday-azure-nodes-manager"].urn in ready.dependencies


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


def test_gateway_keys_are_generated_secrets_kept_in_the_vault(azure):
    passwords = azure.of_type("random:index/randomPassword:RandomPassword")
    assert {(p.inputs["length"], p.inputs["special"]) for p in passwords} == {
        (20, False),
        (40, False),
    }
    assert azure.of_type(COMMAND) == [] or all(
        not c.name.endswith("gateway-store") for c in azure.of_type(COMMAND)
    )
    store = next(
        s
        for s in azure.of_type("azure-native:keyvault:Secret")
        if s.inputs["secretName"] == "gateway-keys"
    )
    assert "properties" in store.secret_inputs
    key_file = azure.raw_inputs[store.urn]["properties"]["value"]
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
    # The only random name left is the stack's vault's.
    (suffix,) = run.of_type("random:index/randomString:RandomString")
    assert suffix.name.endswith("vault-suffix")
    with pytest.raises(ConfigError, match=r"azure.storageAccount: 'My-Data' is not valid"):
        run_stack("azure", with_keys("azure", azure={"storageAccount": "My-Data"}))
