"""The nemesis's observations (workqueue.testing.nemesis) on the test process's broker: each fault is
seen as what it is, and each observation fails when its fault is swapped for a weaker one (a
graceful stop for a crash, a no-op for a pause, a pause or nothing for a partition, SIGTERM
for a worker's kill). The leader's and the cluster's own are in tests/test_cluster_faults.py."""

import os
import signal

import pytest

from workqueue.testing.nemesis import FaultNotObserved, Nemesis
from workqueue.testing.processes import WorkerProcess

pytestmark = [pytest.mark.harness, pytest.mark.broker_control]


@pytest.fixture
def target(broker):
    """The test process's broker, faulted as a scenario faults it (and started again after the
    test if it was left down, as after a scenario). Until 2026-12-06 a broker of the module's
    own: a boot and a graceful stop more in each test process that ran one of these tests."""
    yield broker
    broker.ensure_healthy()


def test_a_crash_is_seen_as_a_sigkill_and_a_graceful_stop_is_not_one(target, monkeypatch):
    nemesis = Nemesis(target)
    crash = nemesis.crash(target)
    assert "SIGKILL" in crash.seen or "code 137" in crash.seen, crash
    assert "no shutdown in its log" in crash.seen
    nemesis.recover(target)
    monkeypatch.setattr(target, "_kill", target._stop)          # a "crash" that is a graceful stop
    with pytest.raises(FaultNotObserved, match="was not a SIGKILL"):
        nemesis.crash(target)
    monkeypatch.undo()
    nemesis.recover(target)
    stop = nemesis.stop(target)
    assert "shutdown" in stop.seen.lower() or "SIGTERM" in stop.seen or "stop" in stop.seen, stop
    nemesis.recover(target)
    assert [o.fault for o in nemesis.observations] == ["crash", "stop"]


def test_a_pause_is_seen_frozen_and_is_not_a_partition(target, monkeypatch):
    nemesis = Nemesis(target)
    pause = nemesis.pause(target)
    try:
        assert pause.seen, pause
        with pytest.raises(FaultNotObserved, match="did not cut off a running node"):
            nemesis.cut_off(target)                            # a "partition" that is a pause
    finally:
        nemesis.resume(target)
    target.wait_ready()
    monkeypatch.setattr(target, "_pause", lambda: None)        # a pause that does nothing
    with pytest.raises(FaultNotObserved, match="froze it not"):
        nemesis.pause(target)
    with pytest.raises(FaultNotObserved, match="did not cut off a running node"):
        nemesis.cut_off(target)                                # a "partition" that cut nothing


def test_a_worker_kill_is_seen_as_a_sigkill(target, monkeypatch):
    worker = WorkerProcess("victim", target.url(), "--seconds-per-dot", "0")
    try:
        worker.wait_consuming(60)
        # a "kill" that asks it to stop
        monkeypatch.setattr(worker, "signal", lambda sig: os.kill(worker.pid, signal.SIGTERM))
        with pytest.raises(FaultNotObserved, match="was not killed"):
            worker.kill()
    finally:
        monkeypatch.undo()
        worker.close()
    worker = WorkerProcess("victim", target.url(), "--seconds-per-dot", "0")
    try:
        worker.wait_consuming(60)
        worker.kill()
        assert worker.process.returncode == -signal.SIGKILL
    finally:
        worker.close()
