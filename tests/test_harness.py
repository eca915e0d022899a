"""The throwaway-broker harness itself, on whichever backend the run uses."""

import os
import subprocess
import sys

import pytest

from workqueue import Producer, QueueSpec
from workqueue.testing import BrokerError, make_broker

pytestmark = [pytest.mark.harness, pytest.mark.broker_control]


def test_a_broker_keeps_its_url_and_durable_data_across_restart_and_crash(broker_backend):
    """Persistent messages in a durable queue survive stop/start and kill/start; a transient
    queue does not; the URL stays the same; nothing is left behind after close(). Debian's
    defaults: a transient non-exclusive queue is then declared on every version (upstream's 4.3
    refuses one, workqueue/testing/debian.py), and its loss is the restart's proof."""
    broker = make_broker(broker_backend, defaults="debian")
    with broker:
        url = broker.url()
        with Producer(broker.params(), QueueSpec("durable")) as producer:
            producer.publish_many(f"m{n}" for n in range(50))
        with Producer(broker.params(), QueueSpec("transient", durable=False)) as producer:
            producer.publish_many(f"m{n}" for n in range(5))

        broker.restart()
        assert broker.url() == url
        assert broker.message_count("durable") == 50
        assert broker.message_count("transient") is None

        broker.crash_and_recover()
        assert broker.url() == url
        assert broker.message_count("durable") == 50
        assert broker.leftovers() != [], "a running broker shows what close() must remove"
    assert broker.leftovers() == []


def test_a_broker_that_fails_to_start_says_why_with_its_log(broker_backend):
    broker = make_broker(broker_backend,
                         extra_conf="this.setting.does.not.exist = 42\n", startup_timeout=60)
    try:
        with pytest.raises(BrokerError) as info:
            broker.start()
    finally:
        broker.close()
    message = str(info.value)
    assert "last log lines" in message
    assert "this.setting.does.not.exist" in message or "error" in message.lower(), message
    assert broker.password not in message


def test_no_rabbitmq_server_fails_the_run_in_one_line(tmp_path):
    """--broker=node without rabbitmq-server: a non-zero exit and one line saying what is missing."""
    env = {**os.environ, "WORKQUEUE_RABBITMQ_SERVER": str(tmp_path / "no-rabbitmq-server")}
    run = subprocess.run([sys.executable, "-m", "pytest", "--broker=node", "-q", "-p", "no:cacheprovider",
                          "tests/test_harness.py::test_no_rabbitmq_server_fails_the_run_in_one_line"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "rabbitmq-server" in lines[0] and "not found" in lines[0]


def test_the_url_backend_is_green_against_a_stock_guest_broker(broker_backend):
    """A user's own broker with the default guest:guest user (as `pytest --broker=url` would
    meet it): the url backend makes its own user with a generated password, so "no password
    in the output" looks for a secret that appears nowhere else, not for the word guest.

    The shell has WORKQUEUE_* variables of its own, as a user's may: the management URL the
    docs/harness.md documents for the url backend (which once let the status command of the redaction
    test reach the real API: exit 0 or 4 instead of 3), a WORKQUEUE_URL of another broker. No
    test may depend on them. The scenarios run here are the ones about input, output and
    passwords; CI runs the whole suite against a stock broker (`make test BROKER=url`, .ci/run)."""
    stock = make_broker(broker_backend, username="guest", password="guest")
    with stock:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--broker=url",
             f"--broker-url=amqp://guest:guest@127.0.0.1:{stock.port}/%2F",
             "tests/test_production.py", "-k", "given_input or refuses_to_lose or no_cli_prints",
             "tests/test_redaction.py"],
            env={**os.environ, "WORKQUEUE_MANAGEMENT_URL": stock.management_url,
                 "WORKQUEUE_URL": f"amqp://guest:guest@127.0.0.1:{stock.port}/%2F"},
            capture_output=True, text=True, timeout=300)
        users = {u["name"] for u in stock.management.request("GET", "/api/users")}
    summary = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert users == {"guest"}, f"the run's own user was left behind: {users}"


def test_a_node_directory_is_reaped_once_its_owner_and_its_node_are_gone(tmp_path):
    from workqueue.testing.node import reap_orphan_dirs
    ended = subprocess.Popen(["true"])
    ended.wait()

    def node_dir(name, owner, node=None):
        path = tmp_path / f"workqueue-node-{name}"
        path.mkdir()
        if owner is not None:
            (path / "owner.pid").write_text(str(owner))
        if node is not None:
            (path / "rabbit.pid").write_text(str(node))
        return path

    orphan = node_dir("orphan", ended.pid, node=ended.pid)
    owned = node_dir("owned", os.getpid())
    running = node_dir("running", ended.pid, node=os.getpid())     # its node outlived its owner
    unknown = node_dir("unknown", None)
    assert reap_orphan_dirs(tmp_path) == [orphan]
    assert owned.exists() and running.exists() and unknown.exists()


def _mirakuru_exit_hook_as(pid):
    """Run mirakuru's exit hook (mirakuru 3.1.0 base.cleanup_subprocesses) in another process
    whose os.getpid() answers ``pid``: what any process that imported mirakuru does as it exits."""
    code = f"import os, mirakuru.base as m; os.getpid = lambda: {pid}; m.cleanup_subprocesses()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True)


def test_a_node_outlives_the_exit_of_other_processes_that_use_mirakuru(broker_backend):
    """mirakuru marks what it starts with mirakuru_uuid="<starter's pid>:<uuid4>", and its exit
    hook SIGKILLs every process whose mark *contains* the exiting process's pid: a test process
    of pid 442 ending killed the booting node of pid 20442's (CI, 2026-12-07). A node's mark holds
    no digit, so no exit matches it, not even its own process's pid; the contrast, a process with
    mirakuru's own mark, dies of the same hook given a pid inside that mark (if it survives,
    mirakuru changed how it matches: see workqueue/testing/node.py)."""
    if broker_backend != "node":
        pytest.skip("tests the node backend's executor (mirakuru), which the other backends do not use: "
                    "run with --broker=node")
    from mirakuru import SimpleExecutor

    from workqueue.testing.node import NodeBroker
    with NodeBroker() as broker:
        process = broker._executor.process
        with open(f"/proc/{process.pid}/environ", "rb") as f:
            mark = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)[b"mirakuru_uuid"]
        contrast = SimpleExecutor(["sleep", "60"]).start()
        try:
            assert contrast._uuid.startswith(f"{os.getpid()}:")
            _mirakuru_exit_hook_as(str(os.getpid())[-3:].lstrip("0") or os.getpid())
            _mirakuru_exit_hook_as(os.getpid())
            contrast.process.wait(timeout=10)
            assert contrast.process.returncode == -9, contrast.process.returncode
            assert process.poll() is None and broker.is_ready(), (
                f"the node ended ({process.poll()}) at another process's exit; its mark: {mark!r}")
            assert not any(c.isdigit() for c in mark.decode()), mark
        finally:
            contrast.stop() if contrast.running() else None
