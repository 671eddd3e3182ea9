"""What each cloud offers for training: GPU types, the machine types that carry them, defaults.

Plain data, shared by the config checks (infra/config.py), the price table (infra/prices.py)
and the policy pack: one list of allowed machines, so a type the config accepts always has
a known shape and, where priced, a known price.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    """A machine type and the GPUs it comes with.

    `gpu_counts` lists the GPU counts the machine can take: one value where the GPUs are
    built in (AWS g4dn/g5/g6, Azure NC/NV, GCP g2/a2), several where they are attached
    (GCP n1 with T4).
    """

    name: str
    gpu: str
    gpu_counts: tuple[int, ...]
    vcpus: int


def _machines(*machines: Machine) -> dict[str, Machine]:
    return {m.name: m for m in machines}


MACHINES: dict[str, dict[str, Machine]] = {
    "gcp": _machines(
        Machine("n1-standard-4", "T4", (1, 2, 4), 4),
        Machine("n1-standard-8", "T4", (1, 2, 4), 8),
        Machine("n1-standard-16", "T4", (1, 2, 4), 16),
        Machine("g2-standard-4", "L4", (1,), 4),
        Machine("g2-standard-8", "L4", (1,), 8),
        Machine("g2-standard-16", "L4", (1,), 16),
        Machine("a2-highgpu-1g", "A100", (1,), 12),
        Machine("a2-highgpu-2g", "A100", (2,), 24),
    ),
    "aws": _machines(
        Machine("g4dn.xlarge", "T4", (1,), 4),
        Machine("g4dn.2xlarge", "T4", (1,), 8),
        Machine("g4dn.4xlarge", "T4", (1,), 16),
        Machine("g4dn.12xlarge", "T4", (4,), 48),
        Machine("g5.xlarge", "A10G", (1,), 4),
        Machine("g5.2xlarge", "A10G", (1,), 8),
        Machine("g5.4xlarge", "A10G", (1,), 16),
        Machine("g6.xlarge", "L4", (1,), 4),
        Machine("g6.2xlarge", "L4", (1,), 8),
        Machine("g6.4xlarge", "L4", (1,), 16),
    ),
    "azure": _machines(
        Machine("Standard_NC4as_T4_v3", "T4", (1,), 4),
        Machine("Standard_NC8as_T4_v3", "T4", (1,), 8),
        Machine("Standard_NC16as_T4_v3", "T4", (1,), 16),
        Machine("Standard_NC64as_T4_v3", "T4", (4,), 64),
        Machine("Standard_NV36ads_A10_v5", "A10", (1,), 36),
        Machine("Standard_NC24ads_A100_v4", "A100", (1,), 24),
    ),
}

# The machine used for each GPU type when the stack names only the GPU.
DEFAULT_MACHINE: dict[str, dict[str, str]] = {
    "gcp": {"T4": "n1-standard-8", "L4": "g2-standard-8", "A100": "a2-highgpu-1g"},
    "aws": {"T4": "g4dn.2xlarge", "A10G": "g5.2xlarge", "L4": "g6.2xlarge"},
    "azure": {
        "T4": "Standard_NC4as_T4_v3",
        "A10": "Standard_NV36ads_A10_v5",
        "A100": "Standard_NC24ads_A100_v4",
    },
}

DEFAULT_GPU = "T4"

# Names the clouds' APIs use for a GPU type.
VERTEX_ACCELERATOR = {"T4": "NVIDIA_TESLA_T4", "L4": "NVIDIA_L4", "A100": "NVIDIA_TESLA_A100"}
COMPUTE_ACCELERATOR = {"T4": "nvidia-tesla-t4", "L4": "nvidia-l4", "A100": "nvidia-tesla-a100"}


def gpu_types(cloud: str) -> list[str]:
    """The GPU types a cloud offers here, default first."""
    return list(DEFAULT_MACHINE[cloud])


def find_machine(cloud: str, name: str) -> Machine | None:
    """The machine `name` on `cloud`, or None where trackday does not know it."""
    return MACHINES.get(cloud, {}).get(name)
