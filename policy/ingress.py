"""No ingress from a large share of the internet to SSH, the Docker API or the S3 endpoint.

The rule, as the pack says it: the sources a rule lets reach a guarded port may together
cover at most MAX_ADMIN_ADDRESSES IPv4 addresses (a /16: infra/cloud_rules.py, which the
stack config checks too), and no IPv6 range wider than a /48; a source that is no address
(`*`, `Internet`, `AzureCloud`...) but the virtual network's own counts as the internet. What
cannot be read at preview (a source, a protocol, a port unknown until `up`) fails closed:
the pack cannot tell it is safe. Protocols are matched by name and by number (`6` is TCP).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from infra import cloud_rules
from policy.model import UNKNOWN, Resource, Settings, as_list, get

# Sources that are not addresses and stay inside the stack's own network (Azure tags).
INTERNAL_TAGS = {"virtualnetwork", "azureloadbalancer"}
# The narrowest IPv6 prefix length still too wide to reach an admin port (a site is a /48).
MIN_IPV6_PREFIX = 48
TCP_NAMES = {"tcp", "6", "all", "-1", "*", UNKNOWN.lower()}

DOCKER_SERVICE = "docker:index/service:Service"
DOCKER_CONTAINER = "docker:index/container:Container"


def _port_range(text: Any) -> tuple[int, int] | None:
    """'22', '2375-2376', '*' -> an inclusive range; None for something else."""
    text = str(text).strip()
    if text in ("*", "", "None", UNKNOWN):
        return (0, 65535)
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        return None


def too_wide(sources: Iterable[Any]) -> list[str]:
    """The sources that, alone or together, open to a large share of the internet."""
    wide, v4 = [], []
    for source in sources:
        text = str(source).strip()
        if text == UNKNOWN:
            wide.append(f"{text} (unknown at preview: cannot be checked)")
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            if text.lower() not in INTERNAL_TAGS:
                wide.append(text)
            continue
        if net.version == 6 and net.prefixlen < MIN_IPV6_PREFIX:
            wide.append(text)
        elif net.version == 4:
            v4.append(text)
    covered = cloud_rules.admin_coverage(v4)
    if covered > cloud_rules.MAX_ADMIN_ADDRESSES:
        together = f" ({covered:,} addresses together)" if len(v4) > 1 else ""
        wide.append(", ".join(v4) + together)
    return wide


def _exposed(
    settings: Settings, what: str, sources: list[Any], ranges: list[tuple[int, int]]
) -> list[str]:
    opened = too_wide(sources)
    if not opened:
        return []
    hits = sorted(
        {(p, n) for p, n in settings.guarded_ports.items() for lo, hi in ranges if lo <= p <= hi}
    )
    return [f"{what} opens {name} (port {port}) to {', '.join(opened)}" for port, name in hits]


def _is_tcp(protocol: Any) -> bool:
    return str(protocol if protocol is not None else "*").strip().lower() in TCP_NAMES


def _aws_rule_ranges(rule: Mapping[str, Any], protocol_key: str) -> list[tuple[int, int]]:
    protocol = str(rule.get(protocol_key, "")).lower()
    if protocol in ("-1", "all", UNKNOWN.lower()):
        return [(0, 65535)]
    if not _is_tcp(protocol):
        return []
    low, high = rule.get("fromPort", 0), rule.get("toPort", 65535)
    if UNKNOWN in (low, high):
        return [(0, 65535)]
    return [(int(low or 0), int(high or 0))]


def _docker_published(resource: Resource) -> list[tuple[str, int]]:
    """(address, port) a container or service publishes on its host."""
    i = resource.inputs
    if resource.type == DOCKER_CONTAINER:
        # Docker publishes on every address unless `ip` says otherwise.
        return [
            (str(p.get("ip") or "0.0.0.0"), p["external"])
            for p in as_list(i.get("ports"))
            if p.get("external") is not None
        ]
    # A service's published port listens on every address of every node (ingress or host mode).
    return [
        ("0.0.0.0/0", p["publishedPort"])
        for p in as_list(get(i, "endpointSpec.ports"))
        if p.get("publishedPort") is not None
    ]


def no_open_admin_ingress(resource: Resource, settings: Settings) -> list[str]:
    """Security groups, firewall rules, NSG rules and published container and service ports."""
    t, i = resource.type, resource.inputs
    out: list[str] = []
    if t == "aws:ec2/securityGroup:SecurityGroup":
        for n, rule in enumerate(as_list(i.get("ingress"))):
            if rule == UNKNOWN:
                rule = {"protocol": UNKNOWN, "cidrBlocks": [UNKNOWN]}
            sources = as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks"))
            out += _exposed(settings, f"ingress[{n}]", sources, _aws_rule_ranges(rule, "protocol"))
    elif t == "aws:ec2/securityGroupRule:SecurityGroupRule" and i.get("type") == "ingress":
        sources = as_list(i.get("cidrBlocks")) + as_list(i.get("ipv6CidrBlocks"))
        out += _exposed(settings, "the rule", sources, _aws_rule_ranges(i, "protocol"))
    elif t == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        sources = as_list(i.get("cidrIpv4")) + as_list(i.get("cidrIpv6"))
        out += _exposed(settings, "the rule", sources, _aws_rule_ranges(i, "ipProtocol"))
    elif t == "gcp:compute/firewall:Firewall" and i.get("direction", "INGRESS") != "EGRESS":
        ranges = []
        for allow in as_list(i.get("allows")):
            if allow == UNKNOWN or _is_tcp(allow.get("protocol")):
                ports = as_list(allow.get("ports") if allow != UNKNOWN else None) or ["*"]
                ranges += [r for r in map(_port_range, ports) if r]
        out += _exposed(settings, "the firewall", as_list(i.get("sourceRanges")), ranges)
    elif t in ("azure-native:network:NetworkSecurityGroup", "azure-native:network:SecurityRule"):
        rules = as_list(i.get("securityRules")) if t.endswith("Group") else [i]
        for rule in rules:
            if rule.get("direction") != "Inbound" or rule.get("access") != "Allow":
                continue
            if not _is_tcp(rule.get("protocol", "*")):
                continue
            sources = [rule.get("sourceAddressPrefix"), *as_list(rule.get("sourceAddressPrefixes"))]
            ports = [rule.get("destinationPortRange"), *as_list(rule.get("destinationPortRanges"))]
            ranges = [r for r in map(_port_range, [p for p in ports if p is not None]) if r]
            label = f"rule {rule.get('name', '')}".strip()
            out += _exposed(settings, label, [s for s in sources if s is not None], ranges)
    elif t in (DOCKER_CONTAINER, DOCKER_SERVICE):
        what = "the container" if t == DOCKER_CONTAINER else "the service"
        for ip, port in _docker_published(resource):
            if ip in ("127.0.0.1", "::1"):
                continue
            source = "0.0.0.0/0" if ip in ("0.0.0.0", "::") else ip
            out += _exposed(settings, what, [source], [_port_range(port) or (0, 65535)])
    return out
