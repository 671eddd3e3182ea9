"""The nodes' inbound rules, cloud-neutral: each cloud maps this one list to its firewall.

Admin ports (SSH) come in only from `network.allowedCidrs`; Swarm's ports (and, on azure, the
S3 gateway's) only from the other nodes. Everything else stays closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra import nodes


@dataclass(frozen=True)
class Ingress:
    protocol: str  # "tcp" or "udp"
    port: int
    from_admins: bool  # True: from network.allowedCidrs; False: from the nodes only

    @property
    def name(self) -> str:
        return f"admin-{self.port}" if self.from_admins else f"swarm-{self.protocol}-{self.port}"

    @property
    def description(self) -> str:
        if self.from_admins:
            return f"port {self.port} from network.allowedCidrs"
        return f"swarm {self.protocol}/{self.port} between the nodes"


def ingress_rules(between_nodes: tuple[tuple[str, int], ...] = ()) -> list[Ingress]:
    """Admin ports first, then Swarm's ports and `between_nodes` (a cloud's own services)."""
    return [Ingress("tcp", port, True) for port in nodes.ADMIN_PORTS] + [
        Ingress(protocol, port, False) for protocol, port in (*nodes.SWARM_PORTS, *between_nodes)
    ]
