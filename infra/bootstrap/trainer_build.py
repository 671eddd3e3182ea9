"""The DonkeyCar trainer image, built by the manager itself from a source archive in the stack's
bucket: the deployer uploads the archive and asks, and needs no route to the manager.

The program packs training/ into a reproducible tar.gz (`source_archive`), uploads it under a
content-addressed name and sets the manager's build request (`build_request`: bucket, object,
digest, tag, build arguments; no secret) in the VM's custom metadata, which Pulumi changes in
place. A timer on the manager (`build_script`) reads the request from the metadata server,
and when its digest is not the one it built last: downloads the archive with the manager's
own identity, checks its SHA-256, builds, and publishes the digest (guest attribute
`trackday/trainer`), which `pulumi up` waits for. While it builds, the idle check counts the
node as busy (BUILDING_FILE).

GCP: the object through the Cloud Storage JSON API (`GET /storage/v1/b/{bucket}/o/{object}
?alt=media`, object name URL-encoded;
https://cloud.google.com/storage/docs/json_api/v1/objects/get), the request from
`instance/attributes/<key>` of the metadata server (404 when the VM has none).

Azure: the request is the manager VM's `userData` (base64, changed in place; IMDS
`instance/compute/userData?api-version=2021-01-01&format=text`, empty when none), with the
data identity (Storage Blob Data Contributor) that reads the blob (`GET
https://<account>.blob.core.windows.net/<container>/<blob>`, bearer token for
`https://storage.azure.com/`, `x-ms-version`; https://learn.microsoft.com/rest/api/
storageservices/get-blob); "built" is `{"digest", "vmId"}` in the vault's
`trackday-trainer` secret, which `pulumi up` waits for (infra/targets/azure_ready.py). The
archive is uploaded with the deployer's token (infra/targets/azure_upload.py).

AWS: the request is the String parameter `trainer-request` next to the join parameter (the
program sets it, in place; not the instance's user data, whose change replaces the instance,
nor a tag, 256 characters at most), read with the manager's role like the object (S3
GetObject, SigV4; infra/bootstrap/aws_store.py); "built" is `{"digest", "vmId"}` in the
parameter `trackday-trainer`, which `pulumi up` waits for (infra/targets/aws_ready.py). The
archive is an `aws.s3.BucketObjectv2` the program uploads.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import infra.bootstrap.aws_store as aws_store
from infra.bootstrap.join_store import (
    AZURE_IMDS,
    GCP_METADATA,
    IMDS_INSTANCE_API_VERSION,
    VAULT_API,
    azure_token_url,
    store_auth,
)
from infra.bootstrap.spec import (
    BUILDING_FILE,
    READY_FILE,
    JoinStore,
    check_image_reference,
    shell_script,
)

BUILD_SCRIPT = "/usr/local/sbin/trackday-trainer-build"
BUILT_FILE = "/var/lib/trackday/trainer.built"
REQUEST_KEY = "trackday-trainer"  # the manager's custom metadata key
BUILT_ATTRIBUTE = "trackday/trainer"
GCS_API = "https://storage.googleapis.com/storage/v1"
DOCKERFILE = "training/donkeycar/Dockerfile"
OBJECT_PREFIX = "build/trainer-"
# Azure: the request in the VM's userData, the blob through the account's endpoint, "built"
# in the vault.
USER_DATA_API = "2021-01-01"
STORAGE_RESOURCE = "https://storage.azure.com/"
BLOB_API = "2021-08-06"
BLOB_URL = "https://$account.blob.core.windows.net"
BUILT_SECRET = "trackday-trainer"
REQUEST_PARAMETER = "trainer-request"  # aws


@dataclass(frozen=True)
class TrainerBuild:
    """What the manager builds: the archive's digest (its object's name), the tag and the
    build arguments."""

    digest: str
    tag: str
    build_args: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        check_image_reference("trainer image tag", self.tag)

    @property
    def object_name(self) -> str:
        return f"{OBJECT_PREFIX}{self.digest}.tar.gz"

    def request(self, bucket: str, identity: str | None = None) -> str:
        """The manager's build request (gcp: custom metadata; azure: the VM's userData, with
        `bucket` as <account>/<container> and the `identity` that may read it): plain JSON,
        no secret."""
        return json.dumps(
            {
                "bucket": bucket,
                "object": self.object_name,
                "digest": self.digest,
                "tag": self.tag,
                "buildArgs": dict(self.build_args),
                **({"identity": identity} if identity else {}),
            },
            sort_keys=True,
        )


def source_archive(repo_root: Path) -> bytes:
    """training/ as a tar.gz whose bytes depend only on the files' names and contents
    (sorted, no times or owners), so that its digest names it."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        training = repo_root / "training"
        for path in sorted(p for p in training.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts:
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(str(path.relative_to(repo_root)))
            info.size, info.mode = len(data), 0o755 if path.stat().st_mode & 0o100 else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_script(store: JoinStore | None = None, identity: str | None = None) -> str:
    """Run by a timer on the manager: builds what the deployer asks for, once per digest.

    gcp (`store` None or gcp) as the module says; azure: the request is the manager VM's
    `userData` (IMDS `instance/compute/userData`, base64; empty: none), the archive a blob
    read with the request's `identity` (the data identity: Blob Data Contributor), and
    "built" the vault's `trackday-trainer` secret, written with the node's own `identity`;
    aws: the request parameter, the object and "built" with the instance role (`_aws`)."""
    cloud = "gcp" if store is None else store.cloud
    if store is not None and cloud == "azure":
        fetch, download, built = _AZURE_REQUEST, _AZURE_DOWNLOAD, _azure_built(store)
    elif store is not None and cloud == "aws":
        fetch, download, built = _aws(store.secret)
    else:
        fetch, download, built = _GCP_REQUEST, _GCP_DOWNLOAD, _GCP_BUILT
    return shell_script(
        "Builds the trackday DonkeyCar trainer image the deployer asked for (metadata).",
        f"""\
[ -f {READY_FILE} ] || exit 0
mkdir -p /run/trackday
{store_auth(store, identity)}{fetch}request=$(cat /run/trackday/trainer-request)
wanted=$(jq -r .digest <<< "$request")
[ "$(cat {BUILT_FILE} 2>/dev/null || true)" = "$wanted" ] && exit 0
work=$(mktemp -d)
touch {BUILDING_FILE}
trap 'rm -rf "$work" "$store_auth" "$store_body"{' "$store_imds"' if cloud == "aws" else ""} \
  {BUILDING_FILE}' EXIT
{download}echo "$wanted  $work/context.tar.gz" | sha256sum --check --quiet
mkdir "$work/context"
tar -xzf "$work/context.tar.gz" -C "$work/context" --no-same-owner --no-same-permissions
mapfile -t build_args < <(jq -r '.buildArgs | to_entries[] | "--build-arg=\\(.key)=\\(.value)"' \\
  <<< "$request")
docker build --network host --file "$work/context/{DOCKERFILE}" \\
  --tag "$(jq -r .tag <<< "$request")" "${{build_args[@]}}" "$work/context"
mkdir -p "$(dirname {BUILT_FILE})"
echo "$wanted" > {BUILT_FILE}
{built}""",
    )


_GCP_REQUEST = f"""\
status=$(curl -sS -o /run/trackday/trainer-request -w '%{{http_code}}' \\
  -H 'Metadata-Flavor: Google' {GCP_METADATA}/instance/attributes/{REQUEST_KEY}) || exit 1
[ "$status" = 404 ] && exit 0
[ "$status" = 200 ] || {{ echo "trackday: metadata answered HTTP $status" >&2; exit 1; }}
"""
_GCP_DOWNLOAD = f"""\
store_login
object=$(jq -r '.object | @uri' <<< "$request")
bucket=$(jq -r .bucket <<< "$request")
curl -fsS -H @"$store_auth" -o "$work/context.tar.gz" \\
  "{GCS_API}/b/$bucket/o/$object?alt=media"
"""
_GCP_BUILT = f"""\
curl -fsS -X PUT -H 'Metadata-Flavor: Google' --data-binary "$wanted" \\
  {GCP_METADATA}/instance/guest-attributes/{BUILT_ATTRIBUTE}
"""
_AZURE_REQUEST = f"""\
curl -fsS -H 'Metadata: true' \\
  '{AZURE_IMDS}/instance/compute/userData?api-version={USER_DATA_API}&format=text' \\
  | base64 -d > /run/trackday/trainer-request
[ -s /run/trackday/trainer-request ] || exit 0
"""
# The data identity's token for Blob storage; `x-ms-version` is required with a bearer token
# (https://learn.microsoft.com/rest/api/storageservices/get-blob).
_AZURE_DOWNLOAD = f"""\
identity=$(jq -r .identity <<< "$request")
curl -fsS -H 'Metadata: true' \\
  "{azure_token_url("$identity", STORAGE_RESOURCE)}" \\
  | jq -r '"Authorization: Bearer " + .access_token' > "$work/blob-auth"
account=$(jq -r '.bucket | split("/")[0]' <<< "$request")
container=$(jq -r '.bucket | split("/")[1]' <<< "$request")
curl -fsS -H @"$work/blob-auth" -H 'x-ms-version: {BLOB_API}' -o "$work/context.tar.gz" \\
  "{BLOB_URL}/$container/$(jq -r .object <<< "$request")"
"""


def _azure_built(store: JoinStore) -> str:
    return f"""\
store_login
vm_id=$(curl -fsS -H 'Metadata: true' \\
  '{AZURE_IMDS}/instance/compute/vmId?api-version={IMDS_INSTANCE_API_VERSION}&format=text')
jq -n --arg digest "$wanted" --arg vm "$vm_id" \\
  '{{digest: $digest, vmId: $vm}} | tostring | {{value: .}}' \\
  | curl -fsS -X PUT -H @"$store_auth" -H 'Content-Type: application/json' --data-binary @- \\
    {store.secret.rsplit("/", 1)[0]}/{BUILT_SECRET}?api-version={VAULT_API} > /dev/null
"""


def _aws(arn: str) -> tuple[str, str, str]:
    """The request parameter (none yet: nothing to build), the object and "built", with the
    manager's role."""
    request = aws_store.sibling(arn, REQUEST_PARAMETER)
    fetch = f"""\
store_login
status=$(jq -n '{{Name: "{request}"}}' | ssm GetParameter)
if [ "$status" != 200 ]; then
  [ "$(ssm_error | cut -d: -f1)" = ParameterNotFound ] && exit 0
  echo "trackday: reading {request} failed (HTTP $status): $(ssm_error)" >&2
  exit 1
fi
jq -r .Parameter.Value "$store_body" > /run/trackday/trainer-request
"""
    download = f"""\
bucket=$(jq -r .bucket <<< "$request")
key=$(jq -r .object <<< "$request")
{aws_store.s3_get(arn, '"$work/context.tar.gz"')}"""
    built = f"""\
{aws_store.instance_id()}jq -n --arg digest "$wanted" --arg vm "$instance_id" \\
  '{{digest: $digest, vmId: $vm}}' \\
  | {aws_store.put(aws_store.sibling(arn, BUILT_SECRET))}"""
    return fetch, download, built
