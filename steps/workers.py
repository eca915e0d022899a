"""Workers: real worker processes, started, killed and watched: the project's own
(`python -m workqueue.worker`), or in the conformance suite the implementation under test."""

import collections
import concurrent.futures
import math
import re
import signal
import subprocess
import threading
import time

import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE, ENDLESS_TASK, LONG_TASK, SCENARIO, SECONDS_PER_DOT, WORKER_POOL, quoted
from steps.queues import dead_letter_queue, exact_counts, held_tasks, is_task, queue_holds, queue_options, wait_counts
from workqueue.testing import wait_until
from workqueue.testing.nemesis import FaultNotObserved
from workqueue.testing.processes import WorkerDidNotStart, WorkerExited, WorkerPool
from workqueue.worker import connection_name

POISON_HANDLER = "workqueue.testing.handlers:fail_on_poison"
CRASH_HANDLER = "workqueue.testing.handlers:die_on_crash"
#: How often a restarted worker is started again at most: the bound of a crash loop's scenario.
RESTARTS = 8


@pytest.fixture
def worker_under_test():
    """The implementation the scenario's workers are (conformance.manifest.Implementation); None:
    the project's own worker. The conformance suite (conformance/test_conformance.py) gives one
    per implementation."""
    return None


def launcher(impl, broker, vhost, queue):
    """WorkerPool's ``launch`` for ``impl``: a scenario that asks a worker for what ``impl``
    lacks is skipped as not applicable, with that reason. A worker that does not report when it
    is consuming is seen consuming by the broker (consuming_probe)."""
    if impl is None or impl.reference:
        return None
    from workqueue.testing.contract import NotApplicable, start_worker

    def launch(name, url, options, on_line):
        try:
            worker = start_worker(impl, name, url, options, on_line)
        except NotApplicable as exc:
            pytest.skip(str(exc))
        if "consuming" not in impl.events:
            worker.consuming_probe = consuming_probe(broker, vhost, name, queue)
        return worker
    return launch


def consuming_probe(broker, vhost, name, queue):
    """How often worker ``name`` started consuming ``queue``, as the broker shows it: the
    distinct consumers (channel, consumer tag) the broker has listed on its connections, each
    time it was asked. A worker that reconnects, or consumes again after a basic.cancel, shows
    a new one, which stays listed; one that stays consuming shows the same one. It is asked when
    the worker starts (wait_consuming) and at each poll of a wait: a consumer listed for less
    than a poll, between two questions, goes unseen."""
    seen = set()

    def probe():
        mine = {c["name"] for c in worker_connections(broker, vhost, name)}
        seen.update((c["channel"], c["tag"]) for c in broker.management.consumers(vhost)
                    if c["connection"] in mine and c["queue"] == queue)
        return len(seen)
    return probe


@pytest.fixture
def workers(request, broker, vhost, amqp_url, queue_spec, declared, worker_under_test, framework_queue):
    """The scenario's worker processes; any still running at the end are killed."""
    pool = WorkerPool(amqp_url, default_options=["--seconds-per-dot", str(SECONDS_PER_DOT),
                                                 *queue_options(queue_spec)],
                      launch=launcher(worker_under_test, broker, vhost, queue_spec.name))
    pool.declared = declared
    request.node.stash[WORKER_POOL] = pool
    yield pool
    pool.close()


def consumer_connections(target, vhost):
    """The connection of each consumer of ``vhost``, as the broker lists them (one per consumer)."""
    return [c["connection"] for c in target.management.consumers(vhost)]


def worker_connections(target, vhost, name):
    """The connections of worker ``name`` as the broker (or cluster) ``target`` lists them."""
    return [c for c in target.management.connections(vhost) if c["connection_name"] == connection_name(name)]


#: How an uncaught error reports itself: Python's traceback, a Java or Node.js stack ("at ..."),
#: PHP's "Stack trace:", a Rust panic, a Go panic's goroutine dump.
STACK_TRACE = [re.compile(p) for p in (r"^Traceback \(most recent call last\)", r"^\s+at \S+", r"^Stack trace:",
                                        r"panicked at", r"^goroutine \d+ \[")]


def behaviour(broker, vhost, worker, tasks):
    """What ``worker`` is doing, in the words a finding pins (docs/conformance.md): how it exited
    (its code, the signal, a traceback or none), or that it runs and what the broker lists of it
    (connections, consumers); and how many of ``tasks`` it finished."""
    finished = f"having finished {len(set(tasks) & set(worker.finished()))} of {len(tasks)} task(s)"
    code = worker.process.poll()
    if code is not None:
        how = f"exited with code {code}" + (f" ({signal.Signals(-code).name})" if code < 0 else "")
        trace = any(marker.search(line) for marker in STACK_TRACE for line in [*worker.output_lines(), *worker.errors])
        return f"{how}, {'with' if trace else 'without'} a stack trace, {finished}"
    mine = {c["name"] for c in worker_connections(broker, vhost, worker.name)}
    consumers = sum(c in mine for c in consumer_connections(broker, vhost))
    if not consumers:
        return (f"keeps running, consuming nothing (the broker lists {len(mine)} connection(s) of it "
                f"and no consumer), {finished}")
    return f"keeps running, with {consumers} consumer(s) on {len(mine)} connection(s), {finished}"


def start_waiting(workers, names, *options):
    for name in names:
        workers.start(name, *options).wait_consuming(DEADLINE)
        workers.declared.mark()                 # consuming: its queue's declaration was answered


@given(parsers.re(r'workers (?P<names>.+) are waiting for tasks, with no prefetch limit'))
def _(workers, names):
    start_waiting(workers, quoted(names), "--prefetch", "0")


@given(parsers.re(r'workers (?P<names>.+) are waiting for tasks, one at a time'))
def _(workers, names):
    start_waiting(workers, quoted(names), "--prefetch", "1")


@given(parsers.re(r"workers (?P<names>.+) are waiting for tasks, at their client's default credit"))
def _(workers, names):
    """No link credit of their own: their AMQP 1.0 client's default (a contract flag; the
    project's worker, an AMQP 0-9-1 one, has none: its default prefetch is the tutorial's 1)."""
    start_waiting(workers, quoted(names), "--client-prefetch")


@given(parsers.parse('worker "{name}" is waiting for tasks, without reconnecting'))
def _(workers, name):
    start_waiting(workers, [name], "--no-reconnect")


@given(parsers.parse('worker "{name}" is waiting for tasks, failing on any task that mentions poison'))
def _(workers, name):
    start_waiting(workers, [name], "--handler", POISON_HANDLER)


#: How a worker settles a failed task, as the scenarios say it -> the contract's outcome
#: (WORKER_SETTLE_FAILED; features/settlement).
SETTLE_FAILED = {"releasing": "released", "failing the delivery of": "modified", "rejecting": "rejected"}


@given(parsers.re(r'worker "(?P<name>[^"]+)" is waiting for tasks, '
                  r'(?P<how>releasing|failing the delivery of|rejecting) any task that mentions poison$'))
def _(workers, name, how):
    """Fails as "failing on any task that mentions poison" does, and settles the task with that
    AMQP 1.0 outcome: released; modified with delivery-failed; rejected."""
    start_waiting(workers, [name], "--handler", POISON_HANDLER, "--settle-failed", SETTLE_FAILED[how])


@given(parsers.re(r'worker "(?P<name>[^"]+)" (?:is waiting for tasks|joins them)$'))
def _(workers, name):
    """A worker with the same prefetch as the scenario's first worker (if any)."""
    options = next(iter(workers)).options if workers.workers else []
    prefetch = options[options.index("--prefetch"):][:2] if "--prefetch" in options else []
    start_waiting(workers, [name], *prefetch)


def short_heartbeat(impl):
    """A short heartbeat, in seconds: 1 for the project's worker; for another implementation, the
    shortest its manifest says it works with (``heartbeat``)."""
    return 1 if impl is None else impl.heartbeat


@given(parsers.re(r'worker "(?P<name>[^"]+)"(?: with (?:a (?P<heartbeat>\d+) second|(?P<short>a short)) heartbeat)?'
                  r'(?:, asking for a consumer timeout of (?P<asked>\d+) seconds,)? is '
                  r'(?P<what>working on a long task|working on a task of (?P<seconds>\d+) seconds|'
                  r'working on a task of (?P<beats>\d+) heartbeats|busy with a task that outlasts the scenario)'
                  r'(?P<auto>, with automatic acknowledgment)?$'),
       target_fixture="long_task")
def _(request, broker, vhost, workers, send, worker_under_test, name, heartbeat, short, asked, what, seconds, beats,
      auto):
    """With a heartbeat, the broker's list of the worker's connections as the task begins is
    kept (``connections_at_start``: name -> negotiated heartbeat), for a Then to compare."""
    if short:
        heartbeat = str(short_heartbeat(worker_under_test))
    if beats:
        seconds = str(int(beats) * int(heartbeat))
    options = (["--auto-ack"] if auto else []) + (["--heartbeat", heartbeat] if heartbeat else [])
    options += ["--consumer-timeout", asked] if asked else []
    starting = time.monotonic()
    worker = workers.start(name, *options)
    worker.wait_consuming(DEADLINE)
    if seconds:
        task = f"task of {seconds} seconds" + "." * round(int(seconds) / SECONDS_PER_DOT)
    else:
        started_in = time.monotonic() - starting
        task = ENDLESS_TASK if not what.startswith("working") else (
            long_task_for(started_in) if another_worker_follows(request, name) else LONG_TASK)
    workers.declared.mark()
    send([task])
    worker.wait_received(task, DEADLINE)
    if heartbeat:                           # none, if the worker lost them all meanwhile
        listed = {}

        def listing():
            # Until the list holds the connection of its consumer (the management API lists a
            # framework's several connections one by one).
            consuming = set(consumer_connections(broker, vhost))
            listed.update({c["name"]: c["heartbeat"] for c in worker_connections(broker, vhost, name)})
            return consuming & listed.keys() or worker.process.poll() is not None
        wait_until(listing, DEADLINE, f"the broker to list the connection of worker {name}'s consumer")
        worker.connections_at_start = listed
    return task


def another_worker_follows(request, name):
    """Whether the scenario starts another worker after worker ``name``'s long task began (which
    must then outlast that worker's start)."""
    scenario = request.node.stash.get(SCENARIO, None)
    steps = [step.name for step in getattr(scenario, "steps", [])]
    mine = next((i for i, step in enumerate(steps)
                 if step.startswith(f'worker "{name}"') and "long task" in step), None)
    later = re.compile(r'^workers? "(?!' + re.escape(name) + r'")[^"]+"(?: and "[^"]+")* (?:is|are) waiting for tasks')
    return mine is not None and any(later.match(step) for step in steps[mine + 1:])


def long_task_for(start_seconds):
    """The long task of a scenario that starts another worker while it runs: LONG_TASK, or a
    longer one for a worker slow to start, or it is over before that worker is up and the fault
    the scenario puts in its middle (a Spring Boot worker takes 5-20 s to start on this machine's
    two loaded cores, more than LONG_TASK's 8 s): three times the first worker's start, and 10 s.
    Only there: the other scenarios keep the 8 s task (a framework's own shutdown timeout, say,
    is measured against the same task for every worker)."""
    dots = max(LONG_TASK.count("."), math.ceil((3 * start_seconds + 10) / SECONDS_PER_DOT))
    return "long task" + "." * dots


def task_seconds(task):
    """How long the work of ``task`` takes (its dots), for a deadline that waits on it being done."""
    return task.count(".") * SECONDS_PER_DOT


def struck_in_the_middle(worker, fault):
    """After a kill or a freeze (the worker writes no more events): it was working on a task
    (one it received and had not finished), as the scenario's fault needs."""
    received = worker.received()
    if received and all(task in worker.finished() for task in received):
        raise FaultNotObserved(f"worker {worker.name} was {fault} after it had finished every task it "
                               f"received ({len(received)}), not in the middle of one")


@when(parsers.parse('"{name}" is killed'))
def _(workers, name):
    workers[name].kill()
    struck_in_the_middle(workers[name], "killed")


@when(parsers.parse('"{name}" is frozen'))
def _(workers, name):
    workers[name].signal(signal.SIGSTOP)
    struck_in_the_middle(workers[name], "frozen")


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
def _(broker, vhost, workers, name, long_task):
    worker = workers[name]
    try:
        worker.wait_exit(DEADLINE + task_seconds(long_task))
    except TimeoutError:
        pass
    described = behaviour(broker, vhost, worker, [long_task])
    assert described == "exited with code 0, without a stack trace, having finished 1 of 1 task(s)", (
        f"{name} {described}; stderr {worker.errors[-3:]!r}")
    assert worker.received() == [long_task], f"{name} took {worker.received()!r}, not only the long task"


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
def _(broker, vhost, workers, name):
    worker = workers[name]
    assert worker.process.poll() is None, (f"{name} {behaviour(broker, vhost, worker, [])}; "
                                           f"stderr {worker.errors[-3:]!r}")


@then(parsers.parse('"{name}" does the long task and the {count:d} tasks, each at least once'))
def _(broker, vhost, workers, name, count, long_task, sent_tasks):
    worker = workers[name]
    expected = {long_task, *sent_tasks}
    assert len(expected) == count + 1, expected
    # Each task finished (its Received line followed by its Done line), as a set: a task done
    # twice must not stand in for one never done.
    try:
        worker.wait_for(lambda _l: expected <= set(worker.finished()), DEADLINE + task_seconds(long_task),
                        f"each of {sorted(expected)!r} finished")
    except (TimeoutError, WorkerExited):
        raise AssertionError(f"{name} {behaviour(broker, vhost, worker, sorted(expected))}; "
                             f"stderr {worker.errors[-3:]!r}") from None
    assert set(worker.received()) == expected, worker.received()


#: Heartbeats to keep watching after the task is done: a connection the broker dropped during
#: the task shows only then (the ack fails, the worker reconnects, the task comes back).
HEARTBEATS_WATCHED_AFTER = 5


@then(parsers.parse('"{name}" does that task once, on the same connection'))
def _(broker, vhost, workers, name, long_task):
    """Once: one delivery, never redelivered. The same connection: the worker consumed once, and
    the connection that carries its consumer is one the broker listed as the task began (the
    project's worker has one; a framework may open more, and close some), with the heartbeat asked
    for (a heartbeat left at the broker's 60 s would never be missed during the task)."""
    worker = workers[name]
    heartbeat = int(worker.option("--heartbeat"))
    try:
        worker.wait_done(1, DEADLINE)
        worker.wait_for(lambda _l: worker.consuming_count() > 1 or len(worker.deliveries()) > 1,
                        HEARTBEATS_WATCHED_AFTER * heartbeat, "a second connection or a second delivery")
    except (TimeoutError, WorkerExited):
        pass                                # what is expected: neither came; what came is told below
    assert worker.process.poll() is None, f"{name} {behaviour(broker, vhost, worker, [long_task])}; " \
                                          f"stderr {worker.errors[-3:]!r}"
    assert worker.done_count() >= 1, f"{name} {behaviour(broker, vhost, worker, [long_task])}"
    assert worker.deliveries() == [(long_task, False)], f"{name} was given {worker.deliveries()!r}: a second delivery"
    assert worker.consuming_count() == 1, f"{name} started consuming {worker.consuming_count()} times: it reconnected"
    # The connections that carry its consumer (a framework may keep others, for control or
    # events, with heartbeats of their own).
    consuming = set(consumer_connections(broker, vhost))
    mine = {c["name"]: c["heartbeat"] for c in worker_connections(broker, vhost, name) if c["name"] in consuming}
    assert mine and mine.keys() <= worker.connections_at_start.keys() and set(mine.values()) == {heartbeat}, (
        f"the broker lists {mine} for the consumer of worker {name}; as the task began, it listed "
        f"{worker.connections_at_start} for the worker")


@then(parsers.parse('"{name}" is given that task, flagged as redelivered'))
def _(broker, workers, name, long_task):
    """Looked for during four consumer timeouts and a margin: the broker acts within a check
    (half a second here) of the timeout."""
    worker = workers[name]
    window = 4 * broker.consumer_timeout + 10
    try:
        worker.wait_for(lambda _l: (long_task, True) in worker.deliveries(), window, "the task, redelivered")
    except TimeoutError:
        raise AssertionError(f"{name} was not given the task within {window} s "
                             f"(deliveries {worker.deliveries()})") from None


@then(parsers.parse('"{name}" consumes again, and keeps running'))
def _(broker, vhost, workers, name, long_task):
    """Consumes again: it starts consuming a second time (once the broker closed its channel, or
    cancelled its consumer) within a deadline of its task's redelivery; keeps running: its
    process has not exited by then. A worker that exits, or runs on consuming nothing, is
    described in the words findings pin (behaviour)."""
    worker = workers[name]
    try:
        worker.wait_for(lambda _l: worker.consuming_count() >= 2 or worker.process.poll() is not None,
                        DEADLINE, "consuming again")
    except TimeoutError:
        pass                                # described below
    assert worker.consuming_count() >= 2 and worker.process.poll() is None, (
        f"{name} {behaviour(broker, vhost, worker, [long_task])}, having started consuming "
        f"{worker.consuming_count()} time(s); stderr {worker.errors[-3:]!r}")


@then(parsers.parse('"{name}" does that task once, and keeps its one subscription'))
def _(broker, workers, name, long_task):
    """Watched for two consumer timeouts after the task is done: the broker, had it taken the
    task back (closing the channel, cancelling the consumer), would have acted by then, and the
    worker would have been given the task again or consumed a second time."""
    worker = workers[name]
    worker.wait_done(1, DEADLINE)
    try:
        worker.wait_for(lambda _l: (worker.consuming_count() > 1 or len(worker.deliveries()) > 1
                                    or worker.process.poll() is not None),
                        2 * broker.consumer_timeout, "a second subscription, a second delivery or an exit")
    except TimeoutError:
        pass                                # what is expected: none came
    # One assertion for the whole sentence: a worker whose task was taken back has consumed
    # again long before the task is done, while the task's second delivery shows only once the
    # first run has ended, a moment after this step may look (seen under load, 2026-12-06).
    deliveries, consumed, code = worker.deliveries(), worker.consuming_count(), worker.process.poll()
    assert deliveries == [(long_task, False)] and consumed == 1 and code is None, (
        f"{name} started consuming {consumed} time(s), was given {deliveries} (task, redelivered), "
        f"exit code {code}; stderr {worker.errors[-3:]!r}")


@then(parsers.re(r'"(?P<name>[^"]+)" tries "(?P<poison>[^"]+)" (?P<times>\d+) times and does (?P<tasks>.+)$'))
def _(workers, broker, vhost, queue_spec, worker_under_test, name, poison, times, tasks):
    """The tries are counted once the task has left for the dead-letter queue (no try can follow),
    or once they are ten times too many (a queue without a limit loops for ever: no need to wait
    out the deadline to see that)."""
    worker = workers[name]
    dead = dead_letter_queue(queue_spec, worker_under_test)
    good = quoted(tasks)
    too_many = 10 * int(times)
    try:
        wait_until(lambda: broker.message_count(dead, vhost)
                   or worker.received().count(poison) > too_many, DEADLINE,
                   f"{poison!r} in the dead-letter queue {dead!r}")
    except TimeoutError:
        # What happened to it instead, in words of its own (a finding pins them).
        raise AssertionError(
            f"{poison!r} was tried {worker.received().count(poison)} time(s) in {DEADLINE} s, and is not in "
            f"the dead-letter queue {dead!r}; {queue_spec.name!r} holds "
            f"{queue_holds(broker, vhost, queue_spec.name)}; {name} {behaviour(broker, vhost, worker, good)}"
        ) from None
    tries = worker.received().count(poison)
    assert tries <= too_many, f"{poison!r} was tried {tries} times and not dead-lettered: it loops"
    worker.wait_for(lambda _l: set(good) <= set(worker.finished()), DEADLINE, f"{good!r} done")
    assert tries == int(times), f"{poison!r} was tried {tries} times, then dead-lettered"
    assert sorted(t for t in worker.received() if t != poison) == sorted(good)
    assert worker.process.poll() is None, worker.errors


def given_until_dead_lettered(broker, vhost, queue_spec, worker_under_test, worker, task, enough):
    """How often ``worker`` was given ``task`` and what its dead-letter queue holds (a passive
    declaration: exact), once the task is there (no delivery can follow), or it came ``enough``
    times, or the worker exited, or at the deadline; and what that is, in words. Waited on as the
    poison rule's Then does: no broker call under the worker's lock."""
    dead = dead_letter_queue(queue_spec, worker_under_test)
    try:
        wait_until(lambda: broker.message_count(dead, vhost) or worker.received().count(task) >= enough
                   or worker.process.poll() is not None, DEADLINE, f"{task!r} in {dead!r} or given {enough} times")
    except TimeoutError:
        pass                                # described below
    given, held = worker.received().count(task), broker.message_count(dead, vhost)
    said = (f"{task!r} was given {given} time(s); the dead-letter queue {dead!r} holds {held}; "
            f"{queue_spec.name!r} holds {queue_holds(broker, vhost, queue_spec.name)}")
    if held == 1:                              # what the queue counted of it, as it dead-lettered it
        headers = held_tasks(broker, vhost, dead)[0][1]
        said += (f"; dead-lettered with x-delivery-count {headers.get('x-delivery-count')}, "
                 f"x-acquired-count {headers.get('x-acquired-count')}")
    if worker.process.poll() is not None:      # how it exited (a running one: the queue's consumers say it)
        said += f"; {worker.name} {behaviour(broker, vhost, worker, [])}"
    return given, held, said


@then(parsers.re(r'"(?P<name>[^"]+)" is given "(?P<task>[^"]+)" (?P<times>\d+ times|once)$'))
def _(workers, broker, vhost, queue_spec, worker_under_test, name, task, times):
    """Counted once the task is in the dead-letter queue (no delivery can follow), or once it
    came ten times too often (a task the queue does not count loops: no need to wait out the
    deadline to see that)."""
    expected = 1 if times == "once" else int(times.split()[0])
    given, held, said = given_until_dead_lettered(broker, vhost, queue_spec, worker_under_test, workers[name],
                                                  task, 10 * expected + 1)
    assert (given, held) == (expected, 1), said


@then(parsers.re(r'"(?P<name>[^"]+)" is given "(?P<task>[^"]+)" again and again, past the delivery limit, '
                 r'and it is not dead-lettered$'))
def _(workers, broker, vhost, queue_spec, worker_under_test, name, task):
    """Past the limit: ten times the deliveries a counted task gets (the limit, and one more),
    looked for until then; a task the queue counted was dead-lettered long before, and its
    dead-letter queue holds it."""
    enough = 10 * (queue_spec.delivery_limit + 1)
    given, held, said = given_until_dead_lettered(broker, vhost, queue_spec, worker_under_test, workers[name],
                                                  task, enough)
    assert given >= enough and held == 0, said


@then(parsers.parse('"{name}" does the long task, flagged as redelivered'))
def _(broker, vhost, queue_spec, workers, name, long_task):
    worker = workers[name]
    try:
        worker.wait_for(lambda _l: (long_task, True) in worker.deliveries(), DEADLINE,
                        "the long task, redelivered")
    except TimeoutError:
        raise AssertionError(
            f"{name} was given {len(worker.deliveries())} task(s) in {DEADLINE} s, not the long task again; "
            f"{queue_spec.name!r} holds {queue_holds(broker, vhost, queue_spec.name)}") from None
    worker.wait_done(1, DEADLINE + task_seconds(long_task))
    assert worker.deliveries() == [(long_task, True)]


@when(parsers.parse('worker "{name}" starts, and is turned away'))
def _(workers, name):
    """Started, and refused a consumer by the broker at least once: a line of its log with the
    broker's 541 (a worker that gives up on it says 541 too, as it exits)."""
    worker = workers.start(name)
    worker.wait_for(lambda _l: any("541" in line for line in worker.errors), DEADLINE,
                    "the broker's 541 INTERNAL_ERROR on its consumer")


@then(parsers.re(r'"(?P<name>[^"]+)" (?P<kept>kept trying, and )?does "(?P<task>[^"]+)" and nothing else'))
def _(broker, vhost, queue_spec, workers, name, kept, task):
    """Nothing else, until there is nothing left: the queue is empty (exactly, and holding
    still) and the worker has done all it received. ``kept trying``: it did not exit since."""
    worker = workers[name]
    try:
        worker.wait_received(task, DEADLINE)
    except WorkerExited:
        if not kept:
            raise
        raise AssertionError(f'"{name}" did not keep trying: it exited with code {worker.process.returncode}, '
                             f"saying {worker.errors[-1:]!r}") from None
    wait_counts(broker, vhost, queue_spec.name, (0, 0, None))
    worker.wait_for(lambda _l: worker.done_count() == len(worker.received()), DEADLINE, "every task it took done")
    assert worker.received() == [task], worker.received()


@when("a worker takes the queue", target_fixture="survivor")
def _(broker, vhost, queue_spec, workers):
    """A fresh worker (prefetch 100: some scenarios leave thousands of tasks) on the task queue;
    ``queue_at``: the broker, vhost and queue it works on (where its tasks are counted)."""
    survivor = workers.start("survivor", "--prefetch", "100")
    survivor.queue_at = (broker, vhost, queue_spec.name)
    return survivor


def unaccounted(broker, vhost, queue, worker, total):
    """(how many of ``total`` tasks are nowhere, the queue's ready count): nowhere is neither
    ready in the queue (exact count) nor received by the worker nor possibly held by it
    unprinted (up to its prefetch). None when the queue does not answer within a few seconds
    (it is still recovering)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        depth = pool.submit(broker.depth, queue, vhost).result(timeout=5)
    except concurrent.futures.TimeoutError:
        return None
    finally:
        pool.shutdown(wait=False)          # a call that hangs ends with the scenario's broker
    ready = depth[0] if depth else 0
    held = int(worker.option("--prefetch") or 1)
    return max(0, total - ready - len(set(worker.received())) - held), ready


@then(parsers.re(r"the worker does all (?P<count>\d+) tasks"))
def _(survivor, sent_tasks, count):
    """Every task is either done, still in the queue or on its way to the worker: a task that
    is none of these is lost, and the step says so at once instead of waiting out its deadline."""
    assert len(sent_tasks) == int(count)
    worker = survivor
    expected = sorted(sent_tasks)

    def progress():
        if worker.done_count() >= len(sent_tasks):
            return True
        target, vhost, queue = worker.queue_at
        missing, ready = unaccounted(target, vhost, queue, worker, len(sent_tasks)) or (0, None)
        assert not missing, (f"{missing} of the {len(sent_tasks)} confirmed tasks are unaccounted for: "
                             f"the queue holds {ready} ready and the worker received {len(set(worker.received()))}")
        return False
    wait_until(progress, DEADLINE, f"the worker to do all {len(sent_tasks)} tasks; it did {worker.done_count()}",
               interval=0.5)
    assert sorted(worker.received()) == expected


@given(parsers.parse('worker "{name}" is waiting for tasks, {prefetch:d} at a time'))
def _(workers, name, prefetch):
    """A quick worker (a twentieth of a second per dot) that may hold ``prefetch`` tasks."""
    start_waiting(workers, [name], "--prefetch", str(prefetch), "--seconds-per-dot", "0.05")


@when(parsers.parse('"{name}" is killed after doing {count:d} of them'))
def _(workers, name, count):
    """Killed in the middle of a task, once it has done ``count``: it is frozen, and killed only
    if it holds a task it has not finished; if not, it is let go until it receives the next one,
    and frozen again. What the kill costs then does not depend on where between two short tasks
    it happens to land."""
    worker = workers[name]
    worker.wait_done(count, DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while True:
        worker.signal(signal.SIGSTOP)
        if collections.Counter(worker.received()) - collections.Counter(worker.finished()):
            break                       # a task received and not finished: in hand
        worker.signal(signal.SIGCONT)
        received = len(worker.received())
        worker.wait_for(lambda _l, n=received: len(worker.received()) > n, max(0.0, deadline - time.monotonic()),
                        "the next task, to be killed in the middle of it")
    worker.kill()


@when(parsers.parse('worker "{name}" takes the queue'))
def _(broker, vhost, workers, name):
    """Started, and consuming within the deadline; a worker that is not is described by the
    broker's view of its connections (their states: "blocked" by a resource alarm...) and its
    last line."""
    worker = workers.start(name)
    try:
        worker.wait_consuming(DEADLINE)
    except TimeoutError:
        states = sorted(str(c["state"]) for c in worker_connections(broker, vhost, name))
        raise AssertionError(f"{name} did not start consuming in {DEADLINE} s: the broker lists "
                             f"{len(states)} connection(s) of it, {', '.join(states) or 'none'}; its last line: "
                             f"{[*worker.output_lines(), *worker.errors][-1:]!r}") from None
    workers.declared.mark()


@then("every task is done at least once")
def _(workers, sent_tasks):
    def finished():
        return {t for w in workers for t in w.finished()}
    try:
        wait_until(lambda: set(sent_tasks) <= finished(), DEADLINE, "every task done", interval=0.5)
    except TimeoutError:
        missing = sorted(set(sent_tasks) - finished())
        raise AssertionError(f"{len(missing)} of the {len(sent_tasks)} tasks were never done, e.g. "
                             f"{missing[:5]}") from None


@given(parsers.parse('worker "{name}" is working on a long task, with {count:d} more tasks sent to {whom}'),
       target_fixture="long_task")
def _(broker, vhost, queue_spec, workers, send, name, count, whom):
    """The worker may hold them all (its prefetch is one more than they are): the broker shows
    them unacknowledged, with nothing ready. They are as long as the long task: a worker that
    runs every task it holds at once (amqplib's design) has them in hand, not done, when it is
    asked to stop, and a worker that works on one at a time has not started them."""
    worker = workers.start(name, "--prefetch", str(count + 1))
    worker.wait_consuming(DEADLINE)
    workers.declared.mark()
    send([LONG_TASK])
    worker.wait_received(LONG_TASK, DEADLINE)
    send([f"task {n}" + LONG_TASK[len("long task"):] for n in range(1, count + 1)])
    wait_counts(broker, vhost, queue_spec.name, (0, count + 1, 1), hold=0)
    return LONG_TASK


class Restarted:
    """A worker started again each time it dies, as systemd or a container's restart policy
    would, at most RESTARTS times: its incarnations are workers NAME, NAME-2, NAME-3..., each on
    the pool. ``deaths``: how many were killed (by a signal); any other exit is ``errors``."""

    def __init__(self, pool, name, *options):
        self.pool, self.name, self.options = pool, name, options
        self.deaths = 0
        self.errors: list[str] = []
        self.slowest_start = 0.0           # seconds, the longest an incarnation took to consume
        self.seen_running: tuple | None = None   # (incarnation, time.monotonic() its check began)
        self.incarnations = [self._start(name)]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name=f"restarting-{name}", daemon=True)
        self.thread.start()

    def _start(self, name):
        starting = time.monotonic()
        worker = self.pool.start(name, *self.options)
        try:
            worker.wait_consuming(DEADLINE)
            self.slowest_start = max(self.slowest_start, time.monotonic() - starting)
        except (WorkerExited, WorkerDidNotStart):
            # Killed by a task before it said it was consuming (amqplib runs the first delivery's
            # callback before the consume call's own continuation): a death like the others.
            if not (worker.process.returncode is not None and worker.process.returncode < 0 and worker.received()):
                raise
        return worker

    def _watch(self):
        while not self.stopping.is_set():
            current = self.incarnations[-1]
            began = time.monotonic()
            try:
                code = current.process.wait(timeout=0.2)    # bounded: the stop event is read again
            except subprocess.TimeoutExpired:               # still running
                self.seen_running = (current, began)
                continue
            if code is not None and code < 0:
                self.deaths += 1
            else:
                self.errors.append(f"{current.name} exited with code {code}: {current.errors[-3:]}")
            if self.deaths + len(self.errors) >= RESTARTS or self.stopping.is_set():
                return
            try:
                self.incarnations.append(self._start(f"{self.name}-{len(self.incarnations) + 1}"))
            except Exception as exc:   # reported by the Then steps
                self.errors.append(f"restart failed: {exc}")
                return

    @property
    def done(self):
        return [task for w in self.incarnations for task in w.finished()]

    def running_since(self, moment):
        """The latest incarnation was seen running by a check of the watcher's that began after
        ``moment`` (time.monotonic()), so every death before ``moment`` is counted. Asked of the
        watcher, the one thread that waits on the processes: Popen.poll() from another thread
        answers None, "we know nothing yet", while the watcher holds Popen's waitpid lock (CPython's
        subprocess), which once let a dead worker pass for running (CI, 2026-12-07)."""
        seen = self.seen_running
        return seen is not None and seen[0] is self.incarnations[-1] and seen[1] >= moment

    def budget(self):
        """Seconds a Then gives the loop to run its course: the deadline, and every restart at
        the slowest start seen (a Spring Boot worker takes 5-12 s to start here: in the bare
        deadline a loop would stop at five deaths for want of time, not of restarts)."""
        return DEADLINE + RESTARTS * self.slowest_start

    def stop(self):
        self.stopping.set()
        self.thread.join(DEADLINE)


@pytest.fixture
def restarting(workers):
    """The scenario's restarted workers; they stop being restarted before the pool closes."""
    started = []
    yield started
    for r in started:
        r.stop()


@given(parsers.parse('worker "{name}" is restarted whenever it dies, and dies on any task that mentions crash'),
       target_fixture="restarted")
def _(workers, restarting, name):
    restarted = Restarted(workers, name, "--handler", CRASH_HANDLER)
    restarting.append(restarted)
    workers.declared.mark()
    return restarted


def crash_loop_said(broker, vhost, queue_spec, restarted, task, deaths, dead=None):
    """What a crash loop has come to, in the words a finding pins: the deaths (``deaths``, as the
    step read them) and whether the restarts ran out, how often the task was received (a worker
    whose pool runs it again in a new child process dies less often than it receives it), any
    other exit, what the task queue and its dead-letter queue hold."""
    bound = f" ({RESTARTS} starts, the bound)" if len(restarted.incarnations) >= RESTARTS else ""
    received = sum(w.received().count(task) for w in restarted.incarnations)
    said = f"{task!r} killed {deaths} worker(s) in turn{bound}, received {received} time(s); " \
           f"{queue_spec.name!r} holds {queue_holds(broker, vhost, queue_spec.name)}"
    if dead:
        said += f", {dead!r} holds {queue_holds(broker, vhost, dead)}"
    return said + (f"; other exits: {restarted.errors}" if restarted.errors else "")


@then(parsers.re(r'"(?P<task>[^"]+)" kills (?P<count>\d+) workers in turn, and the others do (?P<tasks>.+)$'))
def _(broker, vhost, queue_spec, worker_under_test, restarted, task, count, tasks):
    """Until the task is dead-lettered (then no worker can die of it any more) or the restarts
    run out: exactly ``count`` deaths, and the other tasks each done once."""
    dead = dead_letter_queue(queue_spec, worker_under_test)

    def dead_lettered():
        counts = exact_counts(broker, vhost, dead)
        return counts is not None and counts[0] == 1
    # Dead-lettered, then the latest incarnation seen running after that: every death before it
    # is counted (the worker a task kills dies before the broker dead-letters the task, and the
    # watcher counts a death before it starts the next incarnation).
    gone_at = []

    def settled():
        if not gone_at and dead_lettered():
            gone_at.append(time.monotonic())
        return bool(gone_at) and restarted.running_since(gone_at[0])
    try:
        wait_until(lambda: settled() or not restarted.thread.is_alive(), restarted.budget(),
                   f"{task!r} dead-lettered to {dead!r} and a worker running, or {RESTARTS} restarts")
    except TimeoutError:
        pass                                                    # described below
    deaths, errors, gone = restarted.deaths, list(restarted.errors), dead_lettered()
    said = crash_loop_said(broker, vhost, queue_spec, restarted, task, deaths, dead)
    assert not errors and gone and deaths == int(count), said
    expected = quoted(tasks)
    wait_until(lambda: len(restarted.done) >= len(expected), DEADLINE, f"{expected} done")
    assert sorted(restarted.done) == sorted(expected), restarted.done


@then(parsers.re(r'"(?P<task>[^"]+)" kills (?P<count>\d+) workers in turn, and is still in the queue$'))
def _(broker, vhost, queue_spec, worker_under_test, restarted, task, count):
    """``count`` deaths, each worker killed by the task (the last one's death leaves it in the queue):
    nothing stopped the loop; the restarts are then stopped. The task is the one message left,
    in the format it was sent in (is_task)."""
    try:
        wait_until(lambda: restarted.deaths >= int(count) or not restarted.thread.is_alive(), restarted.budget(),
                   f"{count} workers killed by {task!r}")
    except TimeoutError:
        pass                                                    # described below
    restarted.stop()
    deaths, errors = restarted.deaths, list(restarted.errors)
    said = crash_loop_said(broker, vhost, queue_spec, restarted, task, deaths)
    assert not errors and deaths >= int(count), said
    assert all(w.received() == [task] for w in restarted.incarnations[:int(count)]), (
        [w.received() for w in restarted.incarnations])
    wait_counts(broker, vhost, queue_spec.name, (1, 0, None))
    held = [body for body, _ in held_tasks(broker, vhost, queue_spec.name)]
    assert len(held) == 1 and is_task(held[0], task, worker_under_test), held
