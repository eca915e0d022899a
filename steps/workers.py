"""Workers: real `python -m workqueue.worker` processes, started, killed and watched."""

import signal

import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE, ENDLESS_TASK, LONG_TASK, SECONDS_PER_DOT, quoted
from steps.queues import queue_options
from workqueue.testing import wait_until
from workqueue.testing.processes import WorkerPool

POISON_HANDLER = "workqueue.testing.handlers:fail_on_poison"


@pytest.fixture
def workers(amqp_url, queue_spec):
    """The scenario's worker processes; any still running at the end are killed."""
    pool = WorkerPool(amqp_url, default_options=["--seconds-per-dot", str(SECONDS_PER_DOT),
                                                 *queue_options(queue_spec)])
    yield pool
    pool.close()


def start_waiting(workers, names, *options):
    for name in names:
        workers.start(name, *options).wait_consuming(DEADLINE)


@given(parsers.re(r'workers (?P<names>.+) are waiting for tasks, with no prefetch limit'))
def _(workers, names):
    start_waiting(workers, quoted(names), "--prefetch", "0")


@given(parsers.re(r'workers (?P<names>.+) are waiting for tasks, one at a time'))
def _(workers, names):
    start_waiting(workers, quoted(names), "--prefetch", "1")


@given(parsers.parse('worker "{name}" is waiting for tasks, without reconnecting'))
def _(workers, name):
    start_waiting(workers, [name], "--no-reconnect")


@given(parsers.parse('worker "{name}" is waiting for tasks, failing on any task that mentions poison'))
def _(workers, name):
    start_waiting(workers, [name], "--handler", POISON_HANDLER)


@given(parsers.re(r'worker "(?P<name>[^"]+)" (?:is waiting for tasks|joins them)$'))
def _(workers, name):
    """A worker with the same prefetch as the scenario's first worker (if any)."""
    options = next(iter(workers)).options if workers.workers else []
    prefetch = options[options.index("--prefetch"):][:2] if "--prefetch" in options else []
    start_waiting(workers, [name], *prefetch)


@given(parsers.re(r'worker "(?P<name>[^"]+)"(?: with a (?P<heartbeat>\d+) second heartbeat)? is '
                  r'(?P<what>working on a long task|working on a task of (?P<seconds>\d+) seconds|'
                  r'busy with a task that outlasts the scenario)'
                  r'(?P<auto>, with automatic acknowledgment)?$'),
       target_fixture="long_task")
def _(workers, send, name, heartbeat, what, seconds, auto):
    if seconds:
        task = f"task of {seconds} seconds" + "." * round(int(seconds) / SECONDS_PER_DOT)
    else:
        task = LONG_TASK if what.startswith("working") else ENDLESS_TASK
    options = (["--auto-ack"] if auto else []) + (["--heartbeat", heartbeat] if heartbeat else [])
    worker = workers.start(name, *options)
    worker.wait_consuming(DEADLINE)
    send([task])
    worker.wait_received(task, DEADLINE)
    return task


@when(parsers.parse('"{name}" is killed'))
def _(workers, name):
    workers[name].kill()


@when(parsers.parse('"{name}" is frozen'))
def _(workers, name):
    workers[name].signal(signal.SIGSTOP)


@when(parsers.parse('"{name}" is asked to stop'))
def _(workers, name):
    workers[name].signal(signal.SIGTERM)


@when(parsers.parse('"{name}" is interrupted twice'))
def _(workers, name):
    worker = workers[name]
    worker.signal(signal.SIGINT)
    worker.wait_for_line("[*] Stopping", DEADLINE)
    worker.signal(signal.SIGINT)


@then(parsers.parse('"{name}" finishes the long task and exits with code 0, without a traceback'))
def _(workers, name, long_task):
    worker = workers[name]
    assert worker.wait_exit(DEADLINE) == 0, worker.errors
    assert worker.received() == [long_task] and worker.done_count() == 1, worker.lines
    assert not any("Traceback" in line for line in worker.errors), worker.errors


@then(parsers.re(r'"(?P<name>[^"]+)" exits with code (?P<code>\d+), without a traceback'))
def _(workers, name, code):
    worker = workers[name]
    assert worker.wait_exit(DEADLINE) == int(code), worker.errors
    assert worker.done_count() == 0, worker.lines
    assert not any("Traceback" in line for line in worker.errors), worker.errors


@then(parsers.parse('"{name}" exits with code {code:d} and one line saying "{says}"'))
def _(workers, name, code, says, broker):
    worker = workers[name]
    assert worker.wait_exit(DEADLINE) == code, worker.errors
    worker.wait_for(lambda _l: worker.errors, 5, "the error line")
    assert len(worker.errors) == 1 and says in worker.errors[0], worker.errors
    assert broker.password not in worker.errors[0]


@then(parsers.parse('"{name}" is still running'))
def _(workers, name):
    assert workers[name].process.poll() is None, workers[name].errors


@then(parsers.parse('"{name}" does the long task and the {count:d} tasks, each at least once'))
def _(workers, name, count, long_task, sent_tasks):
    worker = workers[name]
    expected = {long_task, *sent_tasks}
    assert len(expected) == count + 1, expected
    # Each task finished (its Received line followed by its Done line), as a set: a task done
    # twice must not stand in for one never done.
    worker.wait_for(lambda _l: expected <= set(worker.finished()), DEADLINE,
                    f"each of {sorted(expected)!r} finished")
    assert set(worker.received()) == expected, worker.received()


#: Heartbeats to keep watching after the task is done: a connection the broker dropped during
#: the task shows only then (the ack fails, the worker reconnects, the task comes back).
HEARTBEATS_WATCHED_AFTER = 5


@then(parsers.parse('"{name}" does that task once, on the same connection'))
def _(workers, name, long_task):
    worker = workers[name]
    worker.wait_done(1, DEADLINE)
    heartbeat = float(worker.option("--heartbeat"))
    with pytest.raises(TimeoutError):
        worker.wait_for(lambda _l: worker.consuming_count() > 1 or len(worker.deliveries()) > 1,
                        HEARTBEATS_WATCHED_AFTER * heartbeat, "a second connection or a second delivery")
    assert worker.deliveries() == [(long_task, False)], worker.lines
    assert worker.consuming_count() == 1, worker.lines
    assert worker.process.poll() is None, worker.errors


@then(parsers.re(r'"(?P<name>[^"]+)" tries "(?P<poison>[^"]+)" (?P<times>\d+) times and does (?P<tasks>.+)$'))
def _(workers, broker, vhost, queue_spec, name, poison, times, tasks):
    worker = workers[name]
    good = quoted(tasks)
    # Count the tries once the task has left for the dead-letter queue: no try can follow.
    wait_until(lambda: broker.message_count(queue_spec.dead_letter, vhost), DEADLINE,
               f"{poison!r} in the dead-letter queue {queue_spec.dead_letter!r}; "
               f"tried {worker.received().count(poison)} times so far")
    worker.wait_for(lambda _l: set(good) <= set(worker.finished()), DEADLINE, f"{good!r} done")
    assert worker.received().count(poison) == int(times), worker.lines
    assert sorted(t for t in worker.received() if t != poison) == sorted(good)
    assert worker.process.poll() is None, worker.errors


@then(parsers.parse('"{name}" does the long task, flagged as redelivered'))
def _(workers, name):
    worker = workers[name]
    worker.wait_for(lambda _l: (LONG_TASK, True) in worker.deliveries(), DEADLINE,
                    "the long task, redelivered")
    worker.wait_done(1, DEADLINE)
    assert worker.deliveries() == [(LONG_TASK, True)]


@then(parsers.re(r'"(?P<name>[^"]+)" does "(?P<task>[^"]+)" and nothing else'))
def _(workers, name, task):
    worker = workers[name]
    worker.wait_received(task, DEADLINE)
    worker.wait_done(1, DEADLINE)
    assert worker.received() == [task]


@when("a worker takes the queue", target_fixture="survivor")
def _(workers):
    """A fresh worker (prefetch 100: some scenarios leave thousands of tasks) on the task queue."""
    return workers.start("survivor", "--prefetch", "100")


@then(parsers.re(r"the worker does all (?P<count>\d+) tasks"))
def _(survivor, sent_tasks, count):
    assert len(sent_tasks) == int(count)
    worker = survivor
    worker.wait_consuming(DEADLINE)
    worker.wait_done(len(sent_tasks), DEADLINE)
    assert sorted(worker.received()) == sorted(sent_tasks)
