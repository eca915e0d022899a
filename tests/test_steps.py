"""The steps' own checks fail when their sentence is false (no broker needed: what is checked
here is the reading of a command's output, not a guarantee of RabbitMQ)."""

import subprocess

import pytest

from steps.queues import assert_one_line_error, password_of
from workqueue.testing.processes import finished_tasks


def completed(returncode, stderr, url, stdout=""):
    run = subprocess.CompletedProcess([], returncode, stdout, stderr)
    run.passwords = {password_of(url)}
    return run


def test_the_password_checked_is_the_one_of_the_broker_the_command_was_given():
    """The 541 scenario runs against its own broker: a leak of that broker's password fails."""
    own = "amqp://wq-user:other-broker-secret@127.0.0.1:5999/%2F"
    leaked = completed(5, "new_task: error: 541 INTERNAL_ERROR transient_nonexcl_queues other-broker-secret\n", own)
    with pytest.raises(AssertionError):
        assert_one_line_error(leaked, 5, ["541"])
    clean = completed(5, "new_task: error: 541 INTERNAL_ERROR transient_nonexcl_queues\n", own)
    assert_one_line_error(clean, 5, ["541"])


def test_a_sent_line_or_a_second_line_fails_the_one_line_error():
    url = "amqp://u:pw-123456@127.0.0.1:5999/%2F"
    with pytest.raises(AssertionError):
        assert_one_line_error(completed(6, "error: unroutable\n", url, stdout=" [x] Sent 'x'\n"), 6, ["unroutable"])
    with pytest.raises(AssertionError):
        assert_one_line_error(completed(6, "error: unroutable\nmore\n", url), 6, ["unroutable"])


def test_a_task_done_twice_does_not_stand_in_for_a_task_never_done():
    """"Each at least once" is a set: here task 2 was received (then the connection dropped)
    and never done, while task 1 was done twice; two Done lines for two tasks are not enough."""
    lines = ["w | [x] Received 'task 1'", "w | [x] Done", "w | [x] Received 'task 2'",
             "w | [*] Waiting for messages. To exit press CTRL+C", "w | [x] Received 'task 1' (redelivered)",
             "w | [x] Done"]
    assert sum("[x] Done" in line for line in lines) == 2
    assert finished_tasks(lines) == ["task 1", "task 1"]
    assert not {"task 1", "task 2"} <= set(finished_tasks(lines))


def test_no_step_makes_a_session_fixture_its_target():
    """A step's target_fixture named after a session-scoped fixture (``broker``, ``cluster``)
    would overwrite that fixture's value for the rest of the test process: pytest-bdd 9 sets the
    cached value of the active fixture definition (seen 2026-12-02: the consumer-timeout
    scenarios' broker leaked into later scenarios). A scenario needing another broker gets it
    through a fixture (tests/test_production.py's ``broker`` for @broker_settings)."""
    import ast
    import pathlib

    session = {"broker", "cluster", "broker_backend"}
    found = []
    for path in sorted((pathlib.Path(__file__).parent.parent / "steps").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "target_fixture" and \
                    isinstance(node.value, ast.Constant) and node.value.value in session:
                found.append(f"{path.name}:{node.value.lineno} {node.value.value}")
    assert not found, found


def _readings(monkeypatch, sequence):
    """wait_counts reads the queue through exact_counts: here, ``sequence`` in turn (the last
    one for ever after)."""
    import steps.queues as queues
    it = iter(sequence)
    last = [None]

    def read(_broker, _vhost, _name):
        last[0] = next(it, last[0])
        return last[0]
    monkeypatch.setattr(queues, "exact_counts", read)
    return queues


def test_a_hold_of_counts_waits_out_a_sample_that_lags_a_gone_consumer(monkeypatch):
    """Ready and consumers exact, the unacknowledged count from a sample that lags: a consumer
    gone within the hold reads "unknown" until the sample agrees, which is no change."""
    queues = _readings(monkeypatch, [(1, 0, 1), (1, "unknown", 0), (1, "unknown", 0), (1, 0, 0)])
    queues.wait_counts(None, "/", "task_queue", (1, 0, None), hold=0.6)


def test_a_hold_of_counts_waits_out_an_older_sample_that_fitted(monkeypatch):
    """The first fitting reading was a sample from before the task was delivered (0
    unacknowledged), the next one from while the worker ran it (1): the wait starts again, and
    a hold on samples that fit passes (CI, 2026-12-07)."""
    queues = _readings(monkeypatch, [(0, 0, 1), (0, 1, 1), (0, 1, 1), (0, 0, 1)])
    queues.wait_counts(None, "/", "task_queue", (0, 0, None), hold=0.6)


def test_a_hold_of_counts_says_an_unacknowledged_count_that_stays_wrong(monkeypatch):
    queues = _readings(monkeypatch, [(0, 0, 1), (0, 1, 1)])
    monkeypatch.setattr(queues, "DEADLINE", 1.5)
    with pytest.raises(TimeoutError, match=r"last showed ready 0, unacked 1, consumers 1"):
        queues.wait_counts(None, "/", "task_queue", (0, 0, None), hold=0.6)


def test_a_hold_of_counts_fails_on_a_reading_that_contradicts_it(monkeypatch):
    queues = _readings(monkeypatch, [(1, 0, 1), (2, "unknown", 0), (2, 0, 0)])
    with pytest.raises(AssertionError, match="had not settled"):
        queues.wait_counts(None, "/", "task_queue", (1, 0, None), hold=0.6)


@pytest.mark.broker_settings
def test_a_scenarios_broker_settings_are_set_back(broker):
    """A scenario tagged @broker_settings runs with a consumer timeout of 5 s checked every half
    second on its test process's broker, which has its own values back once the scenario ends
    (the next scenario on that broker must not inherit them)."""
    from steps.broker import CONSUMER_TIMEOUT_TICK_MS, SCENARIO_CONSUMER_TIMEOUT, broker_settings

    def read():
        return broker.ctl("eval", "[application:get_env(rabbit, K) || K <- [consumer_timeout, "
                                  "channel_tick_interval]].").strip()
    before = read()
    with broker_settings(broker) as configured:
        assert configured.consumer_timeout == SCENARIO_CONSUMER_TIMEOUT
        assert read() == f"[{{ok,{SCENARIO_CONSUMER_TIMEOUT * 1000}}},{{ok,{CONSUMER_TIMEOUT_TICK_MS}}}]"
    assert read() == before
    assert not hasattr(broker, "consumer_timeout")
