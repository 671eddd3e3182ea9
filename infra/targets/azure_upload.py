"""Uploads the trainer's source archive to the stack's container with the deployer's own
sign-in: `azure-native:storage:Blob` would use the account's shared key, which the account
refuses (infra/targets/azure_storage.py), so this uses azure-storage-blob with a token
(DefaultAzureCredential; the deployer holds Storage Blob Data Contributor on the account).

The blob's name holds the archive's digest (infra/bootstrap/trainer_build.py): a changed
training/ is a new blob, so a create never overwrites another deploy's archive; delete
removes it with the stack.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider


def _client(props: dict[str, Any]) -> Any:
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobClient

    return BlobClient(
        f"https://{props['account']}.blob.core.windows.net",
        props["container"],
        props["name"],
        credential=DefaultAzureCredential(),
    )


class BlobUploadProvider(ResourceProvider):
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Another archive is another blob: replaced (uploaded, then the old one deleted),
        never updated in place (the default update would do nothing)."""
        changed = sorted(k for k in news if k != "__provider" and olds.get(k) != news[k])
        return DiffResult(changes=bool(changed), replaces=changed)

    def create(self, props: dict[str, Any]) -> CreateResult:
        _client(props).upload_blob(Path(props["path"]).read_bytes(), overwrite=True)
        return CreateResult(
            id_=f"{props['account']}/{props['container']}/{props['name']}", outs=props
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            _client(props).delete_blob()


class BlobUpload(pulumi.dynamic.Resource):
    """The file `path` as blob `name` of `container` in storage account `account`."""

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(BlobUploadProvider(), name, props, opts)
