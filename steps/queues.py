"""Queues: declarations, what they hold, and the status command's view of them."""

import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse

import pika
import pytest
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE, quoted
from workqueue import QueueSpec
from workqueue.status import UNKNOWN
from workqueue.testing import wait_until
from workqueue.testing.processes import child_env, note_crashes


@pytest.fixture
def queue_spec():
    """The scenario's task queue; a Given step may make it a quorum queue, add a limit..."""
    return QueueSpec()


def dead_letter_queue(spec, impl):
    """The queue ``impl`` (the worker under test; None: the project's) dead-letters ``spec``'s
    tasks to: the scenario's, unless a framework that declares its queue its own way names its
    own (its manifest's ``dead_letter``: dramatiq's is the queue's name and ".XQ")."""
    own = getattr(impl, "dead_letter", None)
    return own.replace("{queue}", spec.name) if spec.dead_letter and own else spec.dead_letter


@pytest.fixture
def framework_queue(broker, vhost, queue_spec, worker_under_test):
    """For a framework that declares its queue its own way (queue profile "own"), the queue the
    scenario asks for, set as an operator sets it for such a framework, before anything is
    declared: a quorum queue by the virtual host's default queue type (the vhost, still empty,
    is made again with it), a delivery limit by a policy. Its workers and its adapter need it."""
    impl = worker_under_test
    if impl is None or getattr(impl, "queue", "contract") != "own":
        return
    if queue_spec.queue_type == "quorum":
        broker.management.delete_vhost(vhost)
        broker.management.create_vhost(vhost, default_queue_type="quorum")
    if queue_spec.delivery_limit is not None:
        broker.management.set_policy(vhost, "delivery-limit", f"^{re.escape(queue_spec.name)}$",
                                     {"delivery-limit": queue_spec.delivery_limit})


def queue_options(spec):
    """The worker / new_task command-line options that declare ``spec``."""
    options = ["--queue", spec.name, "--queue-type", spec.queue_type]
    if not spec.durable:
        options.append("--transient")
    if spec.delivery_limit is not None:
        options += ["--delivery-limit", str(spec.delivery_limit)]
    if spec.dead_letter:
        options += ["--dead-letter", spec.dead_letter]
    if spec.max_length is not None:
        options += ["--max-length", str(spec.max_length)]
    if spec.overflow is not None:
        options += ["--overflow", spec.overflow]
    if spec.consumer_timeout is not None:
        options += ["--queue-consumer-timeout", str(spec.consumer_timeout)]
    return options


@given("the task queue is a quorum queue", target_fixture="queue_spec")
def _():
    return QueueSpec(queue_type="quorum")


@given(parsers.re(r"a (?P<kind>classic|quorum) task queue$"), target_fixture="queue_spec")
def _(kind):
    return QueueSpec(queue_type=kind)


@given("the task queue has been declared a few seconds ago")
def _(broker, vhost, queue_spec, declared):
    from workqueue import Producer
    with Producer(broker.params(vhost), queue_spec):
        declared.mark()                         # connecting declares the queue
    declared.wait_settled()


@given("the task queue exists, its replica stopped")
def _(broker, vhost, queue_spec, nemesis):
    """A quorum queue as it is between its declaration and the start of its Ra server (as the
    broker lists it: down)."""
    from workqueue import Producer
    with Producer(broker.params(vhost), queue_spec):
        pass                                    # connecting declares the queue
    nemesis(broker).stop_replica(broker, vhost, queue_spec.name)


@when("the task queue's replica starts again")
def _(broker, vhost, queue_spec, nemesis):
    nemesis(broker).start_replica(broker, vhost, queue_spec.name)


@given(parsers.re(r'a (?P<kind>classic|quorum) task queue with a delivery limit of (?P<limit>\d+) and '
                  r'the dead-letter queue "(?P<dead>[^"]+)"'), target_fixture="queue_spec")
def _(kind, limit, dead):
    return QueueSpec(queue_type=kind, delivery_limit=int(limit), dead_letter=dead)


@given(parsers.re(r'a task queue that holds at most (?P<limit>\d+) tasks'
                  r'(?P<refusing> and refuses the rest)?'
                  r'(?:, dropping the oldest to the dead-letter queue "(?P<dead>[^"]+)")?$'),
       target_fixture="queue_spec")
def _(limit, refusing, dead):
    return QueueSpec(max_length=int(limit), overflow="reject-publish" if refusing else None, dead_letter=dead)


@given(parsers.re(r'a (?P<kind>classic|quorum) task queue whose policy sets a consumer timeout of '
                  r'(?P<seconds>\d+) seconds$'), target_fixture="queue_spec")
def _(broker, vhost, kind, seconds):
    """The policy first (as an operator sets it for a queue its workers declare), on the task
    queue alone."""
    spec = QueueSpec(queue_type=kind)
    broker.management.set_policy(vhost, "consumer-timeout", f"^{re.escape(spec.name)}$",
                                 {"consumer-timeout": int(seconds) * 1000})
    return spec


@given(parsers.re(r'a (?P<kind>classic|quorum) task queue declared with a consumer timeout of (?P<seconds>\d+) '
                  r'seconds$'), target_fixture="queue_spec")
def _(kind, seconds):
    """Declared so by its workers (the queue argument x-consumer-timeout)."""
    return QueueSpec(queue_type=kind, consumer_timeout=int(seconds))


def is_task(body, task, impl):
    """Whether a message body the broker holds is ``task``: its text, or, for an implementation
    that sends in a format of its own (through its adapter, ``send``), that format carrying the
    text as one JSON string (NestJS's {"pattern": ..., "data": "..."}, Dramatiq's arguments) or
    as the whole body (Watermill's payload, its own data in headers)."""
    if body == task:
        return True
    return impl is not None and impl.send is not None and json.dumps(task) in body


def held_tasks(broker, vhost, name):
    """[(body, headers)] of the tasks ready in queue ``name``, in queue order. They are read
    without an acknowledgment and go back, in their order, when the connection closes: this only
    looks."""
    conn = pika.BlockingConnection(broker.params(vhost))
    try:
        channel = conn.channel()
        held = []
        while True:
            method, properties, body = channel.basic_get(name, auto_ack=False)
            if method is None:
                break
            held.append((body.decode(errors="replace"), properties.headers or {}))
    finally:
        conn.close()
    return held


def password_of(url):
    """The password in a broker URL the steps built (well-formed: urllib reads it right)."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")


def run_cli(module, *args, url, env=None):
    """Run ``python -m workqueue.<module>`` with WORKQUEUE_URL set; return the CompletedProcess,
    with ``passwords``: the passwords of the broker(s) it was given, which it must never print."""
    run = subprocess.run([sys.executable, "-m", f"workqueue.{module}", *args],
                         env=child_env({**(env or {}), "WORKQUEUE_URL": url}),
                         capture_output=True, text=True, timeout=DEADLINE)
    run.passwords = {password_of(u) for u in url.split()} - {""}
    note_crashes(f"workqueue.{module}", run.stderr)
    return run


def queue_counts(broker, vhost, name):
    """(ready, unacked, consumers) from the management API, or None when there is no such queue;
    a number the API has not reported yet is None (so no wait below takes it for 0)."""
    for row in broker.management.queues(vhost):
        if row["name"] == name:
            return row["messages_ready"], row["messages_unacknowledged"], row["consumers"]
    return None


#: Seconds a queue's counts must hold still before a Then takes them: two samples of the
#: throwaway brokers' management collectors (every second: COMMON_CONF in
#: workqueue/testing/base.py), so a sample that lagged behind the queue is replaced within it.
HOLD_SECONDS = 2.0


def exact_counts(broker, vhost, name):
    """(ready, unacked, consumers): ready and consumers exact (AMQP passive declare), unacked from
    the management API, taken only from a sample that agrees with the exact numbers (an older
    one reads as "unknown"); None when there is no such queue."""
    depth = broker.depth(name, vhost)
    if depth is None:
        return None
    ready, consumers = depth
    stats = queue_counts(broker, vhost, name)
    unacked = stats[1] if stats is not None and (stats[0], stats[2]) == (ready, consumers) else "unknown"
    return ready, unacked, consumers


def _fits(counts, expected):
    """``expected`` with None for "any" (a count the sentence does not name)."""
    return counts is not None and all(e is None or c == e for c, e in zip(counts, expected))


def counts_said(counts):
    """(ready, unacked, consumers) as a finding pins it, or that there is no such queue."""
    return "no such queue" if counts is None else "ready {}, unacked {}, consumers {}".format(*counts)


def queue_holds(broker, vhost, name, patience=2 * HOLD_SECONDS):
    """What queue ``name`` holds now, in counts_said's words (exact_counts). The management API's
    sample lags the queue by up to a statistics interval or more on a busy machine: for up to
    ``patience`` seconds wait for one that agrees, so that a finding pins the count, not the lag;
    then "unknown" stands."""
    seen = [None]

    def known():
        seen[0] = exact_counts(broker, vhost, name)
        return seen[0] is None or seen[0][1] != "unknown"
    try:
        wait_until(known, patience, f"the management API to agree on queue {name!r}")
    except TimeoutError:
        pass                                                    # "unknown", said as such
    return counts_said(seen[0])


def _words(expected):
    return "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"


def wait_counts(broker, vhost, name, expected, hold=HOLD_SECONDS):
    """Wait until the queue shows ``expected`` (ready, unacked, consumers; None: any), then
    check it holds still for ``hold`` seconds: a count passed through on the way is not taken."""
    seen = []
    give_up = time.monotonic() + DEADLINE

    def fits():
        seen[:] = [exact_counts(broker, vhost, name)]
        return _fits(seen[0], expected)

    def wait_fitting():
        try:
            wait_until(fits, max(0.0, give_up - time.monotonic()), f"queue {name!r}")
        except TimeoutError:
            # What was seen last, in words of its own: a finding pins this, never the expected.
            shown = counts_said(seen[0]) if seen else "nothing"
            raise TimeoutError(f"queue {name!r} last showed {shown}; in {DEADLINE:g} s never "
                               f"(ready, unacked, consumers) = {_words(expected)}") from None
    wait_fitting()
    # Held still: every reading within ``hold`` fits. The exact numbers (ready, consumers) must
    # fit at every reading. The unacknowledged count comes from a statistics sample, which lags
    # the queue (a quorum queue reports it at its Ra server's tick, COMMON_APP_ENV): a reading
    # whose exact numbers fit but whose unacknowledged count is "unknown" (the sample lags a
    # change the exact numbers show, such as a consumer gone) or differs says nothing for sure.
    # The fitting reading before it may have been the older sample (0 unacknowledged before a
    # task was delivered, then 1 while the worker ran it: CI, 2026-12-07): the wait for a
    # sample that fits starts again, and then the hold, until DEADLINE, where a count that
    # stays wrong is said as last shown.
    held_until = time.monotonic() + hold
    while time.monotonic() < held_until:
        counts = exact_counts(broker, vhost, name)
        if (counts is not None and not _fits(counts, expected) and _fits(counts, (expected[0], None, expected[2]))
                and time.monotonic() < give_up):
            wait_fitting()
            held_until = time.monotonic() + hold
            continue
        assert _fits(counts, expected), (f"queue {name!r} showed {expected} and then {counts} within "
                                         f"{hold:g} s: it had not settled")
        threading.Event().wait(0.25)


@given(parsers.re(r'a (?P<durability>non-durable|durable) queue "(?P<name>[^"]+)" holding the task '
                  r'"(?P<task>[^"]+)"'))
def _(send, durability, name, task):
    send([task], QueueSpec(name, durable=durability == "durable"))


@when(parsers.re(r'the producer sends "(?P<task>[^"]+)" to "(?P<name>[^"]+)" as a '
                 r'(?P<kind>durable|non-durable|quorum) queue'), target_fixture="producer_run")
def _(amqp_url, task, name, kind):
    # "durable": as the tutorial declared it until 2026, a classic durable queue.
    options = {"durable": ["--queue-type", "classic"], "non-durable": ["--transient"],
               "quorum": ["--queue-type", "quorum"]}[kind]
    return run_cli("new_task", "--queue", name, *options, task, url=amqp_url)


@when(parsers.parse('the producer sends "{task}" with its defaults'), target_fixture="producer_run")
def _(amqp_url, task):
    """``new_task TASK`` and nothing else: the queue task_queue, of the type it exists with."""
    return run_cli("new_task", task, url=amqp_url)


@given(parsers.parse('the producer has sent "{task}" with its defaults'))
def _(amqp_url, task):
    run = run_cli("new_task", task, url=amqp_url)
    assert run.returncode == 0, run.stderr


def assert_one_line_error(run, code, words):
    """Exit ``code``, one line on stderr holding ``words``, no traceback, nothing on stdout, and
    none of the passwords of the broker the command was given (whichever broker that was)."""
    lines = run.stderr.strip().splitlines()
    assert run.returncode == code, (run.returncode, run.stderr)
    assert len(lines) == 1, lines
    assert "Traceback" not in run.stderr
    assert run.stdout == "", run.stdout
    for phrase in words:
        assert phrase in lines[0], f"{phrase!r} is not in the line: {lines[0]}"
    assert run.passwords, "no password to look for"
    for password in run.passwords:
        assert password not in run.stderr + run.stdout, "it printed the broker's password"


@then(parsers.re(r'the producer fails with one line saying (?P<phrases>"[^"]+"(?: and "[^"]+")*)$'))
def _(producer_run, phrases):
    assert_one_line_error(producer_run, 5, quoted(phrases))


@then(parsers.re(r'the producer fails with exit code (?P<code>\d+) and one line saying "(?P<says>[^"]+)"'))
def _(producer_run, code, says):
    assert_one_line_error(producer_run, int(code), [says])


@when(parsers.parse('the producer sends "{task}" to the missing queue "{name}", without declaring it'),
      target_fixture="producer_run")
def _(amqp_url, task, name):
    return run_cli("new_task", "--queue", name, "--no-declare", task, url=amqp_url)


#: Why a task was dead-lettered, as the step says it and as x-death records it.
DEATHS = {"rejected": "rejected", "dropped for the length limit": "maxlen",
          "past its delivery limit": "delivery_limit"}


@then(parsers.re(r'the dead-letter queue "(?P<name>[^"]+)" holds "(?P<task>[^"]+)", '
                 r'(?P<why>rejected|dropped for the length limit|past its delivery limit)$'))
def _(broker, vhost, queue_spec, worker_under_test, name, task, why):
    """Exactly that one task, dead-lettered once, for that reason (the queue named, or the one a
    framework dead-letters to in its stead: dead_letter_queue)."""
    if name == queue_spec.dead_letter:
        name = dead_letter_queue(queue_spec, worker_under_test)
    wait_counts(broker, vhost, name, (1, 0, 0))
    held = held_tasks(broker, vhost, name)
    assert len(held) == 1 and is_task(held[0][0], task, worker_under_test), held
    deaths = held[0][1].get("x-death") or []
    assert [(d["reason"], d["count"]) for d in deaths] == [(DEATHS[why], 1)], deaths


@then(parsers.re(r'the queue "(?P<name>[^"]+)" holds (?P<tasks>".+)$'))
def _(broker, vhost, name, tasks):
    """Exactly those tasks, in that order, and nothing else (the count held still first)."""
    expected = quoted(tasks)
    wait_counts(broker, vhost, name, (len(expected), 0, 0))
    assert [body for body, _ in held_tasks(broker, vhost, name)] == expected


@then(parsers.parse('the producer says "{line}"'))
def _(producer_run, line):
    assert producer_run.returncode == 0, producer_run.stderr
    assert producer_run.stdout.splitlines() == [line]


@then(parsers.re(r'the queue "(?P<name>[^"]+)" (?:still )?holds (?P<count>\d+) tasks?'
                 r'(?: and is (?:(?P<transient>not durable)|a (?P<kind>classic|quorum) queue))?$'))
def _(broker, vhost, name, count, transient, kind):
    wait_counts(broker, vhost, name, (int(count), 0, 0))     # exact, and holding still
    if transient:
        assert broker.management.queue(vhost, name)["durable"] is False
    if kind:
        info = broker.management.queue(vhost, name)
        assert (info["type"], info["durable"]) == (kind, True), (
            f"{name!r} is a {info['type']} queue, durable {info['durable']}")


@then(parsers.parse('the queue "{name}" holds no tasks'))
def _(broker, vhost, name):
    wait_counts(broker, vhost, name, (0, 0, None))


@then(parsers.parse('the queue "{name}" no longer exists'))
def _(broker, vhost, name):
    assert broker.message_count(name, vhost) is None


@then(parsers.re(r'the queue "(?P<name>[^"]+)" shows (?P<ready>\d+) ready, (?P<unacked>\d+) '
                 r'unacknowledged and (?P<consumers>\d+) consumers?'))
def _(broker, vhost, name, ready, unacked, consumers):
    wait_counts(broker, vhost, name, (int(ready), int(unacked), int(consumers)))


def status_rows(amqp_url, broker):
    run = run_cli("status", "--management-url", broker.management_url, url=amqp_url)
    assert run.returncode == 0, run.stderr
    rows = {}
    for line in run.stdout.splitlines()[1:]:
        name, *numbers = line.rsplit(None, 3)
        rows[name.strip()] = tuple(None if n == UNKNOWN else int(n) for n in numbers)   # ? is unknown
    return rows


@then(parsers.re(r'the status command shows "(?P<name>[^"]+)" with (?P<ready>\d+) ready, '
                 r'(?P<unacked>\d+) unacknowledged and (?P<consumers>\d+) consumers?'),
      target_fixture="status_shown")
def _(amqp_url, broker, name, ready, unacked, consumers):
    expected = (int(ready), int(unacked), int(consumers))
    wait_until(lambda: status_rows(amqp_url, broker).get(name) == expected, DEADLINE,
               f"the status command to show {name!r} with {expected}")
    return {name: expected}


@then("rabbitmqctl list_queues shows the same numbers")
def _(broker, vhost, status_shown):
    listed = broker.list_queues(vhost)
    assert {name: listed.get(name) for name in status_shown} == status_shown


@when(parsers.re(r'the status command (?P<action>purges|deletes) "(?P<name>[^"]+)"'))
def _(amqp_url, broker, action, name):
    command = {"purges": "purge", "deletes": "delete"}[action]
    run = run_cli("status", command, name, "--management-url", broker.management_url, url=amqp_url)
    assert run.returncode == 0, run.stderr


@then(parsers.parse('the status command does not list "{name}"'))
def _(amqp_url, broker, name):
    assert name not in status_rows(amqp_url, broker)


@then(parsers.parse('the broker has "{name}" as a quorum queue'))
def _(broker, vhost, name):
    info = broker.management.queue(vhost, name)
    assert info.get("type") == "quorum", f"the broker has {name!r} as a {info.get('type')} queue"
