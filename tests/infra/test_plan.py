"""`trackday plan`: every shipped stack plans offline, costs come from the dated table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from infra import price_table, prices
from infra.config import parse
from infra.offline import DeclaredResource, OfflineRun
from infra.plan import plan_stack
from tests.infra.stacks import ROOT, SHIPPED
from trackday.cli import app


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_plans_offline(stack):
    plan = plan_stack(ROOT, stack)
    data = plan.to_dict()
    assert data["stack"] == stack
    assert data["resources"], "a stack declares resources"
    assert all(r["type"] and r["name"] for r in data["resources"])
    assert data["costs"]["complete"], data["costs"]["unpriced"]
    assert data["costs"]["asOf"] == price_table.PRICES_AS_OF
    assert data["costs"]["source"]
    json.dumps(data)  # the --json form is plain JSON


@pytest.mark.parametrize("stack", SHIPPED)
def test_plan_never_prints_a_secret(stack):
    plan = plan_stack(ROOT, stack)
    text = json.dumps(plan.to_dict())
    for output in plan.run.outputs.values():
        if output.secret:
            assert str(output.value) not in text


def test_gcp_costs_follow_the_price_table():
    costs = plan_stack(ROOT, "gcp").costs
    job = next(line for line in costs.lines if line.item == "Vertex AI custom job")
    per_hour = (
        price_table.VERTEX_MACHINE_HOURLY["n1-standard-8"]
        + price_table.VERTEX_ACCELERATOR_HOURLY["NVIDIA_TESLA_T4"]
    )
    assert job.per_run == pytest.approx(per_hour * 1.0)
    bucket = next(line for line in costs.lines if line.item == "gcp:storage/bucket:Bucket")
    assert bucket.hourly == pytest.approx(0.020 * 50 / 730, rel=1e-3)
    assert costs.per_run == pytest.approx(job.per_run)
    assert costs.hourly > 0


def test_local_costs_nothing_and_says_so():
    costs = plan_stack(ROOT, "dev").costs
    assert (costs.hourly, costs.per_run, costs.complete) == (0, 0, True)
    assert "no cloud charges" in costs.source


def _resource(type_: str, **inputs) -> DeclaredResource:
    return DeclaredResource(
        type=type_,
        name="n",
        urn=f"urn::{type_}::n",
        parent="",
        custom=True,
        protect=False,
        inputs=inputs,
    )


def test_unknown_types_and_machines_are_reported_not_priced_as_zero():
    config = parse({})
    run = OfflineRun(
        stack="x",
        resources=[
            _resource("gcp:bigquery/dataset:Dataset"),
            _resource("aws:ec2/instance:Instance", instanceType="p5.48xlarge"),
            _resource("aws:ec2/instance:Instance", instanceType="g4dn.2xlarge"),
        ],
    )
    est = prices.estimate(run, config)
    assert not est.complete
    assert [u.item for u in est.unpriced] == [
        "gcp:bigquery/dataset:Dataset n",
        "aws:ec2/instance:Instance n (p5.48xlarge)",
    ]
    # The machine and its auto-assigned public IPv4 (which bills since 2024).
    assert est.hourly == price_table.AWS_HOURLY["g4dn.2xlarge"] + price_table.AWS_PUBLIC_IPV4_HOURLY


def test_gpu_nodes_are_priced_by_their_machine_and_gpus():
    config = parse({"budget": {"runHours": 2}})
    run = OfflineRun(
        stack="x",
        resources=[
            _resource(
                "gcp:compute/instance:Instance",
                machineType="n1-standard-8",
                guestAccelerators=[{"type": "nvidia-tesla-t4", "count": 2}],
            ),
            _resource(
                "azure-native:compute:VirtualMachine",
                hardwareProfile={"vmSize": "Standard_NC4as_T4_v3"},
            ),
        ],
    )
    est = prices.estimate(run, config)
    gce = (
        price_table.GCE_HOURLY["n1-standard-8"] + 2 * price_table.GCE_GPU_HOURLY["nvidia-tesla-t4"]
    )
    assert est.hourly == pytest.approx(
        gce + price_table.AZURE_HOURLY["Standard_NC4as_T4_v3"], abs=1e-4
    )
    assert est.per_run == pytest.approx(2 * est.hourly, abs=1e-3)
    assert est.stopped_monthly == 0, "no disk or address declared: nothing bills while stopped"


@pytest.mark.parametrize(
    ("stack", "values"),
    [
        ("aws", {}),
        ("azure", {}),
        ("gcp", {"gcp": {"nodePool": True}, "network": {"allowedCidrs": ["203.0.113.7/32"]}}),
    ],
    ids=["aws", "azure", "gcp-node-pool"],
)
def test_what_bills_while_the_nodes_are_stopped_is_priced(stack, values):
    """Root disks, static addresses and the bucket bill with every node stopped; the
    machines and ephemeral addresses do not."""
    from tests.infra.stacks import run_stack, with_keys

    run = run_stack(stack, with_keys(stack, nodes={"count": 2}, **values))
    config = parse(
        {k.split(":", 1)[1]: v for k, v in with_keys(stack, nodes={"count": 2}, **values).items()}
    )
    est = prices.estimate(run, config)
    assert est.complete, est.unpriced
    disks = [x for x in est.lines if x.item == "root disk"]
    addresses = [x for x in est.lines if x.item == "public IPv4"]
    assert len(disks) == 2 and all(x.stopped_hourly > 0 for x in disks)
    static = [x for x in addresses if x.stopped_hourly > 0]
    assert len(static) == (2 if stack == "azure" else 1), "the manager's stable address"
    machines = [x for x in est.lines if x.per_run]
    assert machines and all(x.stopped_hourly == 0 for x in machines)
    stopped = sum(x.stopped_hourly for x in est.lines) * price_table.HOURS_PER_MONTH
    assert est.stopped_monthly == pytest.approx(stopped, abs=0.01)
    assert 0 < est.stopped_monthly < est.hourly * price_table.HOURS_PER_MONTH


def test_root_disk_prices_follow_each_clouds_rule():
    config = parse({})
    gp3 = _resource(
        "aws:ec2/instance:Instance",
        instanceType="g4dn.xlarge",
        rootBlockDevice={"volumeSize": 100},
        tags={"trackday-role": "manager"},
    )
    azure = _resource(
        "azure-native:compute:VirtualMachine",
        hardwareProfile={"vmSize": "Standard_NC4as_T4_v3"},
        storageProfile={"osDisk": {"diskSizeGB": 150}},
    )
    est = prices.estimate(OfflineRun(stack="x", resources=[gp3, azure]), config)
    disks = {x.detail: x for x in est.lines if x.item == "root disk"}
    gp3_month = disks["n: 100 GB gp3"].stopped_hourly * price_table.HOURS_PER_MONTH
    assert gp3_month == pytest.approx(8.0, abs=0.01)
    # Azure bills Standard SSD by tier: 150 GB is billed as the 256 GiB E15.
    e15 = disks["n: 150 GB Standard SSD (billed as 256 GiB)"]
    assert e15.stopped_hourly * price_table.HOURS_PER_MONTH == pytest.approx(19.20, abs=0.01)


def test_every_machine_the_config_allows_has_a_price():
    from infra import catalog

    for cloud, table in (
        ("aws", price_table.AWS_HOURLY),
        ("azure", price_table.AZURE_HOURLY),
        ("gcp", price_table.GCE_HOURLY),
    ):
        assert set(catalog.MACHINES[cloud]) <= set(table), cloud
    assert set(catalog.MACHINES["gcp"]) <= set(price_table.VERTEX_MACHINE_HOURLY)
    assert set(catalog.VERTEX_ACCELERATOR.values()) <= set(price_table.VERTEX_ACCELERATOR_HOURLY)


def test_cli_plan_json_and_table():
    runner = CliRunner()
    result = runner.invoke(app, ["plan", "--stack", "gcp", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {r["type"] for r in data["resources"]} >= {
        "gcp:storage/bucket:Bucket",
        "docker-build:index:Image",
    }
    assert data["costs"]["perRun"] > 0
    table = runner.invoke(app, ["plan", "--stack", "dev"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "docker:index/container:Container" in table.stdout
    assert "prices as of" in table.stdout


def test_cli_plan_bad_stack_is_one_clear_line(tmp_path):
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  trackday:target: gpc\n")
    result = CliRunner().invoke(app, ["plan", "--stack", "bad", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: trackday:target: 'gpc' is not valid; Input should be 'local', 'gcp', 'aws' or "
        "'azure'"
    )
    missing = CliRunner().invoke(app, ["plan", "--stack", "nope", "--dir", str(tmp_path)])
    assert missing.exit_code == 2
    assert "no such stack file; stacks here: bad" in missing.stderr


@pytest.mark.parametrize("stack", SHIPPED)
def test_cli_plan_shows_no_protected_resource_and_the_stopped_cost(stack):
    runner = CliRunner()
    data = json.loads(runner.invoke(app, ["plan", "--stack", stack, "--json"]).stdout)
    assert [r["name"] for r in data["resources"] if r["protect"]] == []
    assert all("stoppedMonthly" in line for line in data["costs"]["lines"])
    if stack in ("aws", "azure"):
        assert data["costs"]["stoppedMonthly"] > 0, "disks and addresses bill while stopped"
    text = runner.invoke(app, ["plan", "--stack", stack], env={"COLUMNS": "250"}).stdout
    assert "per month stopped" in text and "[protected]" not in text


@pytest.mark.parametrize("stack", ["aws", "azure"])
def test_spot_nodes_say_they_are_priced_at_on_demand(stack):
    """The shipped aws and azure stacks run spot: no dated spot figure is published for their
    machines, so their lines say they are priced at on-demand, and why."""
    lines = plan_stack(ROOT, stack).costs.lines
    machines = [line for line in lines if line.per_run]
    assert machines and all(
        line.detail.endswith("(spot, priced at on-demand: no published spot figure)")
        for line in machines
    ), [line.detail for line in machines]
