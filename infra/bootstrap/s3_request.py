"""The spot handler's signed S3 request (infra/bootstrap/spot.py), a shell function of its own:
where its keys go matters (tests/infra/test_spot_s3_request.py)."""

# s3 METHOD URL [BODY]: a SigV4-signed request with keys $ak/$sk (and $session) in $region.
# The keys reach curl as a config on a pipe (`-K`, printf is a builtin): never in an argv,
# which every process on the node can read (/proc/PID/cmdline).
S3_FUNCTION = """\
s3() {
  local hash
  hash=$(printf '%s' "${3:-}" | sha256sum | cut -d' ' -f1)
  curl -fsS -m 30 -X "$1" --aws-sigv4 "aws:amz:$region:s3" \\
    -K <(printf 'user = "%s:%s"\\n' "$ak" "$sk"
      [ -z "$session" ] || printf 'header = "x-amz-security-token: %s"\\n' "$session") \\
    -H "x-amz-content-sha256: $hash" ${3:+--data-binary "$3"} "$2"
}
"""
