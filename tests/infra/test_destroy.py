"""`pulumi destroy` runs through and leaves nothing billing but the data (issue 11 items 12-13).

Pulumi stops a destroy at the first `protect`ed resource, with the VMs, disks and addresses
still billing: no shipped stack protects anything. The data is kept with `retainOnDelete`
instead; only the data (and, on Azure, the resource group that holds it) may be retained.
"""

from __future__ import annotations

import pytest

from infra import price_table, prices
from tests.infra.stacks import SHIPPED, run_stack, shipped_values, with_keys

# What may outlive the stack: the data and what holds it.
DATA_TYPES = {
    "aws:s3/bucket:Bucket",
    "gcp:storage/bucket:Bucket",
    "azure-native:storage:StorageAccount",
    "azure-native:storage:BlobContainer",
    "azure-native:resources:ResourceGroup",
    "docker:index/volume:Volume",
}
STACKS = [(s, shipped_values(s)) for s in SHIPPED] + [
    (
        "gcp",
        with_keys("gcp", gcp={"nodePool": True}, network={"allowedCidrs": ["203.0.113.7/32"]}),
    )
]


@pytest.fixture(scope="module", params=STACKS, ids=[*SHIPPED, "gcp-node-pool"])
def run(request):
    stack, values = request.param
    return run_stack(stack, values)


def test_nothing_is_protected_so_destroy_runs_through(run):
    assert [r.name for r in run.resources if r.protect] == []


def test_only_the_data_is_kept_and_nothing_kept_bills_by_the_hour(run):
    kept = [r for r in run.resources if r.retain_on_delete]
    assert kept, "the data is kept by default (storage.protect)"
    assert {r.type for r in kept} <= DATA_TYPES
    hourly = {t for t in prices._PRICERS if t not in price_table.STORAGE_GB_MONTH}
    assert not {r.type for r in kept} & hourly


def test_on_azure_the_kept_group_holds_only_the_data():
    run = run_stack("azure", shipped_values("azure"))
    (data_group,) = [
        r for r in run.of_type("azure-native:resources:ResourceGroup") if r.retain_on_delete
    ]
    in_data_group = {
        r.type for r in run.resources if r.inputs.get("resourceGroupName") == data_group.name
    }
    assert in_data_group == {
        "azure-native:storage:StorageAccount",
        "azure-native:storage:BlobServiceProperties",
        "azure-native:storage:BlobContainer",
        "azure-native:storage:ManagementPolicy",
    }
    vm = run.of_type("azure-native:compute:VirtualMachine")[0]
    assert vm.inputs["resourceGroupName"] != data_group.name


@pytest.mark.parametrize("stack", ["aws", "azure", "gcp", "dev"])
def test_opting_out_keeps_nothing(stack):
    run = run_stack(stack, with_keys(stack, storage={"protect": False}))
    assert [r.name for r in run.resources if r.retain_on_delete or r.protect] == []


def test_aws_expires_old_versions_and_aborts_incomplete_uploads():
    run = run_stack("aws", with_keys("aws", storage={"keepDeletedDays": 12}))
    lifecycle = run.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert lifecycle.inputs["bucket"] == f"{run.one('aws:s3/bucket:Bucket').name}-id"
    (rule,) = lifecycle.inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"prefix": ""}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 12}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}
    assert rule["expiration"] == {"expiredObjectDeleteMarker": True}


def test_azure_deletes_old_versions_after_keep_deleted_days():
    run = run_stack("azure", with_keys("azure", storage={"keepDeletedDays": 12}))
    policy = run.one("azure-native:storage:ManagementPolicy").inputs
    assert policy["managementPolicyName"] == "default"
    assert (
        policy["accountName"]
        == run.one("azure-native:storage:StorageAccount").inputs["accountName"]
    )
    (rule,) = policy["policy"]["rules"]
    assert rule["enabled"] is True and rule["type"] == "Lifecycle"
    assert rule["definition"]["actions"] == {
        "version": {"delete": {"daysAfterCreationGreaterThan": 12}}
    }
    assert rule["definition"]["filters"] == {"blobTypes": ["blockBlob"]}


def test_gcs_aborts_incomplete_uploads():
    run = run_stack("gcp", shipped_values("gcp"))
    rules = run.one("gcp:storage/bucket:Bucket").inputs["lifecycleRules"]
    assert {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}} in rules
