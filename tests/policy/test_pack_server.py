"""The policy pack as Pulumi runs it: policy/__main__.py in its own virtualenv serves CrossGuard's
analyzer protocol on 127.0.0.1, and this test is the Pulumi engine's side of that protocol.

It sends what the shipped stacks declare under Pulumi's mocks (Analyze per resource, then
AnalyzeStack) with the stack's config in PULUMI_CONFIG, as the CLI does, and expects no
violation; then resources that break rules, and expects the pack's own messages.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra import offline
from policy import rules
from tests.infra.stacks import ROOT, SHIPPED, run_stack, shipped_values, with_keys

PACK_PYTHON = ROOT / "policy" / ".venv" / "bin" / "python"
pytestmark = pytest.mark.skipif(
    not PACK_PYTHON.exists(), reason="the pack's virtualenv is missing: run `scripts/setup policy`"
)


@contextmanager
def pack_server(values: dict) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """Start the pack the way the Pulumi CLI does and connect to the port it prints."""
    env = {
        **os.environ,
        "PULUMI_CONFIG": json.dumps(offline.stack_config(values)),
        "PULUMI_PROJECT": offline.PROJECT,
        "PULUMI_STACK": "policy-test",
        "PULUMI_DRY_RUN": "true",
    }
    env.pop("PYTHONPATH", None)
    # The Python analyzer plugin's own entry: `python -m pulumi.policy ENGINE PACK_DIR`.
    process = subprocess.Popen(
        [str(PACK_PYTHON), "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(ROOT / "policy")],
        cwd=ROOT / "policy",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise AssertionError(f"the pack did not start: {process.stderr.read()[-2000:]}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def _struct(inputs: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(inputs)
    return out


def _analyze(stub, run: offline.OfflineRun) -> list[tuple[str, str]]:
    """(policy, message) for every diagnostic over the run's custom resources and the stack."""
    declared = [r for r in run.resources if r.custom]
    found = []
    for r in declared:
        response = stub.Analyze(
            analyzer_pb2.AnalyzeRequest(
                type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name
            ),
            timeout=30,
        )
        found += [_diagnostic(d) for d in response.diagnostics]
    stack = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=_struct(r.inputs),
                urn=r.urn,
                name=r.name,
                propertyDependencies=_property_dependencies(r, declared),
            )
            for r in declared
        ]
    )
    found += [_diagnostic(d) for d in stub.AnalyzeStack(stack, timeout=30).diagnostics]
    return found


def _property_dependencies(
    resource: offline.DeclaredResource, declared: list[offline.DeclaredResource]
) -> dict[str, analyzer_pb2.AnalyzerPropertyDependencies]:
    """What the engine sends with each resource: the URNs each input was computed from. Under
    the mocks a resource's id is "<name>-id", so an input holding that came from it."""
    ids = {f"{r.name}-id": r.urn for r in declared}
    return {
        key: analyzer_pb2.AnalyzerPropertyDependencies(urns=[ids[value]])
        for key, value in resource.inputs.items()
        if isinstance(value, str) and value in ids
    }


def _diagnostic(d: analyzer_pb2.AnalyzeDiagnostic) -> tuple[str, str]:
    """(policy, message): pulumi_policy sends the policy's description, a newline, the message."""
    description, _, message = d.message.partition("\n")
    assert description == d.description
    return d.policyName, message


def test_the_pack_declares_every_rule_as_mandatory():
    with pack_server(shipped_values("dev")) as stub:
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "trackday"
    assert sorted(p.name for p in info.policies) == sorted(r.name for r in rules.RULES)
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}
    gpu = next(p for p in info.policies if p.name == "gpu-machines-allowed-and-bounded")
    assert "allowAlwaysOnGpu" in gpu.configSchema.properties


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_passes_the_pack_server(stack):
    values = shipped_values(stack)
    with pack_server(values) as stub:
        assert _analyze(stub, run_stack(stack, values)) == []


def test_the_pack_server_reports_violations_with_the_stack_config():
    values = with_keys("gcp", budget={"hourly": 0.05})
    run = run_stack("gcp", values)
    open_ssh = offline.DeclaredResource(
        type="gcp:compute/firewall:Firewall",
        name="ssh",
        urn="urn:pulumi:gcp::trackday::gcp:compute/firewall:Firewall::ssh",
        parent="",
        custom=True,
        protect=False,
        inputs={"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["22"]}]},
    )
    run.resources.append(open_ssh)
    with pack_server(values) as stub:
        found = _analyze(stub, run)
    assert ("no-internet-admin-ingress", "the firewall opens SSH (port 22) to 0.0.0.0/0") in found
    budget = [m for p, m in found if p == "hourly-cost-within-budget"]
    assert len(budget) == 1 and "over budget.hourly $0.0500/h" in budget[0]
    assert len(found) == 2, found


UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # how the engine sends a preview unknown


@pytest.mark.parametrize(
    ("ttl", "expected"), [(8, []), (None, ["gpu-machines-allowed-and-bounded"])]
)
def test_user_data_unknown_in_preview_falls_back_to_the_stacks_ttl(ttl, expected):
    node = offline.DeclaredResource(
        type="aws:ec2/instance:Instance",
        name="node-0",
        urn="urn:pulumi:dev::trackday::aws:ec2/instance:Instance::node-0",
        parent="",
        custom=True,
        protect=False,
        inputs={
            "instanceType": "g4dn.2xlarge",
            "metadataOptions": {"httpTokens": "required"},
            "userData": UNKNOWN_STRING,
        },
    )
    with pack_server(with_keys("dev", budget={"ttlHours": ttl})) as stub:
        found = _analyze(stub, offline.OfflineRun(stack="dev", resources=[node]))
    assert [policy for policy, _ in found] == expected


def test_a_stack_opts_out_through_the_pack_config():
    """What `--policy-pack-config policy/config/STACK.json` sends: the rule then lets it pass."""
    node = offline.DeclaredResource(
        type="gcp:compute/instance:Instance",
        name="node-0",
        urn="urn:pulumi:dev::trackday::gcp:compute/instance:Instance::node-0",
        parent="",
        custom=True,
        protect=False,
        inputs={"machineType": "g2-standard-8", "scheduling": {"provisioningModel": "STANDARD"}},
    )
    run = offline.OfflineRun(stack="dev", resources=[node])
    with pack_server(with_keys("dev", budget={"ttlHours": None})) as stub:
        before = _analyze(stub, run)
        opt_out = analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.MANDATORY, properties=_struct({"allowAlwaysOnGpu": True})
        )
        stub.Configure(
            analyzer_pb2.ConfigureAnalyzerRequest(
                policyConfig={"gpu-machines-allowed-and-bounded": opt_out}
            ),
            timeout=30,
        )
        after = _analyze(stub, run)
    assert [p for p, _ in before] == ["gpu-machines-allowed-and-bounded"]
    assert after == []
