"""The workqueue package against the session's real broker: CLI shape, interop, edge cases."""

import subprocess
import sys
import textwrap

import pika
import pytest

from workqueue import Producer, QueueSpec, TaskNotConfirmed
from workqueue.testing import wait_until
from workqueue.testing.processes import WorkerProcess, child_env

DEADLINE = 60


def cli(module, *args, url, stdin=None):
    return subprocess.run([sys.executable, "-m", f"workqueue.{module}", *args],
                          env=child_env({"WORKQUEUE_URL": url}), capture_output=True, text=True,
                          input=stdin, timeout=DEADLINE)


@pytest.fixture
def worker(amqp_url):
    started = []

    def start(*options):
        w = WorkerProcess("w", amqp_url, "--seconds-per-dot", "0", *options)
        started.append(w)
        w.wait_consuming(DEADLINE)
        return w
    yield start
    for w in started:
        w.close()


@pytest.mark.parametrize("module", ["new_task", "worker", "status"])
def test_help_documents_every_option_and_the_exit_codes(module):
    run = subprocess.run([sys.executable, "-m", f"workqueue.{module}", "--help"],
                         capture_output=True, text=True, timeout=DEADLINE)
    assert run.returncode == 0
    for line in ("exit codes:", "--url", "WORKQUEUE_URL", "130  interrupted"):
        assert line in run.stdout
    if module != "status":
        for option in ("--queue", "--transient", "--queue-type", "--heartbeat"):
            assert option in run.stdout


def test_new_task_prints_the_tutorials_line_and_defaults_to_hello_world(amqp_url, worker):
    assert cli("new_task", "First", "message.", url=amqp_url).stdout == " [x] Sent 'First message.'\n"
    assert cli("new_task", url=amqp_url).stdout == " [x] Sent 'Hello World!'\n"
    w = worker()
    w.wait_done(2, DEADLINE)
    assert w.received() == ["First message.", "Hello World!"]
    assert w.lines[0] == " [*] Waiting for messages. To exit press CTRL+C"


def test_a_tutorial_publisher_feeds_the_workqueue_worker(broker, vhost, amqp_url, worker):
    w = worker()
    connection = pika.BlockingConnection(broker.params(vhost))      # the tutorial's new_task.py, today's
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_publish(exchange="", routing_key="task_queue", body="Third message.",
                          properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
    connection.close()
    w.wait_done(1, DEADLINE)
    assert w.received() == ["Third message."]


TUTORIAL_WORKER = textwrap.dedent("""
    import os, sys, time, pika
    connection = pika.BlockingConnection(pika.URLParameters(os.environ["WORKQUEUE_URL"]))
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True)
    print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
    def callback(ch, method, properties, body):
        print(f" [x] Received {body.decode()}", flush=True)
        time.sleep(body.count(b".") * 0)
        print(" [x] Done", flush=True)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        ch.stop_consuming()
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="task_queue", on_message_callback=callback)
    channel.start_consuming()
""")


def test_workqueue_new_task_feeds_a_tutorial_worker(amqp_url):
    tutorial = subprocess.Popen([sys.executable, "-c", TUTORIAL_WORKER], stdout=subprocess.PIPE,
                                text=True, env=child_env({"WORKQUEUE_URL": amqp_url}))
    try:
        assert tutorial.stdout.readline().startswith(" [*] Waiting")
        assert cli("new_task", "Fourth", "message....", url=amqp_url).returncode == 0
        out, _ = tutorial.communicate(timeout=DEADLINE)
    finally:
        if tutorial.poll() is None:
            tutorial.kill()
    assert out.splitlines() == [" [x] Received Fourth message....", " [x] Done"]


def test_an_undecodable_body_is_shown_with_repr_and_the_worker_goes_on(broker, vhost, worker):
    w = worker("--queue-type", "classic")          # the library's QueueSpec() below
    with Producer(broker.params(vhost)) as producer:
        producer.publish_many([b"\xff\xfe binary", "after"])
    w.wait_done(2, DEADLINE)
    assert w.received() == [b"\xff\xfe binary", "after"]
    assert not w.errors


def test_unroutable_and_refused_tasks_are_errors_naming_the_task(broker, vhost):
    with pytest.raises(TaskNotConfirmed, match="'lost task' is unroutable"):
        with Producer(broker.params(vhost), QueueSpec("nowhere"), declare=False) as producer:
            producer.publish("lost task")


def test_publish_many_pipelines_confirms_for_many_tasks(broker, vhost):
    with Producer(broker.params(vhost), window=100) as producer:
        assert producer.publish_many(f"task {n}" for n in range(5000)) == 5000
    wait_until(lambda: broker.management.queues(vhost)[0]["messages_ready"] == 5000, DEADLINE,
               "5000 tasks ready")


def test_status_with_a_wrong_password_says_so_in_one_line(broker, vhost):
    url = broker.url(vhost).replace(f":{broker.password}@", ":not-the-password@")
    run = cli("status", "--management-url", broker.management_url, url=url)
    assert run.returncode == 4
    assert len(run.stderr.splitlines()) == 1 and "not-the-password" not in run.stderr


def test_a_statistic_the_api_has_not_reported_is_unknown_not_zero():
    """Just after a declaration or a restart the management API omits a queue's statistics:
    the library says None and the status command prints ?, never 0 (0 would let "the queue
    holds no tasks" pass before any number exists)."""
    from workqueue.management import queue_row
    from workqueue.status import format_table
    fresh = queue_row({"name": "task_queue", "consumers": 0})
    assert fresh == {"name": "task_queue", "messages_ready": None, "messages_unacknowledged": None,
                     "consumers": 0}
    assert format_table([fresh]).splitlines()[1].split() == ["task_queue", "?", "?", "0"]


@pytest.mark.broker_control
def test_throwaway_brokers_listen_on_loopback_only(broker):
    listening = broker.listening_on()
    assert {broker.port, broker.management_port} <= set(listening), listening
    assert all(addresses and addresses <= {"127.0.0.1", "::1"} for addresses in listening.values()), listening
    assert broker.username != "guest" and len(broker.password) >= 20


def test_several_urls_fail_over_to_the_broker_that_answers(broker, vhost, amqp_url, worker):
    """Producer, worker and CLI given a dead address first (a node that is down) use the next."""
    from workqueue.testing import free_port
    dead = amqp_url.replace(f"127.0.0.1:{broker.port}", f"127.0.0.1:{free_port()}")
    run = cli("new_task", "--url", dead, "--url", amqp_url, "--queue-type", "classic", "via the second url", url="")
    assert run.returncode == 0, run.stderr
    with Producer([pika.URLParameters(dead), broker.params(vhost)], QueueSpec()) as producer:
        producer.publish_many(["library task"])
    w = WorkerProcess("w", [dead, amqp_url], "--seconds-per-dot", "0")
    try:
        w.wait_done(2, DEADLINE)
        assert w.received() == ["via the second url", "library task"]
    finally:
        w.close()


def test_no_url_answering_is_one_line_exit_3_without_passwords(broker, amqp_url):
    from workqueue.testing import free_port
    dead = [amqp_url.replace(f"127.0.0.1:{broker.port}", f"127.0.0.1:{free_port()}") for _ in range(2)]
    run = cli("new_task", "task", url=",".join(dead))
    assert run.returncode == 3, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and broker.password not in run.stderr


def test_the_transport_patches_are_active_on_the_installed_pika(broker, vhost):
    """workqueue/_transport.py patches pika's private plain-TCP transport (joined writes; an ack
    sent at once). A pika whose internals differ would switch the patches off without a word
    (only the benchmark would show it): this test fails instead. pika has no public API for
    either (pyproject pins the tested range)."""
    from workqueue._transport import coalesce_writes, send_immediately
    results = {}

    def on_open(connection):
        results["coalesce"] = coalesce_writes(connection)
        results["immediate"] = send_immediately(connection)
        connection.close()

    connection = pika.SelectConnection(broker.params(vhost), on_open_callback=on_open,
                                       on_open_error_callback=lambda c, exc: c.ioloop.stop(),
                                       on_close_callback=lambda c, reason: c.ioloop.stop())
    connection.ioloop.start()
    assert results == {"coalesce": True, "immediate": True}, (pika.__version__, results)
    blocking = pika.BlockingConnection(broker.params(vhost))
    try:
        assert coalesce_writes(blocking) is True, pika.__version__
    finally:
        blocking.close()
