"""What the harness reads from a worker holds no broker password (no broker: the worker here is
a program that prints its own URL, as rabbitmq-amqp-python-client does in its errors)."""

import sys

from workqueue.testing import wait_until
from workqueue.testing.processes import WorkerProcess

PRINTS_ITS_URL = ("import os, sys; url = os.environ['WORKER_URL']; print('connecting to', url);"
                  "print('Connection', url, 'disconnected', file=sys.stderr)")


def test_a_password_a_worker_prints_is_kept_out_of_its_lines_and_errors():
    password = "s3cret:pa/ss"                                  # typed percent-encoded in the URL
    url = "amqp://wq-user:s3cret%3Apa%2Fss@127.0.0.1:5672/%2F"
    worker = WorkerProcess("alice", url, env={"WORKER_URL": url}, command=[sys.executable, "-c", PRINTS_ITS_URL])
    worker.process.wait(30)
    wait_until(lambda: worker.lines and worker.errors, 10, "the worker's two lines")
    seen = worker.output_lines() + worker.errors
    assert not any(password in line or "s3cret%3Apa%2Fss" in line for line in seen), seen
    assert seen == ["connecting to amqp://wq-user:***@127.0.0.1:5672/%2F",
                    "Connection amqp://wq-user:***@127.0.0.1:5672/%2F disconnected"], seen
