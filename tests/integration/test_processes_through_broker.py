"""`workers serve X --processes N` through the real broker: the children share the partitions, a killed
child is restarted with nothing lost, and SIGTERM stops them all cleanly."""

from __future__ import annotations

import dataclasses
import json
import signal
import time

import psutil
import pytest

from tests.conftest import collect, digit_requests
from workers.client import send

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_two_processes_share_partitions_survive_a_kill_and_stop_together(kafka, topics, start_worker) -> None:
    supervisor = start_worker("tensor", kafka, topics, args=("--processes", "2"))  # child 0 ready, assigned
    second = dataclasses.replace(supervisor, metrics_port=supervisor.metrics_port + 1)
    children = [supervisor, second]
    supervisor.wait_for(lambda: [c.metric("workers_assigned_partitions") for c in children].count(2) == 2, 90,
                        "splitting the 4 partitions between its 2 children")

    send(kafka, digit_requests(300, topics["input"]))
    (child_pid, *_) = [p.pid for p in psutil.Process(supervisor.process.pid).children()]
    psutil.Process(child_pid).kill()  # kill -9 mid-stream: uncommitted inputs are redone, none lost
    send(kafka, digit_requests(300, topics["input"], 300))
    supervisor.wait_for(lambda: len(psutil.Process(supervisor.process.pid).children()) == 2
                        and child_pid not in [p.pid for p in psutil.Process(supervisor.process.pid).children()],
                        30, "restarting the killed child")

    seen: set[str] = set()

    def all_seen(records: list) -> bool:
        if records[-1].topic == topics["output"]:
            seen.add(json.loads(records[-1].value)["id"])
        return len(seen) >= 600

    collect(kafka, [topics["output"]], all_seen, timeout_s=120)
    assert seen == {f"r{i}" for i in range(600)}

    pids = [p.pid for p in psutil.Process(supervisor.process.pid).children()]
    assert supervisor.stop(signal.SIGTERM) == 0
    time.sleep(0.5)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
