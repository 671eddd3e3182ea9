"""The simulator's speed from its log lines, written here in simapp 6's own formats."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from training.deepracer.sim_speed import SimSpeed, parse_step, speed

# simapp v6.0.4 bundle/markov/metrics/s3_metrics.py `sim_trace_log`: the format string the
# rollout worker logs each step with, over StepMetrics' keys in their order.
SIM_TRACE_FORMAT = (
    "SIM_TRACE_LOG:%d,%d,%.4f,%.4f,%.4f,%.2f,%.2f,%s,%.4f,%s,%s,%.4f,%d,%.2f,%s,%s,%.2f,%d,%.4f"
)
# simapp v6.0.4 docker/files/robomaker/debug-reward.diff (DEBUG_REWARD=true)
TIME_FORMAT = "TIME: s: {}, rtf: {}, fps:{}"


def step_line(episode, steps, sim_time, wall, status="in_progress", action="3"):
    metrics = OrderedDict(
        episode=episode,
        steps=steps,
        X=2.8961,
        Y=0.6920,
        yaw=-84.8123,
        steer=-10.0,
        throttle=1.5,
        action=action,
        reward=0.5,
        done=False,
        all_wheels_on_track=True,
        progress=21.3456,
        closest_waypoint=45,
        track_len=17.71,
        tstamp=sim_time,  # rollout_agent_ctrl: sec + 1e-9 * nanosec, logged with %s
        episode_status=status,
        pause_duration=0.0,
        obstacle_crash_counter=0,
        wall_clock=wall,
    )
    return SIM_TRACE_FORMAT % tuple(metrics.values())


def worker_log(rtf, steps_per_s, count, start_wall=1764518400.0, episode=1):
    """`count` driving steps at the given speed, between the lines a worker logs around them."""
    lines = [
        "Starting as worker 1, using world reInvent2019_wide and configuration x.yaml.",
        "Training> Name=main_level/agent, Worker=0, Episode=1, Total reward=1.0",
    ]
    wall_step = 1 / steps_per_s
    for i in range(count):
        lines.append(
            step_line(episode, i + 1, 120.0 + i * wall_step * rtf, start_wall + i * wall_step)
        )
    return lines


def test_rtf_and_steps_per_second_from_step_lines():
    found = speed(worker_log(0.64, 9.5, 40))
    assert found is not None and found.steps == 39
    assert found.rtf == pytest.approx(0.64, rel=1e-3)
    assert found.steps_per_s == pytest.approx(9.5, rel=1e-3)
    assert found.describe() == "RTF 0.64, 9.5 steps/s"


def test_prefixed_lines_and_a_continuous_action_still_parse():
    line = "2026-11-30T17:00:00.000000000Z [rollout-1] " + step_line(
        2, 7, 33.5, 1764518400.25, action="[0.5 -12.0]"
    )
    step = parse_step(line)
    assert step is not None and (step.sim_time, step.wall_clock) == (33.5, 1764518400.25)


def test_reset_rows_and_lines_of_other_kinds_are_left_out():
    lines = worker_log(1.0, 15.0, 10)
    # A car being reset: the sim clock runs while the wall clock stands (or the reverse).
    lines += [
        step_line(1, 11, 500.0, 1764518400.7, status="prepare"),
        step_line(1, 12, 501.0, 1764518460.0, status="off_track"),
    ]
    lines += ["SIM_TRACE_LOG:1,2,3", "SIM_TRACE_LOG:" + ",".join(["x"] * 19), "garbage"]
    found = speed(lines)
    assert found is not None and found.rtf == pytest.approx(1.0) and found.steps == 9


def test_debug_reward_time_lines_when_no_step_lines():
    lines = [
        TIME_FORMAT.format(120, round(0.81234, 2), round(15.0, 2)),
        TIME_FORMAT.format(240, round(0.5, 2), round(14.97, 2)),
    ]
    assert speed(lines) == SimSpeed(0.5, pytest.approx(7.485), 240)


def test_a_worker_still_starting_has_no_speed():
    assert speed(["Starting gzserver"]) is None
    assert speed(worker_log(1.0, 10.0, 1)) is None  # one step is no interval yet
