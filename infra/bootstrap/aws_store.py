"""AWS's dialect of the node-side store calls (infra/bootstrap/join_store.py): Systems Manager
Parameter Store and S3, called by curl with the instance role's own credentials, signed with
Signature Version 4 (`--aws-sigv4 "aws:amz:<region>:<service>"`, curl >= 7.75).

- Credentials: IMDSv2 (a session token from `PUT /latest/api/token` with
  `X-aws-ec2-metadata-token-ttl-seconds`, then `GET /latest/meta-data/iam/security-credentials/`
  for the role's name and `.../<role>` for `{AccessKeyId, SecretAccessKey, Token}`;
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-security-credentials.html).
  The key pair and session token go to a private curl config file (mktemp: 0600) read with
  `-K`, the token as the `x-amz-security-token` header: nothing secret on a command line.
- Parameter Store, JSON 1.1 (`POST /` to `ssm.<region>.amazonaws.com`, `Content-Type:
  application/x-amz-json-1.1`, `X-Amz-Target: AmazonSSM.<Action>`): `PutParameter` {Name,
  Value, Type, Overwrite}, `GetParameter` {Name, WithDecryption} answering `{"Parameter":
  {"Value", ...}}`; errors are HTTP 400 `{"__type": "ParameterNotFound" | ...,
  "message"}` (https://docs.aws.amazon.com/systems-manager/latest/APIReference/
  API_GetParameter.html, .../API_PutParameter.html, .../CommonErrors.html). SecureString under
  the account's default key aws/ssm needs no KMS grant in the role's policy.
- S3 GetObject (`GET https://<bucket>.s3.<region>.amazonaws.com/<key>`), which needs the
  `x-amz-content-sha256` header (the empty body's hash for a GET;
  https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).

The store's `secret` is the join parameter's ARN (`arn:aws:ssm:<region>:<account>:parameter/
<path>`): the region and the parameter's name come from it.
"""

from __future__ import annotations

import hashlib
import re

from infra.bootstrap.spec import PARAMETER_ARN

AWS_IMDS = "http://169.254.169.254/latest"
IMDS_TOKEN_TTL_SECONDS = 300
SSM_CONTENT_TYPE = "application/x-amz-json-1.1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# curl 7.81 (Ubuntu 22.04) leaves x-amz-security-token and X-Amz-Target out of the signature
# (seen running these scripts with Ubuntu 22.04's curl against tests/infra/aws_standins.py,
# which verifies signatures with botocore); S3 requires every x-amz-* header signed
# (sig-v4-header-based-auth.html above), and the SDKs sign both for SSM. 7.88 (Debian 12) and
# 8.5 (Ubuntu 24.04) sign every header given.
MIN_CURL = "7.88.0"


def region(arn: str) -> str:
    return _match(arn)["region"]


def parameter_name(arn: str) -> str:
    """The parameter's name (`/trackday/<stack>/swarm-join`) from its ARN."""
    return _match(arn)["name"]


def ssm_endpoint(arn: str) -> str:
    return f"https://ssm.{region(arn)}.amazonaws.com/"


def s3_endpoint(arn: str) -> str:
    """The bucket's regional virtual-hosted endpoint, `$bucket` filled in by the script."""
    return f"https://$bucket.s3.{region(arn)}.amazonaws.com"


def _match(arn: str) -> re.Match[str]:
    match = PARAMETER_ARN.fullmatch(arn)
    if match is None:
        raise ValueError(f"{arn!r} is not an SSM parameter ARN")
    return match


def login(arn: str) -> str:
    """`store_login` (role credentials into $store_auth, a curl config) and `ssm ACTION`
    (the request body on stdin, the answer in $store_body, prints the HTTP status)."""
    return f"""\
curl_version=$(curl --version | head -n 1 | cut -d' ' -f2)
if [ "$(printf '%s\\n' {MIN_CURL} "$curl_version" | sort -V | head -n 1)" != {MIN_CURL} ]; then
  echo "trackday: curl $curl_version leaves headers AWS needs signed out of its SigV4" \\
    "signature; this node needs curl >= {MIN_CURL} (use the Ubuntu 24.04 image)" >&2
  exit 1
fi
store_auth=$(mktemp)
store_body=$(mktemp)
store_imds=$(mktemp)
trap 'rm -f "$store_auth" "$store_body" "$store_imds"' EXIT
store_login() {{
  curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: {IMDS_TOKEN_TTL_SECONDS}' \\
    {AWS_IMDS}/api/token | sed 's/^/X-aws-ec2-metadata-token: /' > "$store_imds"
  local role
  role=$(curl -fsS -H @"$store_imds" {AWS_IMDS}/meta-data/iam/security-credentials/ \\
    | head -n 1)
  curl -fsS -H @"$store_imds" "{AWS_IMDS}/meta-data/iam/security-credentials/$role" \\
    | jq -r '"user = " + ((.AccessKeyId + ":" + .SecretAccessKey) | @json),
      "header = " + ("x-amz-security-token: " + .Token | @json)' > "$store_auth"
}}
ssm() {{
  curl -sS -o "$store_body" -w '%{{http_code}}' -K "$store_auth" \\
    --aws-sigv4 'aws:amz:{region(arn)}:ssm' -H 'Content-Type: {SSM_CONTENT_TYPE}' \\
    -H "X-Amz-Target: AmazonSSM.$1" --data-binary @- {ssm_endpoint(arn)} || echo 000
}}
ssm_error() {{
  jq -r '((.__type // "") | split("#") | last) + ": " + (.message // .Message // "")' \\
    "$store_body" 2>/dev/null || true
}}
ssm_put() {{
  local status
  status=$(jq -c --arg name "$1" --arg type "$2" \\
    '{{Name: $name, Value: tostring, Type: $type, Overwrite: true, Tier: "Standard"}}' \\
    | ssm PutParameter)
  if [ "$status" != 200 ]; then
    echo "trackday: writing $1 failed (HTTP $status): $(ssm_error)" >&2
    exit 1
  fi
}}
"""


def put(name: str, kind: str = "String") -> str:
    """Writes the JSON on stdin (as a string) to parameter `name` (after `store_login`)."""
    return f"ssm_put '{name}' {kind}\n"


def sibling(arn: str, leaf: str) -> str:
    """A parameter next to the join parameter: `/trackday/<stack>/<leaf>`."""
    return f"{parameter_name(arn).rsplit('/', 1)[0]}/{leaf}"


STORED = 'jq -r .Parameter.Value "$store_body"'


def wait_for_token(arn: str, minutes: int, poll_seconds: int) -> str:
    """A worker's wait for the manager's token: ParameterNotFound, or a value without a token
    (the placeholder the stack created the parameter with), mean "not yet"; any other answer
    fails loudly (systemd retries the bootstrap)."""
    name = parameter_name(arn)
    return f"""\
  deadline=$((SECONDS + {minutes * 60}))
  while :; do
    store_login
    status=$(jq -n '{{Name: "{name}", WithDecryption: true}}' | ssm GetParameter)
    if [ "$status" = 200 ]; then
      stored | jq -e '.token? // empty' > /dev/null 2>&1 && break
    elif [ "$(ssm_error | cut -d: -f1)" != ParameterNotFound ]; then
      echo "trackday: reading the join token from {name} failed (HTTP $status): $(ssm_error)" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "trackday: the manager wrote no join token to {name} in {minutes} min" >&2
      exit 1
    fi
    sleep {poll_seconds}
  done
"""


def instance_id() -> str:
    """The instance's id (a replaced manager's is new), with the IMDSv2 token of store_login."""
    return f'instance_id=$(curl -fsS -H @"$store_imds" {AWS_IMDS}/meta-data/instance-id)\n'


def s3_get(arn: str, target: str) -> str:
    """Downloads s3://$bucket/$key to `target` with the node's role."""
    return f"""\
curl -fsS -K "$store_auth" --aws-sigv4 'aws:amz:{region(arn)}:s3' \\
  -H 'x-amz-content-sha256: {EMPTY_SHA256}' -o {target} \\
  "{s3_endpoint(arn)}/$key"
"""
