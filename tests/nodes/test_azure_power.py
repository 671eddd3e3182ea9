"""An Azure node deallocates itself through the cloud's APIs when its idle timer fires.

The node boots the Azure stack's rendered user data against Azure's stand-ins (azure_cloud.py:
IMDS at 169.254.169.254 on the node's link network, the stack's Key Vault its bootstrap needs,
and ARM at management.azure.com, over TLS with a certificate of the test's own CA, which the
node trusts). Its power-off script (infra/bootstrap/power.py) asks IMDS for the VM's resource
ID and a token of the VM's own identity, then calls ARM's deallocate, which only that identity
may do on that VM (the program's role assignment). The idle timer is made to fire as
test_timers.py does: the node has been idle since 31 minutes ago.
"""

from __future__ import annotations

import datetime

import pytest

from infra.bootstrap import IDLE_SINCE_FILE
from tests.infra.azure_standins import ARM_RESOURCE, imds_token
from tests.nodes import harness
from tests.nodes.azure_cloud import ARM_HOST, IMDS_ADDRESS, AzureCloud
from tests.nodes.harness import Node, wait_for
from tests.nodes.render import SshKey, render

pytestmark = [pytest.mark.docker, pytest.mark.nodes, pytest.mark.timeout(600)]


def http_code(node: Node, curl_args: str) -> str:
    return node.root(f"curl -s -o /dev/null -w '%{{http_code}}' {curl_args}").strip()


def test_the_idle_timer_deallocates_an_azure_node_through_imds_and_arm(
    node_image: str, ssh_key: SshKey
) -> None:
    stack = render("azure", ssh_key, nodes={"count": 1}, deepracer={"opengl": False})
    cluster = harness.new_cluster(node_image, "10.42.8.0/24", ssh_key)
    cloud = None
    try:
        cloud = AzureCloud.start(cluster, stack)
        node = cloud.boot("manager", stack.node("manager").user_data, "10.42.8.10")
        node.wait_bootstrapped()
        vm, own = cloud.cloud.vms["manager"], cloud.cloud.own_identity["manager"]

        # The stand-ins are strict: what Azure refuses, they refuse.
        token_url = (
            f"'http://{IMDS_ADDRESS}/metadata/identity/oauth2/token?api-version=2018-02-01"
            f"&resource=https://{ARM_HOST}/&client_id=00000000-0000-0000-0000-000000000000'"
        )
        leaf = f"'http://{IMDS_ADDRESS}/metadata/instance/compute/resourceId?format=text"
        assert http_code(node, f"{leaf}&api-version=2021-02-01'") == "400"  # no Metadata header
        assert http_code(node, f"-H Metadata:true {leaf}&api-version=2010-01-01'") == "400"
        assert http_code(node, f"-H Metadata:true {leaf}'") == "400"  # no api-version
        assert http_code(node, f"-H Metadata:true {token_url}") == "400"  # not this VM's
        deallocate = f"'https://{ARM_HOST}{vm.resource_id}/deallocate?api-version=2024-07-01'"
        assert http_code(node, f"-X POST -H 'Authorization: Bearer wrong' {deallocate}") == "401"
        data = next(iter(vm.identities - {own}))  # the manager's data identity: no VM role
        bearer = f"'Authorization: Bearer {imds_token(data, ARM_RESOURCE)}'"
        assert http_code(node, f"-X POST -H {bearer} {deallocate}") == "403"
        assert cloud.deallocations() == []

        since = int(datetime.datetime.now().timestamp()) - 31 * 60
        node.root(f"echo {since} > {IDLE_SINCE_FILE}")
        log = lambda: cloud.logs() + node.log()  # noqa: E731
        wait_for("the deallocate call", lambda: cloud.deallocations() != [], 300, log)
        calls = cloud.deallocations()
        assert (calls[0]["deallocate"], calls[0]["by"]) == (vm.resource_id, own)
        journal = node.root("journalctl --no-pager -t trackday")
        assert "deallocating this VM" in journal and "deallocation failed" not in journal
        assert node.running()  # Azure powers it off once deallocated; the script did not
    finally:
        if not harness.keep_nodes():
            cluster.down()
            if cloud is not None:
                cloud.down()
