"""Workers: real `python -m workqueue.worker` processes, started, killed and watched."""

import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE, ENDLESS_TASK, LONG_TASK, SECONDS_PER_DOT, quoted
from workqueue.testing import wait_until
from workqueue.testing.processes import WorkerPool


@pytest.fixture
def workers(amqp_url):
    """The scenario's worker processes; any still running at the end are killed."""
    pool = WorkerPool(amqp_url, default_options=["--seconds-per-dot", str(SECONDS_PER_DOT)])
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


@given(parsers.re(r'worker "(?P<name>[^"]+)" (?:is waiting for tasks|joins them)$'))
def _(workers, name):
    options = workers.workers and next(iter(workers)).process.args[4:]   # same settings as the others
    prefetch = []
    if options and "--prefetch" in options:
        prefetch = ["--prefetch", options[options.index("--prefetch") + 1]]
    start_waiting(workers, [name], *prefetch)


@given(parsers.re(r'worker "(?P<name>[^"]+)" is (?P<what>working on a long task|busy with a task '
                  r'that outlasts the scenario)(?P<auto>, with automatic acknowledgment)?$'),
       target_fixture="long_task")
def _(workers, send, name, what, auto):
    task = LONG_TASK if what.startswith("working") else ENDLESS_TASK
    worker = workers.start(name, *(["--auto-ack"] if auto else []))
    worker.wait_consuming(DEADLINE)
    send([task])
    worker.wait_received(task, DEADLINE)
    return task


@when(parsers.parse('"{name}" is killed'))
def _(workers, name):
    workers[name].kill()


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


@then("a worker does all 5 tasks")
def _(workers, sent_tasks):
    worker = workers.start("survivor")
    worker.wait_done(len(sent_tasks), DEADLINE)
    assert sorted(worker.received()) == sorted(sent_tasks)
