"""The harness as a pytest plugin: another project, with workqueue[test] installed, writes its
own tests against a throwaway broker through the plugin's entry point (no conftest of ours)."""

import json
import os
import textwrap

import pytest

from workqueue.testing.processes import alive


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


def test_a_parallel_run_leaves_no_broker_behind(pytester, broker_backend, tmp_path):
    # Each pytest-xdist process closes its broker before it reports that it is done: the
    # controller ends its processes soon after, and a removal cut short left a container.
    if broker_backend == "url":
        pytest.skip("checks that throwaway brokers are removed: run with --broker=node or "
                    "--broker=container (with --broker=url the broker is yours and stays)")
    record = tmp_path / "brokers"
    record.mkdir()
    pytester.makeconftest(textwrap.dedent('''
        import threading, pytest

        @pytest.fixture(scope="session", autouse=True)
        def slow_engine(broker):
            """Closing takes 12 s, as with a Docker engine slow to answer at the end of a loaded
            run: longer than pytest-xdist gives its processes to exit once they are done."""
            real_close = broker.close
            def close():
                threading.Event().wait(12)
                real_close()
            broker.close = close
    '''))
    pytester.makepyfile(test_theirs=textwrap.dedent(f'''
        import json, os, pytest

        @pytest.mark.parametrize("n", range(4))
        def test_uses_the_broker(broker, vhost, n):
            seen = {{"kind": broker.kind, "container": getattr(broker, "container_id", None),
                    "pid": getattr(broker, "pid", None), "base": str(getattr(broker, "base", ""))}}
            with open(os.path.join({str(record)!r}, str(os.getpid())), "w") as f:
                json.dump(seen, f)
    '''))
    result = pytester.runpytest_subprocess(f"--broker={broker_backend}", "-n", "2", "-p", "no:cacheprovider",
                                           "-p", "no:pytest_rabbitmq")
    result.assert_outcomes(passed=4)
    seen = [json.loads(path.read_text()) for path in record.iterdir()]
    assert seen, "no test process recorded its broker"
    left = []
    for broker in seen:
        if broker["container"]:
            import docker

            from workqueue.testing.container import docker_client
            client = docker_client()
            try:
                client.containers.get(broker["container"])
                left.append(f"container {broker['container'][:12]}")
            except docker.errors.NotFound:
                pass
            finally:
                client.close()
        if broker["pid"] and alive(broker["pid"]):
            left.append(f"rabbitmq-server pid {broker['pid']}")
        if broker["base"] and os.path.exists(broker["base"]):
            left.append(f"directory {broker['base']}")
    assert not left, f"left behind by the run, right after it ended: {left}"


def test_the_plugin_leaves_another_projects_test_order_and_groups_alone(pytester):
    # The plugin serves other projects: options, fixtures, deselecting what cannot run. How a
    # project schedules its tests is its own (workqueue.testing.scheduling is opt-in). Run in
    # one pytest-xdist process, where this project's conftest sorts the longest tests first.
    pytester.makeconftest(textwrap.dedent('''
        import json, os
        def pytest_collection_finish(session):
            if os.environ.get("PYTEST_XDIST_WORKER"):
                with open("collected.json", "w") as f:
                    json.dump([[i.name, [m.name for m in i.iter_markers()]] for i in session.items], f)
    '''))
    pytester.makepyfile(test_theirs=textwrap.dedent('''
        import pytest
        def test_first(): pass
        @pytest.mark.broker_control
        def test_second(): pass
        @pytest.mark.cluster
        def test_third(): pass
    '''))
    result = pytester.runpytest_subprocess("-n", "1", "-p", "no:cacheprovider", "-p", "no:pytest_rabbitmq",
                                           "--broker=node")
    result.assert_outcomes(passed=3)
    collected = json.loads((pytester.path / "collected.json").read_text())
    assert [name for name, _ in collected] == ["test_first", "test_second", "test_third"], collected
    assert not [name for name, marks in collected if "xdist_group" in marks], collected


def test_a_parallel_run_keeps_the_cluster_tests_of_a_module_on_one_process(pytester):
    # They share the costly 3-node cluster, booted once per test process that asks for it. The
    # grouping is pytest-xdist's --dist loadgroup, which pytest 9.2 silently broke
    # (pytest-dev/pytest-xdist#1386): this fails when an upgrade breaks it again. No broker
    # is needed: the tests carry the marker and record the process that ran them. The project
    # opts in to the grouping from its conftest, as this one does.
    pytester.makeconftest(textwrap.dedent('''
        import pytest
        from workqueue.testing import scheduling

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection_modifyitems(config, items):
            scheduling.keep_cluster_tests_together(config, items)
            scheduling.longest_first(config, items)
    '''))
    pytester.makepyfile(test_theirs=textwrap.dedent('''
        import os, pytest

        @pytest.mark.cluster
        @pytest.mark.parametrize("i", range(6))
        def test_on_the_cluster(i, record_property):
            record_property("process", os.environ["PYTEST_XDIST_WORKER"])

        @pytest.mark.parametrize("i", range(6))
        def test_elsewhere(i, record_property):
            record_property("process", os.environ["PYTEST_XDIST_WORKER"])
    '''))
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-n", "3", "--dist", "loadgroup", f"--junitxml={junit}",
                                           "-p", "no:cacheprovider", "-p", "no:pytest_rabbitmq")
    result.assert_outcomes(passed=12)
    import xml.etree.ElementTree as ET
    ran = {}
    for case in ET.parse(junit).iter("testcase"):
        processes = {p.get("value") for p in case.iter("property") if p.get("name") == "process"}
        ran.setdefault(case.get("name").split("[")[0], set()).update(processes)
    assert len(ran["test_on_the_cluster"]) == 1, f"the cluster tests ran on {sorted(ran['test_on_the_cluster'])}"
    assert len(ran["test_elsewhere"]) > 1, "the other tests were not spread over the processes"
