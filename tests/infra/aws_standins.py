"""Strict loopback stand-ins for what an aws node (and the deployer) talk to when the nodes form
the swarm themselves: IMDSv2, Systems Manager Parameter Store (JSON 1.1) and S3 GetObject, each
refusing what AWS refuses, and verifying every request's Signature Version 4 by recomputing it
with botocore's own signer from the request as received.

- IMDSv2 (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-
  service.html): `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` (1 to
  21600, else 400); every GET needs a valid `X-aws-ec2-metadata-token` (else 401);
  `meta-data/iam/security-credentials/` lists the role, `.../<role>` answers `{Code,
  LastUpdated, Type, AccessKeyId, SecretAccessKey, Token, Expiration}`, `meta-data/instance-id`.
- SigV4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-
  request.html): `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/
  aws4_request, SignedHeaders=..., Signature=...`; host and x-amz-date signed, every x-amz-*
  header signed; the scope's region and service those of the endpoint; X-Amz-Date within 5
  minutes; a temporary key (ASIA...) needs its `x-amz-security-token`.
- Parameter Store: `POST /` with `Content-Type: application/x-amz-json-1.1` and `X-Amz-Target:
  AmazonSSM.GetParameter | PutParameter`; request members checked against botocore's SSM model;
  errors HTTP 400 `{"__type", "message"}`: ParameterNotFound, ParameterAlreadyExists,
  AccessDeniedException (IAM: the role's policy statements, as the program writes them).
- S3: `GET /<bucket>/<key>` (path style), `x-amz-content-sha256` required (400 InvalidRequest),
  403 AccessDenied without s3:GetObject on the object's ARN, 404 NoSuchKey.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.session
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCOUNT = "123456789012"
SKEW_LIMIT = datetime.timedelta(minutes=5)
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+),"
    r" ?Signature=(?P<signature>[0-9a-f]{64})"
)
_SSM_MODEL = botocore.session.get_session().get_service_model("ssm")


@dataclass
class Role:
    """An instance role's temporary credentials and its policy statements."""

    name: str
    statements: list[dict[str, Any]]
    access_key: str = field(default_factory=lambda: "ASIA" + secrets.token_hex(8).upper())
    # Secret keys and session tokens hold '/' and '+': the node's curl config must quote them.
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30)[:38] + "/+")
    token: str = field(default_factory=lambda: "IQoJb3JpZ2luX2Vj/+" + secrets.token_hex(40))

    def allows(self, action: str, arn: str) -> bool:
        return any(
            s["Effect"] == "Allow"
            and any(fnmatch.fnmatchcase(action, a) for a in _list(s["Action"]))
            and any(fnmatch.fnmatchcase(arn, r) for r in _list(s["Resource"]))
            for s in self.statements
        )

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key, self.token)


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@dataclass
class Account:
    """One region of one account: roles (by access key), parameters, objects, a request log."""

    region: str
    roles: list[Role]
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    log: list[tuple[str, str, int, str]] = field(default_factory=list)
    clock_offset: datetime.timedelta = datetime.timedelta()

    def parameter_arn(self, name: str) -> str:
        return f"arn:aws:ssm:{self.region}:{ACCOUNT}:parameter{name}"

    def put(self, name: str, value: str, kind: str = "String") -> None:
        """A parameter as the stack creates it."""
        self.parameters[name] = {"Value": value, "Type": kind, "Version": 1}


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def verify(account: Account, handler: BaseHTTPRequestHandler, service: str, body: bytes) -> Role:
    """The role that signed this request, or Refused (as AWS would refuse it)."""
    match = _AUTH.fullmatch(handler.headers.get("Authorization", ""))
    if match is None:
        raise Refused(403, "MissingAuthenticationToken", "Missing Authentication Token")
    role = next((r for r in account.roles if r.access_key == match["key"]), None)
    if role is None:
        raise Refused(403, "InvalidAccessKeyId", "The AWS Access Key Id does not exist")
    if handler.headers.get("x-amz-security-token") != role.token:
        raise Refused(403, "InvalidClientTokenId", "The security token included is invalid")
    if match["region"] != account.region:
        raise Refused(400, "AuthorizationHeaderMalformed", f"expecting '{account.region}'")
    if match["service"] != service:
        raise Refused(400, "IncompleteSignature", f"scoped to the wrong service: '{service}'")
    stamp = handler.headers.get("X-Amz-Date", "")
    signed = match["signed"].split(";")
    unsigned = [
        h for h in handler.headers if h.lower().startswith("x-amz-") and h.lower() not in signed
    ]
    if not {"host", "x-amz-date"} <= set(signed) or unsigned or not stamp.startswith(match["date"]):
        raise Refused(400, "IncompleteSignature", f"unsigned or missing headers {unsigned}")
    when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    now = datetime.datetime.now(datetime.UTC) + account.clock_offset
    if abs(now - when) > SKEW_LIMIT:
        raise Refused(403, "RequestTimeTooSkewed", "Signature expired: the time is too skewed")
    request = AWSRequest(
        method=handler.command,
        url=f"http://{handler.headers['Host']}{handler.path}",
        headers={h: handler.headers[h] for h in signed},
        data=body,
    )
    request.context["timestamp"] = stamp
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
        role.credentials, service, account.region
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not secrets.compare_digest(expected, match["signature"]):
        raise Refused(403, "SignatureDoesNotMatch", "The request signature does not match")
    return role


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class Ssm(_Handler):
    def do_POST(self) -> None:
        account: Account = self.server.account
        body = self._body()
        operation = self.headers.get("X-Amz-Target", "").removeprefix("AmazonSSM.")
        name = ""
        try:
            if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
                raise Refused(400, "SerializationException", "wrong Content-Type")
            role = verify(account, self, "ssm", body)
            if operation not in ("GetParameter", "PutParameter"):
                raise Refused(400, "UnknownOperationException", operation)
            request = json.loads(body)
            name = request.get("Name", "")
            answer = self._operation(account, role, operation, request)
        except Refused as refused:
            account.log.append((operation, name, refused.status, refused.code))
            error = {"__type": refused.code, "message": refused.message}
            self._send(refused.status, json.dumps(error).encode(), "application/x-amz-json-1.1")
            return
        account.log.append((operation, name, 200, ""))
        self._send(200, json.dumps(answer).encode(), "application/x-amz-json-1.1")

    def _operation(self, account: Account, role: Role, operation: str, request: dict) -> dict:
        shape = _SSM_MODEL.operation_model(operation).input_shape
        unknown = set(request) - set(shape.members)
        missing = set(shape.required_members) - set(request)
        if unknown or missing:
            raise Refused(400, "ValidationException", f"unknown {unknown}, missing {missing}")
        name = request["Name"]
        arn = account.parameter_arn(name)
        if not role.allows(f"ssm:{operation}", arn):
            raise Refused(
                400,
                "AccessDeniedException",
                f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role.name}/i-0 is not authorized"
                f" to perform: ssm:{operation} on resource: {arn}",
            )
        stored = account.parameters.get(name)
        if operation == "GetParameter":
            if stored is None:
                raise Refused(400, "ParameterNotFound", f"Parameter {name} not found.")
            value = stored["Value"]
            if stored["Type"] == "SecureString" and not request.get("WithDecryption"):
                value = "AQICAHh" + hashlib.sha256(value.encode()).hexdigest()  # ciphertext
            return {"Parameter": {**stored, "Value": value, "Name": name, "ARN": arn}}
        if stored is not None and not request.get("Overwrite"):
            raise Refused(400, "ParameterAlreadyExists", f"The parameter {name} already exists.")
        version = (stored or {"Version": 0})["Version"] + 1
        kind = request.get("Type") or (stored or {}).get("Type", "String")
        account.parameters[name] = {"Value": request["Value"], "Type": kind, "Version": version}
        return {"Version": version, "Tier": "Standard"}


class _S3(_Handler):
    def do_GET(self) -> None:
        account: Account = self.server.account
        bucket, _, key = self.path.lstrip("/").partition("/")
        try:
            content_hash = self.headers.get("x-amz-content-sha256")
            if content_hash is None:
                raise Refused(400, "InvalidRequest", "Missing required header x-amz-content-sha256")
            if content_hash != hashlib.sha256(b"").hexdigest():
                raise Refused(400, "XAmzContentSHA256Mismatch", "the body's hash differs")
            role = verify(account, self, "s3", b"")
            if not role.allows("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"):
                raise Refused(403, "AccessDenied", "Access Denied")
            data = account.objects.get((bucket, key))
            if data is None:
                raise Refused(404, "NoSuchKey", "The specified key does not exist.")
        except Refused as refused:
            account.log.append(("GetObject", key, refused.status, refused.code))
            xml = f"<Error><Code>{refused.code}</Code><Message>{refused.message}</Message></Error>"
            self._send(refused.status, xml.encode(), "application/xml")
            return
        account.log.append(("GetObject", key, 200, ""))
        self._send(200, data, "application/octet-stream")


class Imds(_Handler):
    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            self._send(404, b"Not Found", "text/plain")
            return
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            self._send(400, b"Bad Request", "text/plain")
            return
        token = secrets.token_urlsafe(32)
        self.server.tokens.add(token)
        self._send(200, token.encode(), "text/plain")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") not in self.server.tokens:
            self._send(401, b"Unauthorized", "text/plain")
            return
        role, instance_id = self.server.node_of(self.client_address[0])
        base = "/latest/meta-data/"
        answers = {
            f"{base}instance-id": instance_id,
            f"{base}iam/security-credentials/": role.name,
            f"{base}iam/security-credentials/{role.name}": json.dumps(
                {
                    "Code": "Success",
                    "LastUpdated": "2026-11-30T00:00:00Z",
                    "Type": "AWS-HMAC",
                    "AccessKeyId": role.access_key,
                    "SecretAccessKey": role.secret_key,
                    "Token": role.token,
                    "Expiration": "2026-12-31T00:00:00Z",
                }
            ),
        }
        if self.path not in answers:
            self._send(404, b"Not Found", "text/plain")
            return
        self._send(200, answers[self.path].encode(), "text/plain")


def serve(
    handler: type[_Handler], address: tuple[str, int] = ("127.0.0.1", 0), **state: Any
) -> ThreadingHTTPServer:
    """`handler` at `address` with `state` (the server's attributes), in a thread."""
    server = ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    for key, value in state.items():
        setattr(server, key, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ssm(account: Account) -> ThreadingHTTPServer:
    return serve(Ssm, account=account)


def s3(account: Account) -> ThreadingHTTPServer:
    return serve(_S3, account=account)


def imds(role: Role, instance_id: str) -> ThreadingHTTPServer:
    """One node's IMDS (tests/nodes/ssm_api.py serves several, by the caller's address)."""
    return serve(Imds, node_of=lambda _address: (role, instance_id), tokens=set())
