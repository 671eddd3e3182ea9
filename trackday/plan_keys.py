"""The few inputs of a resource worth a glance, shown by `trackday plan` and its `--against`."""

from __future__ import annotations

import json
from typing import Any

# The properties worth a glance per resource type (dotted paths into the inputs).
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "gcp:storage/bucket:Bucket": (
        "location",
        "uniformBucketLevelAccess",
        "publicAccessPrevention",
        "versioning.enabled",
    ),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ("role", "member"),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": ("role", "member"),
    "gcp:artifactregistry/repository:Repository": ("location", "format", "repositoryId"),
    "gcp:serviceaccount/account:Account": ("accountId",),
    "gcp:projects/service:Service": ("service",),
    "pulumi:providers:gcp": ("project", "region"),
    "docker-build:index:Image": ("tags", "push", "buildArgs"),
    "docker:index/image:Image": ("imageName", "build.args"),
    "docker:index/container:Container": ("ports", "restart"),
    "docker:index/remoteImage:RemoteImage": ("name",),
    "random:index/randomPassword:RandomPassword": ("length",),
}


def key_properties(type_: str, inputs: dict[str, Any]) -> str:
    paths = KEY_INPUTS.get(type_) or tuple(k for k, v in inputs.items() if _scalar(v))[:3]
    shown = []
    for path in paths:
        value: Any = inputs
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            shown.append(f"{path}={_short(value)}")
    return ", ".join(shown)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
