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
