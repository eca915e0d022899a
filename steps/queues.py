"""Queues: declarations, what they hold, and the status command's view of them."""

import os
import subprocess
import sys

import pika
import pika.exceptions
from pytest_bdd import given, parsers, then, when

from steps import DEADLINE
from workqueue import QueueSpec
from workqueue.testing import wait_until


def run_cli(module, *args, url, env=None):
    """Run ``python -m workqueue.<module>`` with WORKQUEUE_URL set; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", f"workqueue.{module}", *args],
                          env={**os.environ, **(env or {}), "WORKQUEUE_URL": url},
                          capture_output=True, text=True, timeout=DEADLINE)


def queue_counts(broker, vhost, name):
    """(ready, unacked, consumers) from the management API, or None when there is no such queue."""
    for row in broker.management.queues(vhost):
        if row["name"] == name:
            return row["messages_ready"], row["messages_unacknowledged"], row["consumers"]
    return None


def wait_counts(broker, vhost, name, expected):
    wait_until(lambda: queue_counts(broker, vhost, name) == expected, DEADLINE,
               f"queue {name!r} to show (ready, unacked, consumers) = {expected}, "
               f"last seen {queue_counts(broker, vhost, name)}")


def queue_exists(broker, vhost, name):
    conn = pika.BlockingConnection(broker.params(vhost))
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return False
        raise
    finally:
        if conn.is_open:
            conn.close()


@given(parsers.re(r'a (?P<durability>non-durable|durable) queue "(?P<name>[^"]+)" holding the task '
                  r'"(?P<task>[^"]+)"'))
def _(send, durability, name, task):
    send([task], QueueSpec(name, durable=durability == "durable"))


@when(parsers.re(r'the producer sends "(?P<task>[^"]+)" to "(?P<name>[^"]+)" as a '
                 r'(?P<kind>durable|non-durable|quorum) queue'), target_fixture="producer_run")
def _(amqp_url, task, name, kind):
    options = {"durable": [], "non-durable": ["--transient"], "quorum": ["--queue-type", "quorum"]}[kind]
    return run_cli("new_task", "--queue", name, *options, task, url=amqp_url)


@then(parsers.re(r'the producer fails with one line saying (?P<words>.+)$'))
def _(producer_run, broker, words):
    lines = producer_run.stderr.strip().splitlines()
    assert producer_run.returncode == 5, (producer_run.returncode, producer_run.stderr)
    assert len(lines) == 1, lines
    for word in words.split(" and "):
        for part in word.split():
            assert part in lines[0], lines[0]
    assert broker.password not in producer_run.stderr + producer_run.stdout


@then(parsers.parse('the producer says "{line}"'))
def _(producer_run, line):
    assert producer_run.returncode == 0, producer_run.stderr
    assert producer_run.stdout.splitlines() == [line]


@then(parsers.re(r'the queue "(?P<name>[^"]+)" (?:still )?holds (?P<count>\d+) tasks?(?P<transient> and is not durable)?$'))
def _(broker, vhost, name, count, transient):
    wait_counts(broker, vhost, name, (int(count), 0, 0))
    if transient:
        info = broker.management.request("GET", f"/api/queues/{vhost}/{name}")
        assert info["durable"] is False


@then(parsers.parse('the queue "{name}" holds no tasks'))
def _(broker, vhost, name):
    wait_until(lambda: (queue_counts(broker, vhost, name) or (None,))[:2] == (0, 0), DEADLINE,
               f"queue {name!r} to hold no ready or unacknowledged task, "
               f"last seen {queue_counts(broker, vhost, name)}")


@then(parsers.parse('the queue "{name}" no longer exists'))
def _(broker, vhost, name):
    assert not queue_exists(broker, vhost, name)


@then(parsers.re(r'the queue "(?P<name>[^"]+)" shows (?P<ready>\d+) ready, (?P<unacked>\d+) '
                 r'unacknowledged and (?P<consumers>\d+) consumers?'))
def _(broker, vhost, name, ready, unacked, consumers):
    wait_counts(broker, vhost, name, (int(ready), int(unacked), int(consumers)))


def status_rows(amqp_url, broker):
    run = run_cli("status", "--management-url", broker.management_url, url=amqp_url)
    assert run.returncode == 0, run.stderr
    rows = {}
    for line in run.stdout.splitlines()[1:]:
        name, ready, unacked, consumers = line.rsplit(None, 3)
        rows[name.strip()] = (int(ready), int(unacked), int(consumers))
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
