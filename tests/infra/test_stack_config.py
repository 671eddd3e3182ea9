"""The typed stack config: shipped stack files parse, defaults resolve, bad values are named."""

from __future__ import annotations

import pytest

from infra import config
from infra.config import ConfigError, parse
from tests.infra.stacks import ROOT, SHIPPED, run_stack, shipped_values


def _trackday_keys(values: dict) -> dict:
    prefix = f"{config.NAMESPACE}:"
    return {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}


def test_shipped_stacks_are_dev_and_gcp():
    assert {"dev", "gcp"} <= set(SHIPPED)


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_parses(stack):
    parsed = parse(_trackday_keys(shipped_values(stack)))
    assert parsed.target in config.TARGETS


def test_dev_is_the_local_target():
    parsed = parse(_trackday_keys(shipped_values("dev")))
    assert parsed.target == "local"
    assert parsed.local.s3_port == 9000


def test_gcp_stack_resolves_the_t4_machine():
    parsed = parse(_trackday_keys(shipped_values("gcp")))
    assert (parsed.nodes.machine_type, parsed.nodes.gpu.type, parsed.nodes.gpu.count) == (
        "n1-standard-8",
        "T4",
        1,
    )
    assert parsed.donkeycar.overrides == {"BATCH_SIZE": 128, "MAX_EPOCHS": 100}


def test_empty_config_is_the_local_default():
    parsed = parse({})
    assert parsed.target == "local"
    assert parsed.storage.protect is True
    assert parsed.nodes.machine_type is None  # no cloud machine for the local target


@pytest.mark.parametrize(
    ("gpu", "machine"),
    [("T4", "n1-standard-8"), ("L4", "g2-standard-8"), ("A100", "a2-highgpu-1g")],
)
def test_gcp_gpu_types_pick_their_machine(gpu, machine):
    parsed = parse(
        {"target": "gcp", "gcp": {"project": "my-project-1"}, "nodes": {"gpu": {"type": gpu}}}
    )
    assert parsed.nodes.machine_type == machine


def test_machine_type_alone_gives_its_gpu():
    parsed = parse(
        {
            "target": "aws",
            "network": {"allowedCidrs": ["203.0.113.7/32"]},
            "nodes": {"machineType": "g5.2xlarge"},
        }
    )
    assert (parsed.nodes.gpu.type, parsed.nodes.gpu.count) == ("A10G", 1)


def test_attached_t4_count_is_configurable():
    parsed = parse(
        {"target": "gcp", "gcp": {"project": "my-project-1"}, "nodes": {"gpu": {"count": 2}}}
    )
    assert parsed.nodes.gpu.count == 2


def test_cidrs_are_normalised():
    parsed = parse({"network": {"allowedCidrs": ["198.51.100.0/24", "203.0.113.7/32"]}})
    assert parsed.network.allowed_cidrs == ["198.51.100.0/24", "203.0.113.7/32"]


GCP = {"target": "gcp", "gcp": {"project": "my-project-1"}}

INVALID = [
    (
        {"target": "gpc"},
        "trackday:target: 'gpc' is not valid; Input should be 'local', 'gcp', 'aws' or 'azure'",
    ),
    (
        {"target": "gcp"},
        "trackday:gcp.project: (missing) is not valid; the gcp target needs your Google Cloud "
        "project id",
    ),
    (
        {"target": "gcp", "gcp": {}},
        "trackday:gcp.project: (missing) is not valid; this key is required",
    ),
    (
        {"target": "gcp", "gcp": {"project": "My_Project"}},
        "trackday:gcp.project: 'My_Project' is not valid; a Google Cloud project id: "
        "6-30 lowercase letters, digits and '-'",
    ),
    (
        {**GCP, "nodes": {"gpu": {"type": "K80"}}},
        "trackday:nodes.gpu.type: 'K80' is not valid; allowed on gcp: T4, L4, A100",
    ),
    (
        {**GCP, "nodes": {"machineType": "n2-standard-8"}},
        "trackday:nodes.machineType: 'n2-standard-8' is not valid; allowed on gcp: n1-standard-4, "
        "n1-standard-8, n1-standard-16, g2-standard-4, g2-standard-8, g2-standard-16, "
        "a2-highgpu-1g, "
        "a2-highgpu-2g",
    ),
    (
        {**GCP, "nodes": {"machineType": "g2-standard-8", "gpu": {"type": "T4"}}},
        "trackday:nodes.gpu.type: 'T4' is not valid; g2-standard-8 carries L4; name a machine type "
        "with T4 or leave nodes.machineType unset",
    ),
    (
        {**GCP, "nodes": {"gpu": {"count": 3}}},
        "trackday:nodes.gpu.count: 3 is not valid; n1-standard-8 takes 1 or 2 or 4 GPU(s)",
    ),
    (
        {**GCP, "nodes": {"machineType": "a2-highgpu-1g", "gpu": {"count": 2}}},
        "trackday:nodes.gpu.count: 2 is not valid; a2-highgpu-1g takes 1 GPU(s)",
    ),
    (
        {"nodes": {"count": 0}},
        "trackday:nodes.count: 0 is not valid; Input should be greater than or equal to 1",
    ),
    (
        {"nodes": {"cout": 2}},
        "trackday:nodes.cout: 2 is not valid; unknown key; allowed here: count, machineType, gpu, "
        "spot, spotMaxPrice, rootVolumeGb, prepullImages",
    ),
    (
        {"nodes": {"rootVolumeGb": 10}},
        "trackday:nodes.rootVolumeGb: 10 is not valid; Input should be greater than or equal to 30",
    ),
    (
        {"nodes": {"spot": "maybe"}},
        "trackday:nodes.spot: 'maybe' is not valid; Input should be a valid boolean, "
        "unable to interpret input",
    ),
    (
        {"donkey": {}},
        "trackday:donkey: {} is not valid; unknown key; allowed here: target, storage, donkeycar, "
        "nodes, network, budget, tags, local, gcp, aws, azure, deepracer, deepracerRun",
    ),
    (
        {"deepracer": {"workers": 0}},
        "trackday:deepracer.workers: 0 is not valid; Input should be greater than or equal to 1",
    ),
    (
        {"deepracer": {"wrld": "Spain_track"}},
        "trackday:deepracer.wrld: 'Spain_track' is not valid; unknown key; allowed here: "
        "runId, world, raceType, car, domainRandomization, workers, modelPrefix, "
        "customFilesPrefix, customFilesDir, trainingParamsFile, evaluationParamsFile, "
        "pretrained, training, evaluation, objectAvoidance, headToBot, simulator, cameras, "
        "cloudwatch, upload, opengl, gpuPerWorker",
    ),
    (
        {"target": "aws"},
        "trackday:network.allowedCidrs: [] is not valid; the aws target needs the address ranges "
        "that "
        "may reach the nodes (SSH, Docker API), e.g. [203.0.113.7/32]",
    ),
    (
        {"network": {"allowedCidrs": ["0.0.0.0/0"]}},
        "trackday:network.allowedCidrs: ['0.0.0.0/0'] is not valid; '0.0.0.0/0' opens to the whole "
        "internet; name your own range, e.g. 203.0.113.7/32",
    ),
    (
        {"network": {"allowedCidrs": ["::/0"]}},
        "trackday:network.allowedCidrs: ['::/0'] is not valid; '::/0' is IPv6; the nodes' "
        "networks and firewall rules are IPv4 only (every cloud refuses an IPv6 range there): "
        "name an IPv4 range",
    ),
    (
        {"network": {"allowedCidrs": ["2001:db8::/48"]}},
        "trackday:network.allowedCidrs: ['2001:db8::/48'] is not valid; '2001:db8::/48' is IPv6; "
        "the nodes' networks and firewall rules are IPv4 only (every cloud refuses an IPv6 range "
        "there): name an IPv4 range",
    ),
    (
        {"network": {"allowedCidrs": ["0.0.0.0/1", "128.0.0.0/1"]}},
        "trackday:network.allowedCidrs: ['0.0.0.0/1', '128.0.0.0/1'] is not valid; together the "
        "ranges cover 4,294,967,296 addresses, a large share of the internet; at most 65,536 "
        "(a /16) may reach SSH: name your own addresses, e.g. 203.0.113.7/32",
    ),
    (
        {"network": {"allowedCidrs": ["198.51.0.0/16", "203.0.113.0/24"]}},
        "trackday:network.allowedCidrs: ['198.51.0.0/16', '203.0.113.0/24'] is not valid; "
        "together the ranges cover 65,792 addresses, a large share of the internet; at most "
        "65,536 (a /16) may reach SSH: name your own addresses, e.g. 203.0.113.7/32",
    ),
    (
        {"network": {"allowedCidrs": ["10.0.0.1/24"]}},
        "trackday:network.allowedCidrs: ['10.0.0.1/24'] is not valid; '10.0.0.1/24' is not a CIDR "
        "block (10.0.0.1/24 has host bits set)",
    ),
    (
        {"tags": {"Owner": "me"}},
        "trackday:tags: {'Owner': 'me'} is not valid; tag key 'Owner': lowercase letters, "
        "digits, '_' "
        "and '-', starting with a letter (GCP labels are the strictest)",
    ),
    (
        {"donkeycar": {"version": "4.4.0"}},
        "trackday:donkeycar.version: '4.4.0' is not valid; Input should be '5.3.0' or '5.4.0'",
    ),
    (
        {"donkeycar": {"modelType": "resnet"}},
        "trackday:donkeycar.modelType: 'resnet' is not valid; Input should be 'linear', "
        "'categorical', "
        "'inferred', 'memory', 'behavior', 'localizer', 'rnn', '3d' or 'imu'",
    ),
    (
        {"donkeycar": {"overrides": {"batch_size": 64}}},
        "trackday:donkeycar.overrides: {'batch_size': 64} is not valid; key 'batch_size' is not a "
        "donkeycar config name (UPPER_CASE, e.g. BATCH_SIZE)",
    ),
    (
        {"storage": {"bucket": "My_Bucket"}},
        "trackday:storage.bucket: 'My_Bucket' is not valid; 3-63 lowercase letters, digits and "
        "'-', "
        "starting and ending with a letter or digit",
    ),
    (
        {"budget": {"ttlHours": 0}},
        "trackday:budget.ttlHours: 0 is not valid; Input should be greater than 0",
    ),
    (
        {"local": {"s3Port": 80}},
        "trackday:local.s3Port: 80 is not valid; Input should be greater than or equal to 1024",
    ),
]


@pytest.mark.parametrize(("raw", "message"), INVALID, ids=[m.split(":")[1] for _, m in INVALID])
def test_invalid_config_names_key_value_and_what_is_allowed(raw, message):
    with pytest.raises(ConfigError) as err:
        parse(raw)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_invalid_config_fails_before_any_resource():
    values = {**shipped_values("gcp"), "trackday:nodes": {"gpu": {"type": "K80"}}}
    with pytest.raises(ConfigError, match=r"trackday:nodes.gpu.type: 'K80'"):
        run_stack("gcp", values)


def test_load_reads_structured_values_the_way_pulumi_passes_them():
    # Pulumi hands objects over as JSON text and scalars as text: "2" must become 2.
    values = {**shipped_values("gcp"), "trackday:budget": {"runHours": 2, "ttlHours": 3}}
    run = run_stack("gcp", values)
    assert run.outputs["training"].value["maxRunHours"] == 3


def test_unknown_stack_file_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match=r"no such stack file; stacks here: .*dev.*gcp"):
        config.read_stack_file(config.stack_file(ROOT, "nope"))


def test_deepracer_section_parses_into_its_settings():
    parsed = parse({"deepracer": {"world": "Spain_track", "workers": 3, "raceType": "HEAD_TO_BOT"}})
    assert parsed.deepracer is not None
    assert (parsed.deepracer.world, parsed.deepracer.workers) == ("Spain_track", 3)
    assert parse({}).deepracer is None
