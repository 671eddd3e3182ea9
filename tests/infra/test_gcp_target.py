"""The `gcp` stack as shipped, under Pulumi's mocks: resources and their security properties."""

from __future__ import annotations

import pytest

from tests.infra.stacks import plain_secret_leaks, run_stack, shipped_values, with_keys

BUCKET = "gcp:storage/bucket:Bucket"
ACCOUNT = "gcp:serviceaccount/account:Account"
KEY = "gcp:serviceaccount/key:Key"


@pytest.fixture(scope="module")
def gcp():
    return run_stack("gcp", shipped_values("gcp"))


def test_enables_the_apis_it_uses_and_leaves_them_on_destroy(gcp):
    services = gcp.of_type("gcp:projects/service:Service")
    assert sorted(s.inputs["service"] for s in services) == [
        "aiplatform.googleapis.com",
        "artifactregistry.googleapis.com",
        "iam.googleapis.com",
        "logging.googleapis.com",
        "storage.googleapis.com",
    ]
    assert all(s.inputs["disableOnDestroy"] is False for s in services)


def test_bucket_is_private_versioned_and_kept_by_destroy(gcp):
    bucket = gcp.one(BUCKET)
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["versioning"] == {"enabled": True}
    assert bucket.inputs["forceDestroy"] is False
    assert bucket.inputs["location"] == "US-CENTRAL1"
    assert bucket.retain_on_delete and not bucket.protect


def test_bucket_lifecycle_cools_old_runs_and_expires_deleted_versions(gcp):
    rules = gcp.one(BUCKET).inputs["lifecycleRules"]
    assert {
        "action": {"type": "Delete"},
        "condition": {"daysSinceNoncurrentTime": 30, "withState": "ARCHIVED"},
    } in rules
    cold = next(r for r in rules if r["action"]["type"] == "SetStorageClass")
    assert cold["action"]["storageClass"] == "NEARLINE"
    assert cold["condition"]["matchesPrefixes"] == ["runs/"]
    assert cold["condition"]["age"] == 30
    assert cold["condition"]["withState"] == "LIVE"  # never touches the versions kept for recovery


def test_stack_may_opt_out_of_protection_and_cold_runs():
    run = run_stack("gcp", with_keys("gcp", storage={"protect": False, "runsColdAfterDays": None}))
    bucket = run.one(BUCKET)
    assert not bucket.protect and not bucket.retain_on_delete
    assert bucket.inputs["forceDestroy"] is True
    assert [r["action"]["type"] for r in bucket.inputs["lifecycleRules"]] == [
        "Delete",
        "AbortIncompleteMultipartUpload",
    ]


def test_trainer_roles_are_bound_to_the_bucket_and_repository_not_the_project(gcp):
    email = gcp.outputs["trainerServiceAccount"].value
    member = f"serviceAccount:{email}"
    bucket_role = gcp.one("gcp:storage/bucketIAMMember:BucketIAMMember").inputs
    assert bucket_role == {
        "bucket": gcp.one(BUCKET).name,
        "role": "roles/storage.objectUser",
        "member": member,
    }
    repo_role = gcp.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember").inputs
    assert repo_role["role"] == "roles/artifactregistry.reader"
    assert repo_role["member"] == member
    assert (
        repo_role["repository"]
        == gcp.one("gcp:artifactregistry/repository:Repository").inputs["repositoryId"]
    )
    project_wide = [r for r in gcp.resources if r.type.startswith("gcp:projects/iam")]
    assert project_wide == []


def test_no_service_account_key_unless_asked(gcp):
    assert gcp.of_type(KEY) == []
    assert "trainerKey" not in gcp.outputs


def test_key_when_asked_is_a_secret_output():
    run = run_stack("gcp", with_keys("gcp", gcp={"serviceAccountKey": True}))
    key = run.one(KEY)
    assert key.inputs["serviceAccountId"] == run.one(ACCOUNT).name
    assert run.outputs["trainerKey"].secret
    assert plain_secret_leaks(run) == []


def test_trainer_image_is_built_and_pushed_to_the_repository(gcp):
    image = gcp.one("docker-build:index:Image")
    repository = gcp.one("gcp:artifactregistry/repository:Repository")
    assert repository.inputs["format"] == "DOCKER"
    assert image.inputs["push"] is True
    assert image.inputs["buildOnPreview"] is False
    assert image.inputs["tags"] == [
        "us-central1-docker.pkg.dev/my-trackday-project/trackday-gcp-images/trackday-donkeycar:5.3.0"
    ]
    assert image.inputs["buildArgs"] == {"DONKEYCAR_VERSION": "5.3.0", "TENSORFLOW_CUDA": "true"}
    assert image.inputs["dockerfile"]["location"].endswith("training/donkeycar/Dockerfile")
    # The registry token is a credential: only ever a secret.
    assert image.secret_inputs == ("registries",)
    assert "@sha256:" in gcp.outputs["image"].value


def test_provider_is_pinned_to_the_stack_project(gcp):
    provider = gcp.one("pulumi:providers:gcp")
    assert (provider.inputs["project"], provider.inputs["region"]) == (
        "my-trackday-project",
        "us-central1",
    )


def test_every_resource_sits_in_a_component_named_after_it(gcp):
    by_urn = {r.urn: r for r in gcp.resources}
    for resource in gcp.resources:
        if resource.type == "trackday:targets:Gcp":
            continue
        parent = by_urn[resource.parent]
        assert parent.type.startswith("trackday:"), resource.name
        assert resource.name.startswith(f"{parent.name}-"), resource.name


def test_labels_carry_the_stack_tags(gcp):
    assert gcp.one(BUCKET).inputs["labels"] == {"owner": "racing-team", "trackday-stack": "gcp"}


def test_outputs_give_submit_what_it_needs(gcp):
    outputs = {k: o.value for k, o in gcp.outputs.items()}
    assert outputs["bucketUrl"] == f"gs://{gcp.one(BUCKET).name}"
    assert outputs["trainerServiceAccount"] == (
        "trackday-gcp-trainer@my-trackday-project.iam.gserviceaccount.com"
    )
    assert outputs["training"] == {
        "machineType": "n1-standard-8",
        "acceleratorType": "NVIDIA_TESLA_T4",
        "acceleratorCount": 1,
        "spot": False,
        "bootDiskGb": 100,
        "maxRunHours": 4,
        "donkeycarVersion": "5.3.0",
        "modelType": None,  # the car config's DEFAULT_MODEL_TYPE decides
        "overrides": {"BATCH_SIZE": 128, "MAX_EPOCHS": 100},
    }
    assert not any(o.secret for o in gcp.outputs.values())


@pytest.mark.parametrize(
    ("gpu", "accelerator"), [("L4", "NVIDIA_L4"), ("A100", "NVIDIA_TESLA_A100")]
)
def test_other_gpus_reach_the_job_settings(gpu, accelerator):
    run = run_stack("gcp", with_keys("gcp", nodes={"gpu": {"type": gpu}, "spot": True}))
    training = run.outputs["training"].value
    assert training["acceleratorType"] == accelerator
    assert training["spot"] is True
