"""The workers' speeds read through the engine's task logs, one task per worker slot."""

from __future__ import annotations

import shlex
import time

import docker
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

from tests.training.deepracer.test_sim_speed import worker_log
from trackday import dr_speed, dr_status
from training.deepracer.services import (
    JOB_LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    SIMULATION_ROLE,
    WORKLOAD,
    WORKLOAD_LABEL,
)

RUN_ID = "915"


def _script() -> str:
    """Worker 1 logs steps at RTF 0.5, worker 2 at RTF 1.0, then both keep running."""
    echoes = {
        slot: "; ".join(f"echo {shlex.quote(line)}" for line in worker_log(rtf, 10.0, 12))
        for slot, rtf in ((1, 0.5), (2, 1.0))
    }
    return f'if test "$SLOT" = 1; then {echoes[1]}; else {echoes[2]}; fi; sleep 600'


def test_speeds_of_two_workers_from_their_task_logs(swarm: docker.DockerClient, busybox_image):
    service = swarm.services.create(
        busybox_image,
        ["sh", "-c", _script()],
        name=f"trackday-dr-{RUN_ID}-simulation",
        env=["SLOT={{.Task.Slot}}"],
        mode=ServiceMode("replicated", replicas=2),
        labels={
            WORKLOAD_LABEL: WORKLOAD,
            RUN_LABEL: RUN_ID,
            JOB_LABEL: "training",
            ROLE_LABEL: SIMULATION_ROLE,
        },
        restart_policy=RestartPolicy(condition="none"),
        endpoint_spec=EndpointSpec(),
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            ours = [s for s in dr_status.status(swarm) if s.run_id == RUN_ID]
            speeds = dr_speed.service_speeds(swarm, ours)[service.name]
            if all(speeds.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ours[0].role == SIMULATION_ROLE
        assert {w: round(s.rtf, 2) for w, s in speeds.items() if s} == {1: 0.5, 2: 1.0}
        assert all(round(s.steps_per_s, 1) == 10.0 for s in speeds.values() if s)
    finally:
        service.remove()
