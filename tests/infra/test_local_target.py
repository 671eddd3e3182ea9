"""The `dev` stack (target local) as shipped, under Pulumi's mocks."""

from __future__ import annotations

import runpy

import pytest

from infra import offline
from tests.infra.stacks import ROOT, plain_secret_leaks, run_stack, shipped_values, with_keys

CONTAINER = "docker:index/container:Container"


@pytest.fixture(scope="module")
def dev():
    return run_stack("dev", shipped_values("dev"))


def test_declares_the_s3_server_and_the_trainer_image(dev):
    types = sorted(r.type for r in dev.resources if r.custom)
    assert types == [
        "docker:index/container:Container",
        "docker:index/image:Image",
        "docker:index/network:Network",
        "docker:index/remoteImage:RemoteImage",
        "docker:index/volume:Volume",
        "random:index/randomPassword:RandomPassword",
        "random:index/randomPassword:RandomPassword",
    ]


def test_every_resource_sits_in_a_component_named_after_it(dev):
    by_urn = {r.urn: r for r in dev.resources}
    for resource in dev.resources:
        if resource.type == "trackday:targets:Local":
            assert resource.parent.endswith("pulumi:pulumi:Stack::trackday-dev")
            continue
        parent = by_urn[resource.parent]
        assert parent.type.startswith("trackday:"), resource.name
        assert resource.name.startswith(f"{parent.name}-"), resource.name


def test_s3_server_listens_on_loopback_only(dev):
    container = dev.one(CONTAINER)
    assert container.inputs["ports"] == [{"internal": 9000, "external": 9000, "ip": "127.0.0.1"}]
    network = dev.one("docker:index/network:Network")
    assert network.inputs["options"] == {"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}
    assert container.inputs["networksAdvanced"] == [{"name": network.name, "aliases": ["s3"]}]


def test_s3_server_serves_the_volume_with_generated_keys(dev):
    container = dev.one(CONTAINER)
    volume = dev.one("docker:index/volume:Volume")
    assert container.inputs["mounts"] == [
        {"target": "/data", "source": volume.name, "type": "volume"}
    ]
    assert container.inputs["command"] == [
        "mkdir -p /data/trackday && exec rclone serve s3 /data --addr :9000"
    ]
    assert container.secret_inputs == ("envs",)
    assert dev.one("docker:index/remoteImage:RemoteImage").inputs["name"] == "rclone/rclone:1.75.2"


def test_credentials_are_secret_outputs_and_never_plain(dev):
    assert dev.outputs["s3AccessKeyId"].secret
    assert dev.outputs["s3SecretAccessKey"].secret
    assert dev.outputs["s3AccessKeyId"].value != dev.outputs["s3SecretAccessKey"].value
    assert plain_secret_leaks(dev) == []
    assert not any(
        o.secret
        for k, o in dev.outputs.items()
        if not k.startswith("s3Access") and not k.startswith("s3Secret")
    )


def test_outputs(dev):
    plain = {k: o.value for k, o in dev.outputs.items() if not o.secret}
    assert plain == {
        "target": "local",
        "bucketUrl": "s3://trackday",
        "s3Endpoint": "http://127.0.0.1:9000",
        "s3EndpointInNetwork": "http://s3:9000",
        "network": "trackday-dev-s3-net",
        "s3Container": "trackday-dev-s3-server",
        "image": "trackday-donkeycar:5.3.0",
    }


def test_data_volume_is_kept_by_destroy_unless_the_stack_opts_out(dev):
    volume = dev.one("docker:index/volume:Volume")
    assert volume.retain_on_delete and not volume.protect
    opted_out = run_stack("dev", with_keys("dev", storage={"protect": False}))
    assert not opted_out.one("docker:index/volume:Volume").retain_on_delete


def test_trainer_image_is_built_locally_from_the_repository(dev):
    image = dev.one("docker:index/image:Image")
    build = image.inputs["build"]
    assert build["dockerfile"].endswith("training/donkeycar/Dockerfile")
    assert build["network"] == "host"
    assert build["args"] == {"DONKEYCAR_VERSION": "5.3.0", "TENSORFLOW_CUDA": "false"}
    assert image.inputs["skipPush"] is True


def test_local_gpus_and_base_image_reach_the_build():
    run = run_stack(
        "dev",
        with_keys(
            "dev",
            local={"gpus": 1},
            donkeycar={"version": "5.4.0", "baseImage": "python:3.12-slim-bookworm"},
        ),
    )
    build = run.one("docker:index/image:Image").inputs["build"]
    assert build["args"] == {
        "DONKEYCAR_VERSION": "5.4.0",
        "TENSORFLOW_CUDA": "true",
        "BASE_IMAGE": "python:3.12-slim-bookworm",
    }
    assert run.outputs["image"].value == "trackday-donkeycar:5.4.0"


def test_donkeycar_5_4_gets_a_python_3_12_base_unless_the_stack_names_one():
    run = run_stack("dev", with_keys("dev", donkeycar={"version": "5.4.0"}))
    args = run.one("docker:index/image:Image").inputs["build"]["args"]
    assert args["BASE_IMAGE"] == "python:3.12-slim-bookworm"
    run = run_stack(
        "dev", with_keys("dev", donkeycar={"version": "5.4.0", "baseImage": "me/py:3.12"})
    )
    assert run.one("docker:index/image:Image").inputs["build"]["args"]["BASE_IMAGE"] == "me/py:3.12"


def test_port_and_bucket_come_from_the_stack():
    run = run_stack("dev", with_keys("dev", local={"s3Port": 9100}, storage={"bucket": "cars"}))
    assert run.one(CONTAINER).inputs["ports"][0]["external"] == 9100
    assert run.outputs["s3Endpoint"].value == "http://127.0.0.1:9100"
    assert run.outputs["bucketUrl"].value == "s3://cars"


def test_pulumi_entry_point_declares_the_stack():
    """__main__.py, as `pulumi up` runs it, reads the config and declares the same resources."""

    def program():
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        return {}

    run = offline.run_offline(program, "dev", offline.stack_config(shipped_values("dev")))
    expected = run_stack("dev", shipped_values("dev"))
    assert [(r.type, r.name) for r in run.resources] == [
        (r.type, r.name) for r in expected.resources
    ]
