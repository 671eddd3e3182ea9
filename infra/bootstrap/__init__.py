"""Node bootstrap: the cloud-init user data of a GPU node and the scripts it runs.

Pure functions of plain values, so that Pulumi can call them inside `Output.all(...).apply()`
and tests can check what they render without Pulumi (every document passes
`cloud-init schema`, every script `shellcheck`).

What a node does at first boot, retried until it is done and again at each boot until then
(the Azure NVIDIA driver extension may reboot it half-way, apt may be locked): Docker with
the NVIDIA runtime as the default runtime, in the mode that honours Swarm's GPU assignment
(checked with a container, or the bootstrap fails), and the GPUs advertised to Swarm; on the
manager, `docker swarm init` and its `trackday.role=trainer` label. Every boot,
systemd-tmpfiles makes /tmp/sagemaker (the DeepRacer trainer's bind mount) root's before
anyone else can. A power-off timer after `budget.ttlHours`, and another after the node has
been idle (never while an SSH session, such as `pulumi up` or `trackday`, is open), stop a
forgotten stack from billing.

User data holds no secret: any process on the node can read it from the metadata service,
and clouds keep it in plain text. The manager leaves the Swarm join token in the cloud's
secret store (gcp's Secret Manager, azure's Key Vault, aws's Parameter Store) with its own
identity and each worker reads it with its own (`join_store`), and the manager builds the
trainer image itself (`trainer_build`): nothing goes over SSH. The token never appears on a
command line, and the manager labels the workers: a worker cannot claim a role.
"""

from infra.bootstrap.cloud_config import user_data
from infra.bootstrap.gpu import GPU_PROBE_IMAGE, MIN_TOOLKIT_VERSION
from infra.bootstrap.spec import (
    BOOTSTRAP_SCRIPT,
    IDLE_SCRIPT,
    IDLE_SINCE_FILE,
    NODE_ENV_FILE,
    POWEROFF_SCRIPT,
    READY_FILE,
    SWARM_PORT,
    SYSTEMD_DIR,
    TMPFILES_CONF,
    Cloud,
    NodeBootstrap,
    NodeService,
    Role,
    check_image_reference,
    node_labels,
    shell_script,
)

__all__ = [
    "BOOTSTRAP_SCRIPT",
    "GPU_PROBE_IMAGE",
    "IDLE_SCRIPT",
    "IDLE_SINCE_FILE",
    "MIN_TOOLKIT_VERSION",
    "NODE_ENV_FILE",
    "POWEROFF_SCRIPT",
    "READY_FILE",
    "SWARM_PORT",
    "SYSTEMD_DIR",
    "TMPFILES_CONF",
    "Cloud",
    "NodeBootstrap",
    "NodeService",
    "Role",
    "check_image_reference",
    "node_labels",
    "shell_script",
    "user_data",
]
