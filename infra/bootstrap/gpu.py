"""The GPU part of a node's bootstrap: wait for the NVIDIA driver, set the container toolkit
to a mode that honours Swarm's GPU assignment, advertise every GPU to Swarm, and prove it."""

from __future__ import annotations

from contract.swarm import GPU_RESOURCE

GPU_WAIT_MINUTES = 20  # for the driver, which the Azure extension may still be installing
# From NVIDIA container toolkit 1.18.0 the runtime defaults to "jit-cdi" mode, which ignores
# the GPU Swarm assigns (DOCKER_RESOURCE_GPU) until 1.19.0 (NVIDIA/nvidia-container-toolkit
# issue 1599); "legacy" mode honours it on every version. `nvidia-ctk config --set` is in
# NVIDIA's install guide from 1.14 (rootless mode); the container check below is the proof.
MIN_TOOLKIT_VERSION = "1.14.0"
GPU_PROBE_IMAGE = "ubuntu:22.04"


def gpu_section() -> str:
    """The bootstrap's GPU steps, run only where an NVIDIA device is present."""
    return _GPU_SECTION.format(
        minutes=GPU_WAIT_MINUTES,
        gpu_kind=GPU_RESOURCE,
        min_toolkit=MIN_TOOLKIT_VERSION,
        probe=GPU_PROBE_IMAGE,
    )


# The driver comes with the image (AWS Deep Learning AMI, GCP accelerator images) or the
# Azure NVIDIA GPU driver extension, which may still be installing: wait for it.
_GPU_SECTION = """\
for _ in $(seq {minutes}); do
  nvidia-smi >/dev/null 2>&1 && break
  sleep 60
done
if ! nvidia-smi >/dev/null; then
  echo "trackday: no working NVIDIA driver after {minutes} min" >&2
  exit 1
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  repository=https://nvidia.github.io/libnvidia-container
  curl -fsSL "$repository/gpgkey" | gpg --dearmor --yes -o "$keyring"
  curl -fsSL "$repository/stable/deb/nvidia-container-toolkit.list" \\
    | sed "s#deb https://#deb [signed-by=$keyring] https://#" \\
    > /etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt_get update -q
  apt_get install -y -q nvidia-container-toolkit
fi
toolkit=$(nvidia-ctk --version | sed -n 's/.*version \\([0-9][0-9.]*\\).*/\\1/p' | head -n 1)
if [ -z "$toolkit" ] || ! printf '%s\\n' {min_toolkit} "$toolkit" | sort -V -C; then
  echo "trackday: NVIDIA container toolkit ${{toolkit:-(unknown)}} is older than" \\
    "{min_toolkit}; upgrade nvidia-container-toolkit" >&2
  exit 1
fi
nvidia-ctk runtime configure --runtime=docker --set-as-default
# Legacy mode: the runtime honours the GPU Swarm assigned to a task (jit-cdi mode, the
# default from 1.18.0, ignores it before 1.19.0).
nvidia-ctk config --in-place --set nvidia-container-runtime.mode=legacy
# Swarm services ask for GPUs as the generic resource {gpu_kind}; the runtime then exposes
# the GPU Swarm assigned to the task (DOCKER_RESOURCE_{gpu_kind}).
gpus=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | paste -sd, -)
daemon=/etc/docker/daemon.json
jq --arg gpus "$gpus" \\
  '."node-generic-resources" = ($gpus | split(",") | map("{gpu_kind}=" + .))' \\
  "$daemon" > "$daemon.new"
mv "$daemon.new" "$daemon"
runtime_config=/etc/nvidia-container-runtime/config.toml
if grep -q '^#\\?swarm-resource' "$runtime_config"; then
  sed -i 's/^#\\?swarm-resource.*/swarm-resource = "DOCKER_RESOURCE_{gpu_kind}"/' "$runtime_config"
else
  sed -i '1i swarm-resource = "DOCKER_RESOURCE_{gpu_kind}"' "$runtime_config"
fi
systemctl restart docker
# The check: a container given the first GPU the way Swarm gives it sees that GPU only.
first=${{gpus%%,*}}
seen=$(docker run --rm -e DOCKER_RESOURCE_{gpu_kind}="$first" \\
  -e NVIDIA_DRIVER_CAPABILITIES=utility {probe} \\
  nvidia-smi --query-gpu=uuid --format=csv,noheader 2>&1) || true
if [ "$seen" != "$first" ]; then
  echo "trackday: the NVIDIA runtime ignores Swarm's GPU assignment: a container given" \\
    "$first saw: $seen (toolkit $toolkit, $runtime_config)" >&2
  exit 1
fi
"""
