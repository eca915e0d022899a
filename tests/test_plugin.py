"""The harness as a pytest plugin: another project, with workqueue[test] installed, writes its
own tests against a throwaway broker through the plugin's entry point (no conftest of ours)."""

import textwrap


def test_another_project_gets_a_throwaway_broker_and_workers_from_the_plugin(pytester, broker_backend):
    pytester.makepyfile(test_theirs=textwrap.dedent('''
        import pika

        def test_a_task_is_done_by_a_worker(broker, vhost, amqp_url, worker_pool):
            assert amqp_url == broker.url(vhost)
            worker = worker_pool.start("alice", "--seconds-per-dot", "0")
            worker.wait_consuming(60)
            connection = pika.BlockingConnection(broker.params(vhost))
            connection.channel().basic_publish("", "task_queue", b"their task.")
            connection.close()
            worker.wait_done(1, 60)
            assert worker.received() == ["their task."]

        def test_each_test_gets_its_own_vhost(broker, vhost):
            names = {v["name"] for v in broker.management.request("GET", "/api/vhosts")}
            assert vhost.startswith("scenario-") and vhost in names
    '''))
    result = pytester.runpytest_subprocess(f"--broker={broker_backend}", "-p", "no:cacheprovider",
                                           "-p", "no:pytest_rabbitmq")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"workqueue broker backend: {broker_backend}"])


def test_a_project_without_a_broker_fails_in_one_line_not_by_skipping(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKQUEUE_RABBITMQ_SERVER", str(tmp_path / "no-rabbitmq-server"))
    pytester.makepyfile(test_theirs="def test_needs_a_broker(broker):\n    pass\n")
    result = pytester.runpytest_subprocess("--broker=node", "-p", "no:cacheprovider", "-p", "no:pytest_rabbitmq")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*rabbitmq-server*not found*"])


def test_a_broker_that_fails_to_start_while_tests_are_collected_fails_them_with_its_reason(
        pytester, monkeypatch):
    # A version marker makes the plugin start the broker while collecting (to deselect the other
    # major's tests); under pytest-xdist a failure there was an INTERNALERROR hiding its reason.
    monkeypatch.setenv("WORKQUEUE_RABBITMQ_SERVER", "/bin/false")
    monkeypatch.setenv("WORKQUEUE_RABBITMQCTL", "/bin/false")
    pytester.makepyfile(test_theirs=textwrap.dedent('''
        import pytest

        @pytest.mark.rabbitmq4
        def test_on_4(broker):
            pass

        def test_any(broker):
            pass
    '''))
    result = pytester.runpytest_subprocess("--broker=node", "-n", "2", "-p", "no:cacheprovider",
                                           "-p", "no:pytest_rabbitmq")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(errors=2)                  # at setup, where the fixture asks for it
    result.stdout.fnmatch_lines(["*broker (node) could not be started*"])
