"""DeepRacer on AWS (DRoA), the solution that replaced the DeepRacer console (closed in
December 2025), as DRfC 6.x's `droa-*` commands talk to it (scripts/droa/ in DRfC).

A DRoA deployment publishes its settings in `<site>/env.js` (`window.EnvironmentConfig`:
region, Cognito user pool and client, identity pool, API endpoint, upload bucket). The user
signs in to the user pool (USER_PASSWORD_AUTH), the identity pool turns the ID token into
temporary AWS credentials, and those sign (SigV4, service `execute-api`) every API call and
write the transit upload bucket. The credentials, never the password, are cached under the
user's cache folder in a file only they can read (0600), until a minute before they expire.
Endpoints follow botocore's own settings (e.g. AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as SigningCredentials
from botocore.exceptions import BotoCoreError, ClientError

from trackday.errors import TrackdayError

TIMEOUT_S = 30
POLL_S = 5.0  # between asks for an asset DRoA is still packaging (DRfC's interval)
CACHE_MARGIN = timedelta(seconds=60)
PASSWORD_ENV = "TRACKDAY_DROA_PASSWORD"
_ENV_JS = re.compile(r"window\.EnvironmentConfig\s*=\s*(\{.*\})\s*;?", re.DOTALL)
# Only models in these states may be deleted (DRfC's delete_model.py).
DELETABLE = ("READY", "ERROR")


class DroaError(TrackdayError):
    """DRoA cannot be reached, refused a request, or answered what trackday cannot read."""


@dataclass(frozen=True)
class DroaConfig:
    site_url: str
    region: str
    user_pool_id: str
    client_id: str
    identity_pool_id: str
    api_endpoint: str
    upload_bucket: str


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str
    expiry: datetime

    @property
    def storage_env(self) -> dict[str, str]:
        """training.storage's environment for the upload bucket, with these credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as error:
        raise DroaError(f"cannot read {url}: {error}") from None


def _js_object(text: str) -> dict:
    """`window.EnvironmentConfig = {...}` as JSON, or as a JavaScript object literal
    (unquoted keys, single quotes, trailing commas)."""
    with contextlib.suppress(json.JSONDecodeError):
        return json.loads(text)
    strict = re.sub(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:", r'\1"\2":', text)
    strict = re.sub(r"'([^'\\]*)'", r'"\1"', strict)
    strict = re.sub(r",(\s*[}\]])", r"\1", strict)
    return json.loads(strict)


def fetch_config(site_url: str) -> DroaConfig:
    """The deployment's settings from `<site>/env.js`."""
    url = site_url.rstrip("/") + "/env.js"
    match = _ENV_JS.search(_get(url).decode(errors="replace"))
    if not match:
        raise DroaError(
            f"{url} holds no window.EnvironmentConfig: is {site_url} the address "
            "of a DeepRacer on AWS site?"
        )
    try:
        env = _js_object(match.group(1))
    except json.JSONDecodeError as error:
        raise DroaError(f"{url}: EnvironmentConfig is not readable ({error})") from None
    keys = {
        "region": "region",
        "user_pool_id": "userPoolId",
        "client_id": "userPoolClientId",
        "identity_pool_id": "identityPoolId",
        "api_endpoint": "apiEndpointUrl",
        "upload_bucket": "uploadBucketName",
    }
    missing = [js for js in keys.values() if not isinstance(env.get(js), str) or not env[js]]
    if missing:
        raise DroaError(f"{url} lacks {', '.join(missing)}: not a DeepRacer on AWS site?")
    return DroaConfig(site_url.rstrip("/"), **{k: env[js] for k, js in keys.items()})


def _client(service: str, region: str):
    return botocore.session.get_session().create_client(service, region_name=region)


def login(config: DroaConfig, username: str, password: str) -> Credentials:
    """User pool sign-in, then the identity pool's temporary credentials."""
    try:
        answer = _client("cognito-idp", config.region).initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH",
            ClientId=config.client_id,
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
        token = (answer.get("AuthenticationResult") or {}).get("IdToken")
        if not token:
            raise DroaError(
                f"signing in as {username} asked for a further step "
                f"({answer.get('ChallengeName', 'unknown')}): finish it on the "
                "DeepRacer on AWS site once, then try again"
            )
        identity = _client("cognito-identity", config.region)
        logins = {f"cognito-idp.{config.region}.amazonaws.com/{config.user_pool_id}": token}
        identity_id = identity.get_id(IdentityPoolId=config.identity_pool_id, Logins=logins)[
            "IdentityId"
        ]
        found = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)[
            "Credentials"
        ]
    except ClientError as error:
        raise DroaError(
            f"DeepRacer on AWS refused the sign-in as {username}: "
            f"{error.response['Error'].get('Message', error)}"
        ) from None
    except BotoCoreError as error:
        raise DroaError(f"cannot sign in to DeepRacer on AWS: {error}") from None
    expiry = found["Expiration"]
    return Credentials(
        found["AccessKeyId"],
        found["SecretKey"],
        found["SessionToken"],
        expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC),
    )


def cache_file(config: DroaConfig, username: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(f"{config.identity_pool_id}:{username}".encode()).hexdigest()[:16]
    return base / "trackday" / "droa" / f"{digest}.json"


def cached(path: Path) -> Credentials | None:
    """Cached credentials with a minute left, from a file only this user can read."""
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None  # someone else could have written or read it: sign in again
        data = json.loads(path.read_text())
        credentials = Credentials(
            data["access_key"],
            data["secret_key"],
            data["session_token"],
            datetime.fromisoformat(data["expiry"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return credentials if credentials.expiry > datetime.now(UTC) + CACHE_MARGIN else None


def store(path: Path, credentials: Credentials) -> None:
    """Write the cache file 0600 from its creation (never readable by others, even briefly)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    data = asdict(credentials) | {"expiry": credentials.expiry.isoformat()}
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


class DroaApi:
    """The deployment's REST API, each call signed with the user's temporary credentials."""

    def __init__(self, config: DroaConfig, credentials: Credentials):
        self.config, self.credentials = config, credentials

    def call(
        self, method: str, path: str, query: dict | None = None, body: dict | None = None
    ) -> dict:
        url = f"{self.config.api_endpoint.rstrip('/')}/{path.lstrip('/')}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else b""
        request = AWSRequest(
            method=method,
            url=url,
            data=data,
            headers={"Content-Type": "application/json", "Origin": self.config.site_url},
        )
        SigV4Auth(
            SigningCredentials(
                self.credentials.access_key,
                self.credentials.secret_key,
                self.credentials.session_token,
            ),
            "execute-api",
            self.config.region,
        ).add_auth(request)
        prepared = urllib.request.Request(
            url, data=data or None, method=method, headers=dict(request.headers)
        )
        try:
            with urllib.request.urlopen(prepared, timeout=TIMEOUT_S) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise DroaError(
                f"DeepRacer on AWS answered {error.code} to {method} /{path}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise DroaError(f"cannot reach {url}: {error}") from None
        try:
            return json.loads(text) if text else {}
        except json.JSONDecodeError:
            raise DroaError(f"{method} /{path} answered something not JSON") from None

    def list_models(self) -> list[dict]:
        models, token = [], None
        while True:
            page = self.call("GET", "models", {"token": token} if token else None)
            models += page.get("models", [])
            token = page.get("token")
            if not token:
                return models

    def get_model(self, model_id: str) -> dict:
        found = self.call("GET", f"models/{_model_id(model_id)}")
        return found.get("model", found)

    def delete_model(self, model_id: str) -> dict:
        """Delete a model DRoA may delete (READY or ERROR); returns what it was."""
        model = self.get_model(model_id)
        status = model.get("status", "UNKNOWN")
        if status not in DELETABLE:
            raise DroaError(
                f"model {model.get('name', model_id)} is {status}: only "
                f"{' or '.join(DELETABLE)} models can be deleted"
            )
        self.call("DELETE", f"models/{_model_id(model_id)}")
        return model

    def import_model(self, s3_path: str, name: str, description: str | None = None) -> str:
        body = {"s3Bucket": self.config.upload_bucket, "s3Path": s3_path, "modelName": name}
        if description:
            body["modelDescription"] = description
        model_id = self.call("POST", "importmodel", body=body).get("modelId")
        if not model_id:
            raise DroaError("the import was accepted without a model id")
        return model_id

    def asset_url(
        self,
        model_id: str,
        asset_type: str,
        evaluation_id: str | None = None,
        timeout_s: float = 300,
    ) -> str:
        """The download address of an asset, waiting while DRoA packages it (QUEUED)."""
        query = {"assetType": asset_type} | (
            {"evaluationId": evaluation_id} if evaluation_id else {}
        )
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.call("GET", f"models/{_model_id(model_id)}/getasset", query)
            if answer.get("url"):
                return answer["url"]
            if answer.get("status") != "QUEUED":
                raise DroaError(
                    f"{asset_type} of {model_id} is not available "
                    f"(status {answer.get('status', 'unknown')})"
                )
            if time.monotonic() > deadline:
                raise DroaError(
                    f"{asset_type} of {model_id} still packaging after "
                    f"{timeout_s:.0f} s: try again later"
                )
            time.sleep(POLL_S)


def _model_id(model_id: str) -> str:
    """Model ids go into URL paths: DRoA's are 15 letters and digits (its ResourceIdentifier)."""
    if not re.fullmatch(r"[A-Za-z0-9]{15}", model_id):
        raise DroaError(f"{model_id!r} is not a model id (see `trackday dr droa list-models`)")
    return model_id


def model_name(name: str) -> str:
    """A name DRoA accepts (its ModelName: letters, digits and '-', 1..64): a model prefix
    with other characters gets '-' for them."""
    cleaned = re.sub(r"[^A-Za-z0-9-]", "-", name)[:64]
    if not cleaned.strip("-"):
        raise DroaError(
            f"{name!r} cannot name a DeepRacer on AWS model: pass --name with "
            "letters, digits and '-'"
        )
    return cleaned


def download(url: str, destination: Path) -> Path:
    """Save an asset from its (pre-signed) address."""
    destination.write_bytes(_get(url))
    return destination
