"""A loopback stand-in for a DeepRacer on AWS deployment, written from its published source
(aws-solutions/deepracer-on-aws v1.2.5) and nothing of trackday's.

What it plays, strictly:
- the site's `env.js` (infra/lib/constructs/website/website.ts: `window.EnvironmentConfig =
  {...};`), here as a JavaScript object literal to exercise the parser;
- Cognito's user pool (InitiateAuth, USER_PASSWORD_AUTH) and identity pool (GetId,
  GetCredentialsForIdentity), whose temporary credentials are the transit bucket's keys of a
  real S3 server (`rclone serve s3`) plus a session token;
- the REST API (libs/model smithy: GET /models paginated by `token`, GET/DELETE
  /models/{modelId}, POST /importmodel, GET /models/{modelId}/getasset), every call's SigV4
  signature (service execute-api) recomputed and compared, the session token required;
- the import's checks (libs/lambda api/handlers/importModel.ts, import-workflow/utils/
  ImportHelper.ts): training_params.yaml, model_metadata.json and reward_function.py at the
  root, ip/hyperparameters.json; WORLD_NAME a track id (no _cw/_ccw suffix);
  TRACK_DIRECTION_CLOCKWISE compared with `=== true`; SAC refused with a discrete action
  space or num_episodes_between_training other than 1; model names ^[a-zA-Z0-9-]{1,64}$.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "eu-west-1"
USER_POOL = f"{REGION}_Pool1"
CLIENT_ID = "client1234"
IDENTITY_POOL = f"{REGION}:0000-identity"
PAGE = 2
_NAME = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
_ID = re.compile(r"^[A-Za-z0-9]{15}$")
TRAINING_LOG = b"training log line 1\n"


class Refused(Exception):
    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


@dataclass
class Droa:
    """The deployment's state; tests read and change it."""

    s3: object  # tests.servers.S3Server: the transit bucket's server
    upload_bucket: str
    users: dict[str, str] = field(default_factory=dict)  # username -> password
    models: dict[str, dict] = field(default_factory=dict)
    session_token: str = field(default_factory=lambda: secrets.token_hex(16))
    id_tokens: set[str] = field(default_factory=set)
    logins: int = 0
    asset_polls: int = 0
    url: str = ""

    def new_id(self) -> str:
        return secrets.token_hex(8)[:15].upper()


def _handler(droa: Droa):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            return

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode())

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _route(self, method: str) -> None:
            body = self._body() if method in ("POST", "DELETE") else b""
            try:
                path = urlsplit(self.path).path
                if method == "GET" and path == "/env.js":
                    return self._send(200, self._env_js(), "application/javascript")
                if method == "GET" and path.startswith("/assets/"):
                    return self._send(200, _logs_archive(), "application/gzip")
                if method == "POST" and path == "/":
                    return self._json(200, self._cognito(json.loads(body)))
                if path.startswith("/api/"):
                    self._verify(method, body)
                    return self._json(200, self._api(method, path[len("/api/") :], body))
                raise Refused(404, "NotFound", f"no {path}")
            except Refused as refused:
                self._json(refused.status, {"__type": refused.kind, "message": refused.message})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _env_js(self) -> bytes:
            return (
                f"window.EnvironmentConfig = {{apiEndpointUrl: '{droa.url}/api/', "
                f"userPoolId: '{USER_POOL}', userPoolClientId: '{CLIENT_ID}', "
                f"identityPoolId: '{IDENTITY_POOL}', region: '{REGION}', "
                f"uploadBucketName: '{droa.upload_bucket}', solutionVersion: 'v1.2.5',}};"
            ).encode()

        def _cognito(self, request: dict) -> dict:
            target = self.headers.get("X-Amz-Target", "")
            logins = {f"cognito-idp.{REGION}.amazonaws.com/{USER_POOL}": None}
            if target == "AWSCognitoIdentityProviderService.InitiateAuth":
                parameters = request.get("AuthParameters", {})
                if (
                    request.get("ClientId") != CLIENT_ID
                    or request.get("AuthFlow") != "USER_PASSWORD_AUTH"
                ):
                    raise Refused(400, "InvalidParameterException", "bad client or flow")
                if droa.users.get(parameters.get("USERNAME")) != parameters.get("PASSWORD"):
                    raise Refused(400, "NotAuthorizedException", "Incorrect username or password.")
                droa.logins += 1
                token = secrets.token_hex(16)
                droa.id_tokens.add(token)
                return {
                    "AuthenticationResult": {
                        "IdToken": token,
                        "AccessToken": "a",
                        "ExpiresIn": 3600,
                        "TokenType": "Bearer",
                    }
                }
            if target in (
                "AWSCognitoIdentityService.GetId",
                "AWSCognitoIdentityService.GetCredentialsForIdentity",
            ):
                given = request.get("Logins", {})
                if set(given) != set(logins) or not set(given.values()) <= droa.id_tokens:
                    raise Refused(400, "NotAuthorizedException", "Invalid login token.")
                if target.endswith("GetId"):
                    if request.get("IdentityPoolId") != IDENTITY_POOL:
                        raise Refused(400, "ResourceNotFoundException", "no such pool")
                    return {"IdentityId": f"{REGION}:identity-1"}
                return {
                    "IdentityId": request["IdentityId"],
                    "Credentials": {
                        "AccessKeyId": droa.s3.key,
                        "SecretKey": droa.s3.secret,
                        "SessionToken": droa.session_token,
                        "Expiration": time.time() + 3600,
                    },
                }
            raise Refused(400, "UnknownOperationException", target)

        def _verify(self, method: str, body: bytes) -> None:
            """API Gateway's IAM authorisation: the SigV4 signature must be the one the
            issued credentials make for exactly this request."""
            header = self.headers.get("Authorization", "")
            match = re.fullmatch(
                r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/"
                r"aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]+)",
                header,
            )
            if not match:
                raise Refused(403, "MissingAuthenticationTokenException", "not signed")
            key, _, region, service, signed, signature = match.groups()
            if (key, region, service) != (droa.s3.key, REGION, "execute-api"):
                raise Refused(403, "InvalidSignatureException", "wrong scope")
            if self.headers.get("X-Amz-Security-Token") != droa.session_token:
                raise Refused(403, "UnrecognizedClientException", "bad session token")
            request = AWSRequest(
                method=method,
                url=f"http://{self.headers['Host']}{self.path}",
                data=body,
                headers={h: self.headers[h] for h in signed.split(";")},
            )
            request.context["timestamp"] = self.headers["X-Amz-Date"]
            signer = SigV4Auth(
                Credentials(droa.s3.key, droa.s3.secret, droa.session_token), "execute-api", REGION
            )
            expected = signer.signature(
                signer.string_to_sign(request, signer.canonical_request(request)), request
            )
            if expected != signature:
                raise Refused(403, "InvalidSignatureException", "signature mismatch")

        def _api(self, method: str, path: str, body: bytes) -> dict:
            query = parse_qs(urlsplit(self.path).query)
            parts = path.strip("/").split("/")
            if method == "GET" and parts == ["models"]:
                ordered = sorted(droa.models)
                start = int(query.get("token", ["0"])[0])
                page = ordered[start : start + PAGE]
                more = start + PAGE < len(ordered)
                return {"models": [droa.models[m] for m in page]} | (
                    {"token": str(start + PAGE)} if more else {}
                )
            if method == "POST" and parts == ["importmodel"]:
                return _import(droa, json.loads(body))
            if len(parts) >= 2 and parts[0] == "models":
                if not _ID.match(parts[1]) or parts[1] not in droa.models:
                    raise Refused(404, "NotFoundError", "Model not found.")
                model = droa.models[parts[1]]
                if method == "GET" and len(parts) == 2:
                    if model["status"] == "IMPORTING":
                        model["status"] = "READY"  # the import workflow has run
                    return {"model": model}
                if method == "DELETE" and len(parts) == 2:
                    del droa.models[parts[1]]
                    return {}
                if method == "GET" and parts[2:] == ["getasset"]:
                    droa.asset_polls += 1
                    if droa.asset_polls == 1:
                        return {"status": "QUEUED"}
                    return {"url": f"{droa.url}/assets/{parts[1]}/training-logs.tar.gz"}
            raise Refused(404, "NotFound", path)

    return Handler


def _import(droa: Droa, request: dict) -> dict:
    name = request.get("modelName", "")
    if not _NAME.match(name):
        raise Refused(400, "ValidationException", f"modelName {name!r} fails ^[a-zA-Z0-9-]+$")
    if request.get("s3Bucket") != droa.upload_bucket:
        raise Refused(400, "BadRequestError", "not the upload bucket")
    prefix = request["s3Path"].rstrip("/")
    client = droa.s3.client()

    def read(key: str) -> bytes:
        try:
            return client.get_object(Bucket=droa.upload_bucket, Key=f"{prefix}/{key}")[
                "Body"
            ].read()
        except client.exceptions.NoSuchKey:
            raise Refused(
                400, "BadRequestError", f"{key} not found at s3://{droa.upload_bucket}/{prefix}"
            ) from None

    params = yaml.safe_load(read("training_params.yaml"))
    metadata = json.loads(read("model_metadata.json"))
    read("reward_function.py")
    hyperparameters = json.loads(read("ip/hyperparameters.json"))
    world = params.get("WORLD_NAME", "")
    if re.search(r"_(cw|ccw)$", world):
        raise Refused(400, "BadRequestError", f"Invalid track {world}.")
    clockwise = params.get("TRACK_DIRECTION_CLOCKWISE") is True
    if metadata.get("training_algorithm") == "sac":
        if metadata.get("action_space_type") == "discrete":
            raise Refused(
                400,
                "BadRequestError",
                "Agent algorithm SAC does not work with discrete action space.",
            )
        if hyperparameters.get("num_episodes_between_training") != 1:
            raise Refused(
                400,
                "BadRequestError",
                "Invalid hyperparameter number of episodes "
                "between training for SAC agent algorithm.",
            )
    status, error = "IMPORTING", None
    coach = read("model/.coach_checkpoint").decode().strip()
    number = coach.split("_", 1)[0]
    for key in (f"model/{coach}.index", f"model/model_{number}.pb"):
        try:
            read(key)
        except Refused as refused:
            status, error = "ERROR", refused.message
    model_id = droa.new_id()
    droa.models[model_id] = {
        "modelId": model_id,
        "name": name,
        "description": request.get("modelDescription"),
        "status": status,
        "importErrorMessage": error,
        "createdAt": "2026-11-30T12:00:00Z",
        "trainingConfig": {
            "trackConfig": {
                "trackId": world,
                "trackDirection": "CLOCKWISE" if clockwise else "COUNTER_CLOCKWISE",
            }
        },
    }
    return {"modelId": model_id}


def _logs_archive() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        item = tarfile.TarInfo("logs/training.log")
        item.size = len(TRAINING_LOG)
        tar.addfile(item, io.BytesIO(TRAINING_LOG))
    return out.getvalue()


def serve(droa: Droa) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(droa))
    droa.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
