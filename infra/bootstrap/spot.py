"""Spot capacity: a node watches its cloud's interruption notice and, on notice, stops its
runs so that they can be resumed (issue 17).

The watcher asks the cloud's metadata service with the node's own identity, no keys:

- AWS (instance metadata, IMDSv2 as the stack requires it): a session token from
  `PUT /latest/api/token`, then `GET /latest/meta-data/spot/instance-action`, 404 until EC2
  decides to stop the instance and then `{"action": "stop", "time": ...}`, two minutes
  ahead; AWS advises checking every 5 s (EC2 user guide, "Spot Instance interruption
  notices").
- Google Cloud: `GET /computeMetadata/v1/instance/preempted` with `Metadata-Flavor: Google`,
  `FALSE` until the VM is preempted, then `TRUE`, about 30 s ahead; `wait_for_change=true`
  with `last_etag` hangs until the value changes (Compute Engine docs, "Create and use Spot
  VMs: detect preemption" and "Wait for change").
- Azure (Scheduled Events): `GET /metadata/scheduledevents?api-version=2020-07-01` with
  `Metadata: true`; a `Preempt` event naming this VM in `Resources` comes at least 30 s
  ahead, and the VM acknowledges it, once handled, with a `StartRequests` POST of its
  `EventId` (Azure docs, "Scheduled Events for Linux VMs").

On notice the handler, a script on the node (nodes have Docker, curl and jq, no trackday),
writes an interruption record for each DeepRacer training run whose trainer runs on this
manager into the run's model prefix (`interruption.json`: run id, model prefix, the last
checkpoint the trainer uploaded and its iteration), reaching the bucket as the run does (its
endpoint; its credentials file read from the trainer's own container, else the node's AWS
role from the metadata service); where the run has a checkpoint it prepares the resume under
the next prefix (its files, the record's `prepared`, the service specs with the new prefix and
`PRETRAINED*`, the replicas to give back in a label); then it scales the run's services to
zero and stops the SageMaker containers the trainer started. At the next boot the resume unit
gives the prepared runs their replicas back: they train on by themselves. DonkeyCar
containers are stopped with SIGTERM: the trainer then keeps its checkpoint and marks its run
INTERRUPTED (never COMPLETE, never latest.json); on a manager their job service is kept at
zero replicas with the same label, so the next boot runs the job again, from the checkpoint.
A notice before Docker runs, twice, or with no run is recorded and logged, nothing else.
docs/architecture.md says why the handler is a node script.
"""

from __future__ import annotations

from contract.swarm import (
    JOB_LABEL,
    MODEL_PREFIX_LABEL,
    RESUME_LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    SIMULATION_ROLE,
    TRAINER_ROLE,
    WORKLOAD_LABEL,
)
from infra.bootstrap.s3_request import S3_FUNCTION
from infra.bootstrap.spec import READY_FILE, SYSTEMD_DIR, NodeBootstrap, shell_script
from training.deepracer.layout import INTERRUPTION_RECORD, RESUMED_FROM
from training.deepracer.services import WORKLOAD as DEEPRACER_WORKLOAD

WATCH_SCRIPT = "/usr/local/sbin/trackday-spot-watch"
NOTICE_SCRIPT = "/usr/local/sbin/trackday-spot-notice"
WATCH_UNIT = "trackday-spot-watch.service"
RESUME_SCRIPT = "/usr/local/sbin/trackday-spot-resume"
RESUME_UNIT = "trackday-spot-resume.service"
# Every notice handled, one line each (kept across the stop: the next boot's resume reads it).
NOTICES_FILE = "/var/lib/trackday/spot-notices"
DONKEYCAR_WORKLOAD = "donkeycar-train"  # trackday/swarm_jobs.py SwarmJob.workload
DONKEYCAR_STOP_SECONDS = 60  # within AWS's two minutes, enough for the trainer's marker
IMDS = "http://169.254.169.254"
AZURE_EVENTS = f"{IMDS}/metadata/scheduledevents?api-version=2020-07-01"
GCP_PREEMPTED = "http://metadata.google.internal/computeMetadata/v1/instance/preempted"
_POLL_SECONDS = {"aws": 5, "azure": 5, "gcp": 1}  # gcp: the wait_for_change call paces

_AWS_TOKEN = f"""\
aws_token() {{
  curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' {IMDS}/latest/api/token
}}
"""

_NOTICE = {
    "aws": _AWS_TOKEN
    + f"""\
work=$(mktemp -d)
token=
# Prints the notice's JSON; fails when there is none (404) or the service is unreachable.
notice() {{
  local code
  [ -n "$token" ] || token=$(aws_token) || return 1
  code=$(curl -sS -m 5 -o "$work/action" -w '%{{http_code}}' \\
    -H "X-aws-ec2-metadata-token: $token" {IMDS}/latest/meta-data/spot/instance-action) || return 1
  [ "$code" = 401 ] && token=  # the token expired: a new one next time
  [ "$code" = 200 ] && cat "$work/action"
}}
acknowledge() {{ :; }}
""",
    "gcp": f"""\
work=$(mktemp -d)
etag=NONE
# Waits (60 s at most) for `preempted` to change; prints "preempted" once it is TRUE.
notice() {{
  local value
  value=$(curl -fsS -m 90 -D "$work/headers" -H 'Metadata-Flavor: Google' \\
    "{GCP_PREEMPTED}?wait_for_change=true&timeout_sec=60&last_etag=$etag") || return 1
  etag=$(awk 'tolower($1) == "etag:" {{print $2}}' "$work/headers" | tr -d '\\r')
  [ "$value" = TRUE ] && echo preempted
}}
acknowledge() {{ :; }}
""",
    "azure": f"""\
vm=
# Prints the EventId of a Preempt event naming this VM.
notice() {{
  local events
  [ -n "$vm" ] || vm=$(curl -fsS -m 5 -H Metadata:true \\
    "{IMDS}/metadata/instance/compute/name?api-version=2021-02-01&format=text") || return 1
  # The first request turns Scheduled Events on and may take two minutes.
  events=$(curl -fsS -m 130 -H Metadata:true '{AZURE_EVENTS}') || return 1
  jq -er --arg vm "$vm" 'first(.Events[] | select(.EventType == "Preempt"
    and any(.Resources[]; . == $vm)) | .EventId)' <<<"$events"
}}
# Handled: Azure may go ahead now rather than at NotBefore.
acknowledge() {{
  curl -fsS -m 10 -X POST -H Metadata:true -H 'Content-Type: application/json' \\
    -d "{{\\"StartRequests\\": [{{\\"EventId\\": \\"$1\\"}}]}}" '{AZURE_EVENTS}' >/dev/null
}}
""",
}


def watch_script(node: NodeBootstrap) -> str:
    """The watcher: asks the metadata service until a notice comes, handles each one once."""
    return shell_script(
        f"Waits for this {node.cloud} spot node's interruption notice; runs the handler once"
        " per notice.",
        f"""\
state=$(mktemp)
{_NOTICE[node.cloud]}seen=
while :; do
  # Not `found=$(notice)`: in a subshell, what notice() keeps (token, etag) would be lost.
  if notice >"$state" && found=$(cat "$state") && [ -n "$found" ] && [ "$found" != "$seen" ]; then
    seen=$found
    {NOTICE_SCRIPT} "$found" || logger -t trackday "spot notice handler failed" || true
    acknowledge "$found" || logger -t trackday "could not acknowledge $found" || true
  fi
  sleep {_POLL_SECONDS[node.cloud]}
done
""",
    )


def notice_script(node: NodeBootstrap) -> str:
    """The handler: records the notice, stops this node's runs so they can be resumed."""
    trainer = (
        f"--filter label={WORKLOAD_LABEL}={DEEPRACER_WORKLOAD} --filter label={JOB_LABEL}=training"
        f" --filter label={ROLE_LABEL}={TRAINER_ROLE}"
    )
    return shell_script(
        f"Handles a spot interruption notice on this {node.cloud} node (infra/bootstrap/spot.py).",
        f"""\
mkdir -p "$(dirname {NOTICES_FILE})"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $1" >> {NOTICES_FILE}
logger -t trackday "spot interruption notice: $1" || true
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  logger -t trackday "spot notice: Docker is not running yet, no run to stop" || true
  exit 0
fi
{_STOP_JOB}manager=$(docker info --format '{{{{.Swarm.ControlAvailable}}}}')
# DonkeyCar jobs stop beside the DeepRacer runs' records (SIGTERM: the trainer keeps its
# checkpoint and marks its run); the next boot runs them again (the resume script).
for job in $(docker ps -q --filter label={WORKLOAD_LABEL}={DONKEYCAR_WORKLOAD}); do
  logger -t trackday "spot notice: stopping DonkeyCar job $job" || true
  stop_job "$job" &
done
if [ "$manager" != true ]; then
  wait
  exit 0
fi
{_AWS_TOKEN if node.cloud == "aws" else _NO_ROLE}{S3_FUNCTION}{_INTERRUPT}status=0
for service in $(docker service ls -q {trainer}); do
  interrupt "$service" || status=1
done
for container in $(docker ps -q --filter label=com.docker.compose.service); do
  case "$(docker inspect -f '{{{{index .Config.Labels "com.docker.compose.service"}}}}' \\
    "$container")" in
    algo-*) docker stop --time 30 "$container" >/dev/null || status=1 ;;
  esac
done
wait
exit "$status"
""",
    )


# stop_job CONTAINER: a DonkeyCar job's container, stopped; on a manager its service is first
# marked (its submitter then keeps it), then left at zero replicas for the next boot. A worker
# cannot change a service: there the job is only stopped (marked INTERRUPTED by its trainer).
_STOP_JOB = f"""\
stop_job() {{
  local service
  service=$(docker inspect -f '{{{{index .Config.Labels "com.docker.swarm.service.id"}}}}' "$1")
  if [ "$manager" = true ] && [ -n "$service" ]; then
    docker service update --detach --label-add {RESUME_LABEL}=1 "$service" >/dev/null \\
      || logger -t trackday "spot notice: job $service not kept for the next boot" || true
  fi
  docker stop --time {DONKEYCAR_STOP_SECONDS} "$1" >/dev/null
  if [ "$manager" = true ] && [ -n "$service" ]; then
    docker service update --detach --replicas 0 "$service" >/dev/null
  fi
}}
"""

_NO_ROLE = """\
aws_token() {
  echo "trackday: the run has no credentials file and the node no AWS role" >&2
  return 1
}
"""

# A run's training services (in the handler, where $run is set).
_RUN_SERVICES = (
    f'--filter label={RUN_LABEL}="$run" --filter label={JOB_LABEL}=training'
    f" --filter label={WORKLOAD_LABEL}={DEEPRACER_WORKLOAD}"
)

_INTERRUPT = f"""\
# var SPEC NAME: an environment variable of a service spec (`docker service inspect`).
var() {{
  jq -r --arg k "$2" '.[0].Spec.TaskTemplate.ContainerSpec.Env[]
    | select(startswith($k + "=")) | sub("^[^=]*="; "")' <<<"$1"
}}
# prepare PREFIX YAML: the files of the prefix the run resumes under, as `trackday dr resume`
# writes them (the next prefix of dr-increment-training; the params with the prefix changed,
# the reward function's copy); prints that prefix. Never over an existing one.
prepare() {{
  local new params reward head=${{1%-*}} tail=${{1##*-}}
  if [[ $1 == *-* && $tail =~ ^[0-9]+$ ]]; then new="$head-$((tail + 1))"; else new="$1-1"; fi
  if s3 GET "$base/$new/$2" >/dev/null 2>&1; then
    echo "trackday: $new exists already" >&2
    return 1
  fi
  params=$(s3 GET "$base/$1/$2") || return 1
  params=${{params//"'$1'"/"'$new'"}}
  params=${{params//"'$1/"/"'$new/"}}
  reward=$(s3 GET "$base/$1/reward_function.py") || return 1
  s3 PUT "$base/$new/$2" "$params" >/dev/null || return 1
  s3 PUT "$base/$new/reward_function.py" "$reward" >/dev/null || return 1
  echo "$new"
}}
# record SPEC SIMULATION-SPEC: the run's interruption record, in its bucket as the run reaches
# it, and the resume prepared ($prepared) when a checkpoint exists. Every step is checked:
# `set -e` does not hold in a function called from a condition.
record() {{
  local id run prefix bucket creds container role json checkpoint yaml body
  id=$(jq -r '.[0].ID' <<<"$1") run=$(jq -r '.[0].Spec.Labels["{RUN_LABEL}"]' <<<"$1")
  prefix=$(var "$1" MODEL_S3_PREFIX) bucket=$(var "$1" MODEL_S3_BUCKET)
  region=$(var "$1" AWS_REGION) base=$(var "$1" S3_ENDPOINT_URL) session=
  creds=$(var "$1" AWS_SHARED_CREDENTIALS_FILE) yaml=$(var "$2" S3_YAML_NAME)
  # The run's S3 server (path style), else AWS S3 (virtual-hosted style, as AWS documents it).
  base=${{base:+$base/$bucket}}
  base=${{base:-https://$bucket.s3.$region.amazonaws.com}}
  if [ -n "$creds" ]; then
    container=$(docker ps -q --filter "label=com.docker.swarm.service.id=$id" | head -n 1)
    [ -n "$container" ] || {{ echo "trackday: run $run has no running trainer" >&2; return 1; }}
    creds=$(docker exec "$container" cat "$creds") || return 1
    ak=$(awk -F' *= *' '$1 == "aws_access_key_id" {{print $2}}' <<<"$creds")
    sk=$(awk -F' *= *' '$1 == "aws_secret_access_key" {{print $2}}' <<<"$creds")
  else
    token=$(aws_token) || return 1
    role=$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" \\
      {IMDS}/latest/meta-data/iam/security-credentials/) || return 1
    json=$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" \\
      "{IMDS}/latest/meta-data/iam/security-credentials/$role") || return 1
    ak=$(jq -r .AccessKeyId <<<"$json") sk=$(jq -r .SecretAccessKey <<<"$json")
    session=$(jq -r .Token <<<"$json")
  fi
  # No checkpoint yet (404): an interruption before the first one, recorded as such.
  checkpoint=$(s3 GET "$base/$prefix/model/deepracer_checkpoints.json" \\
    | jq -r '.last_checkpoint.name // empty') || checkpoint=
  if [ -n "$checkpoint" ] && ! prepared=$(prepare "$prefix" "${{yaml:-training_params.yaml}}"); then
    logger -t trackday "spot notice: run $run resumes by hand only (not prepared)" || true
    prepared=
  fi
  body=$(jq -cn --arg run "$run" --arg prefix "$prefix" --arg checkpoint "$checkpoint" \\
    --arg notice "$(tail -n 1 {NOTICES_FILE})" --arg node "$(hostname)" \\
    --arg prepared "$prepared" '{{
      run_id: ($run | tonumber), model_prefix: $prefix, node: $node, notice: $notice,
      checkpoint: (if $checkpoint == "" then null else $checkpoint end),
      iteration: ([$checkpoint | capture("^(?<n>[0-9]+)_").n | tonumber] | first),
      prepared: (if $prepared == "" then null else $prepared end)}}') || return 1
  s3 PUT "$base/$prefix/{INTERRUPTION_RECORD}" "$body" >/dev/null || return 1
  [ -z "$prepared" ] || s3 PUT "$base/$prepared/{RESUMED_FROM}" "$body" >/dev/null
}}
# interrupt SERVICE: the trainer's run gets its record; its services go to zero replicas
# (recorded or not: the node is going away). A prepared resume goes into their specs, with
# the replicas to give back at the next boot ({RESUME_LABEL}).
interrupt() {{
  local spec simulation run prefix replicas status=0
  spec=$(docker service inspect "$1") || return 1
  run=$(jq -r '.[0].Spec.Labels["{RUN_LABEL}"]' <<<"$spec") prefix=$(var "$spec" MODEL_S3_PREFIX)
  # A second notice (Azure may send two): the first one's record and resume stand.
  if [ "$(jq -r '.[0].Spec.Mode.Replicated.Replicas' <<<"$spec")" = 0 ]; then
    logger -t trackday "spot notice: run $run is stopped already" || true
    return 0
  fi
  simulation=$(docker service ls -q {_RUN_SERVICES} --filter label={ROLE_LABEL}={SIMULATION_ROLE})
  simulation=$(docker service inspect "${{simulation:-none}}" 2>/dev/null) \\
    || simulation='[{{"Spec": {{"TaskTemplate": {{"ContainerSpec": {{"Env": []}}}}}}}}]'
  logger -t trackday "spot notice: interrupting DeepRacer run $run" || true
  prepared=
  if ! record "$spec" "$simulation"; then
    logger -t trackday "spot notice: run $run could not be recorded" || true
    status=1
  fi
  for service in $(docker service ls -q {_RUN_SERVICES}); do
    args=(--detach --replicas 0)
    if [ -n "$prepared" ]; then
      replicas=$(docker service inspect -f '{{{{.Spec.Mode.Replicated.Replicas}}}}' "$service")
      args+=(--label-add "{RESUME_LABEL}=$replicas" --label-add "{MODEL_PREFIX_LABEL}=$prepared"
        --container-label-add "{MODEL_PREFIX_LABEL}=$prepared")
      if [ "$service" = "$(jq -r '.[0].ID[:12]' <<<"$spec")" ]; then
        args+=(--env-add "MODEL_S3_PREFIX=$prepared" --env-add PRETRAINED=True
          --env-add "PRETRAINED_S3_PREFIX=$prefix" --env-add PRETRAINED_CHECKPOINT=last)
      else
        args+=(--env-add "SAGEMAKER_SHARED_S3_PREFIX=$prepared")
      fi
    fi
    docker service update "${{args[@]}}" "$service" >/dev/null || status=1
  done
  return "$status"
}}
"""


def resume_script() -> str:
    """At boot, on a manager: the runs whose resume the notice prepared start again."""
    return shell_script(
        "Gives the DeepRacer runs a spot notice stopped their replicas back, where it prepared"
        " their resume (infra/bootstrap/spot.py).",
        f"""\
deadline=$((SECONDS + 300))
until docker node ls >/dev/null 2>&1; do  # the swarm's manager comes back after dockerd
  state=$(docker info --format '{{{{.Swarm.LocalNodeState}}}} {{{{.Swarm.ControlAvailable}}}}' \
    2>/dev/null || true)
  case "$state" in
    inactive* | "active false") exit 0 ;;  # in no swarm, or a worker: nothing to resume here
  esac
  [ "$SECONDS" -lt "$deadline" ] || {{ echo "trackday: the swarm did not come back" >&2; exit 1; }}
  sleep 2
done
status=0
for service in $(docker service ls -q --filter label={RESUME_LABEL}); do
  replicas=$(docker service inspect -f '{{{{index .Spec.Labels "{RESUME_LABEL}"}}}}' "$service")
  logger -t trackday "resuming $service with $replicas replicas" || true
  docker service update --detach --replicas "$replicas" --label-rm {RESUME_LABEL} "$service" \\
    >/dev/null || status=1
done
exit "$status"
""",
    )


def spot_files(node: NodeBootstrap) -> list[tuple[str, str, str]]:
    """(path, content, mode) of the watcher, its handler, the boot resume and their units."""
    return [
        (WATCH_SCRIPT, watch_script(node), "0755"),
        (NOTICE_SCRIPT, notice_script(node), "0755"),
        (f"{SYSTEMD_DIR}/{WATCH_UNIT}", _UNIT, "0644"),
        (RESUME_SCRIPT, resume_script(), "0755"),
        (f"{SYSTEMD_DIR}/{RESUME_UNIT}", _RESUME_UNIT, "0644"),
    ]


# From the first boot on, before the bootstrap is done: a notice may come at any time.
_UNIT = f"""\
[Unit]
Description=trackday: wait for this spot node's interruption notice and stop its runs
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={WATCH_SCRIPT}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""

# Later boots only (the bootstrap's file exists): after Docker, with the swarm it restores.
_RESUME_UNIT = f"""\
[Unit]
Description=trackday: resume the DeepRacer runs a spot notice stopped and prepared
After=docker.service trackday-bootstrap.service
ConditionPathExists={READY_FILE}

[Service]
Type=oneshot
ExecStart={RESUME_SCRIPT}

[Install]
WantedBy=multi-user.target
"""
