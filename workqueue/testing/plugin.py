"""Throwaway RabbitMQ brokers for any project's tests: the pytest plugin of ``workqueue[test]``.

Installed with the test extra, it is loaded by pytest through its ``pytest11`` entry point.

Options: ``--broker=auto|node|container|url`` (env WORKQUEUE_BROKER) and ``--broker-url``
(env WORKQUEUE_BROKER_URL; for ``url``: a running broker whose user has the administrator tag).
``auto`` takes a container when a Docker engine answers, else a local rabbitmq-server node.

Fixtures:

- ``broker`` (session): the throwaway broker, booted once, by the first test that asks;
- ``cluster`` (session): a throwaway 3-node cluster, booted once;
- ``vhost``: a fresh virtual host on ``broker`` for one test (deleted after it); a test that
  stopped or crashed the broker leaves it started again for the next;
- ``amqp_url``: ``broker``'s URL for that vhost;
- ``worker_pool``: real ``python -m workqueue.worker`` processes on ``amqp_url``, killed at
  the end of the test (``worker_pool.start("alice", "--prefetch", "1")``);
- ``broker_backend`` (session): the backend in use.

Markers: ``broker_control`` (stops, crashes or restarts the broker: skipped, with a reason, on
``--broker=url``), ``cluster``, ``rabbitmq3`` / ``rabbitmq4`` (deselected on the other major).
A failing test's report gets the broker's last log lines.

When no broker can be had, a test that asks for one fails with one line saying how to get one;
``require_broker(config)`` makes the whole run fail at its start instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from workqueue.testing import BACKENDS
from workqueue.testing.scheduling import on_cluster

if TYPE_CHECKING:
    from workqueue.testing.base import Broker, Target
    from workqueue.testing.cluster import Cluster
    from workqueue.testing.processes import WorkerPool

_STATE = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workqueue", "workqueue: throwaway RabbitMQ brokers")
    group.addoption("--broker", choices=BACKENDS, default=os.environ.get("WORKQUEUE_BROKER") or None,
                    help="broker backend (env WORKQUEUE_BROKER; default auto: container if a "
                         "Docker engine answers, else a local rabbitmq-server node)")
    group.addoption("--broker-url", default=os.environ.get("WORKQUEUE_BROKER_URL"),
                    help="AMQP URL of a running broker, for --broker=url (its user needs the "
                         "administrator tag; env WORKQUEUE_BROKER_URL; its management API at "
                         "http://<host>:15672 unless WORKQUEUE_MANAGEMENT_URL says otherwise)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash.setdefault(_STATE, {})
    for line in ("broker_control: stops, crashes or restarts the broker (not possible on --broker=url)",
                 "cluster: runs on a 3-node cluster (started once, by the first test that needs it)",
                 "rabbitmq4: outcome specific to RabbitMQ 4.x (deselected on 3.x)",
                 "rabbitmq3: outcome specific to RabbitMQ 3.x (deselected on 4.x)",
                 "partition: cuts a cluster node off the network (skipped, with the reason, "
                 "where the backend cannot: --broker=url, node backend without root)"):
        config.addinivalue_line("markers", line)
    if config.option.broker is not None and not (config.option.collectonly or config.option.help):
        require_broker(config)


def require_broker(config: pytest.Config) -> str:
    """Choose the backend now; a run that cannot have a broker ends with one line."""
    try:
        return backend(config)
    except Exception as exc:
        raise pytest.UsageError(str(exc)) from None


def backend(config: pytest.Config) -> str:
    """The backend of this run, chosen once (raises NoBroker when none can be had)."""
    state = config.stash.setdefault(_STATE, {})
    if "backend" not in state:
        from workqueue.testing import choose_backend
        if config.option.broker_url:
            os.environ["WORKQUEUE_BROKER_URL"] = config.option.broker_url
        state["backend"] = choose_backend(config.option.broker or "auto")
    return str(state["backend"])


def _backend_or_fail(config: pytest.Config) -> str:
    """The backend, or the asking test fails with the one line saying how to get a broker."""
    from workqueue.testing import BrokerError
    try:
        return backend(config)
    except BrokerError as exc:
        pytest.fail(str(exc), pytrace=False)


def _session_once(config: pytest.Config, key: str, what: str, make: Callable[[], Target]) -> Any:
    """Start the session's broker or cluster once; later calls return it (or fail the same way)."""
    from workqueue.testing import BrokerError
    state = config.stash.setdefault(_STATE, {})
    if f"{key}-error" in state:
        pytest.fail(state[f"{key}-error"], pytrace=False)
    if key not in state:
        try:
            target = make()
            state[key] = target
            target.start()
        except BrokerError as exc:
            state[f"{key}-error"] = f"{what} could not be started: {' '.join(str(exc).split())}"
            pytest.fail(state[f"{key}-error"], pytrace=False)
    return state[key]


def session_broker(config: pytest.Config) -> Broker:
    """The session's broker (booted on first use)."""
    from workqueue.testing import make_broker
    kind = _backend_or_fail(config)
    return _session_once(config, "broker", f"broker ({kind})",
                         lambda: make_broker(kind, url=config.option.broker_url))


def session_cluster(config: pytest.Config) -> Cluster:
    """The session's 3-node cluster (booted on first use)."""
    from workqueue.testing import make_cluster
    kind = _backend_or_fail(config)
    return _session_once(config, "cluster", f"3-node cluster ({kind})", lambda: make_cluster(kind))


_FACTS_KEY = "workqueue_run_facts"


def run_facts(config: pytest.Config) -> dict[str, Any] | None:
    """What this run ran against: ``{"backend": ..., "rabbitmq": "4.3.6", "image": ...}`` (the
    version and image only once a broker was started; under pytest-xdist, gathered from the
    test processes when they end). None before the backend is chosen."""
    state = config.stash.get(_STATE, {})
    facts = dict(state.get("facts") or {})
    if "backend" in state:
        facts.setdefault("backend", state["backend"])
    target = state.get("broker") or (state["cluster"].members[0] if state.get("cluster") else None)
    if target is not None:
        try:
            facts.setdefault("rabbitmq", target.version)
        except Exception:
            pass
        image = getattr(target, "image", None)
        if image:
            facts.setdefault("image", image)
        if getattr(target, "package", None):
            from workqueue.testing import debian
            facts.setdefault("debian", debian.describe(target.package, target.defaults))
    return facts or None


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):                  # a pytest-xdist test process
        config.workeroutput[_FACTS_KEY] = run_facts(config)  # type: ignore[attr-defined]
        # Close the brokers now, before pytest-xdist tells the controller that this process is
        # done: the controller then ends its test processes within seconds, and a removal cut
        # short there left a container behind (seen at the end of a 6-process run).
        _close_session_targets(config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: keep the facts of each test process that started a broker."""
    facts = getattr(node, "workeroutput", {}).get(_FACTS_KEY)
    if facts:
        state = node.config.stash.setdefault(_STATE, {})
        for key, value in facts.items():
            state.setdefault("facts", {}).setdefault(key, value)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    facts = run_facts(config)
    if facts and facts.get("rabbitmq"):
        image = f", image {facts['image']}" if facts.get("image") else ""
        terminalreporter.write_line(f"workqueue: RabbitMQ {facts['rabbitmq']} ({facts['backend']}{image})")


def pytest_unconfigure(config: pytest.Config) -> None:
    _close_session_targets(config)


def _close_session_targets(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, {})
    for key in ("cluster", "broker"):
        target = state.pop(key, None)
        if target is not None:
            try:
                target.close()
            except Exception as exc:        # the other one is still closed
                sys.stderr.write(f"workqueue: closing the session's {key} failed: {exc}\n")


@pytest.fixture(scope="session")
def broker_backend(request: pytest.FixtureRequest) -> str:
    """The backend of this run: node, container or url."""
    return _backend_or_fail(request.config)


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> Broker:
    """The session's throwaway broker (or the user's, with --broker=url)."""
    return session_broker(request.config)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The session's throwaway 3-node cluster, started by the first test that needs it."""
    return session_cluster(request.config)


@pytest.fixture
def vhost(broker: Broker) -> Generator[str]:
    """A fresh virtual host: every test declares its queues anew."""
    from workqueue.testing import scenario_vhost
    with scenario_vhost(broker) as name:
        yield name


@pytest.fixture
def amqp_url(broker: Broker, vhost: str) -> str:
    return broker.url(vhost)


@pytest.fixture
def worker_pool(amqp_url: str) -> Generator[WorkerPool]:
    """Worker processes on the test's vhost; any still running at the end are killed."""
    from workqueue.testing.processes import WorkerPool
    pool = WorkerPool(amqp_url)
    yield pool
    pool.close()


@pytest.hookimpl(tryfirst=True)      # before the tests are handed out
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests of the other RabbitMQ major; skip what the backend cannot do (broker
    control on --broker=url, partitions where the backend cannot cut a node off), with the reason. The
    order of the tests is the project's own (workqueue.testing.scheduling is opt-in)."""
    if not any(item.get_closest_marker(m) for item in items
               for m in ("rabbitmq3", "rabbitmq4", "broker_control", "partition")):
        return
    from workqueue.testing import BrokerError
    try:
        kind = backend(config)
    except BrokerError:
        return                      # each test that asks for a broker fails, saying why
    if any(item.get_closest_marker(m) for item in items for m in ("rabbitmq3", "rabbitmq4")):
        try:
            major = session_broker(config).major
        except pytest.fail.Exception:
            # The broker did not start: every test that asks for it fails with the reason
            # (a failure raised here would be an INTERNALERROR that hides it); nothing is
            # deselected.
            major = None
        if major is not None:
            other = "rabbitmq3" if major >= 4 else "rabbitmq4"
            deselected = [item for item in items if item.get_closest_marker(other)]
            if deselected:
                config.hook.pytest_deselected(items=deselected)
                items[:] = [item for item in items if not item.get_closest_marker(other)]
    cannot_partition = partition_unavailable(kind)
    if cannot_partition:
        for item in items:
            if item.get_closest_marker("partition"):
                item.add_marker(pytest.mark.skip(reason=f"cuts a node off the cluster's network: {cannot_partition}"))
    if kind == "url":
        for item in items:
            if item.get_closest_marker("broker_control"):
                item.add_marker(pytest.mark.skip(
                    reason="needs to stop, crash or restart the broker: run with --broker=node or "
                           "--broker=container"))


def partition_unavailable(kind: str) -> str | None:
    """Why a cluster of backend ``kind`` cannot be partitioned here, or None when it can."""
    if kind == "node":
        from workqueue.testing import netns
        reason = netns.unavailable()
        return f"a node cluster's nodes get an address each only in network namespaces: {reason}" if reason else None
    if kind == "url":
        return "needs a cluster of throwaway nodes (--broker=node or --broker=container)"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Attach the broker's log to a failing test's report."""
    report = yield
    if report.failed:
        state = item.config.stash.get(_STATE, {})
        for key in ("broker", "cluster"):
            target = state.get(key)
            if target is not None and (key == "broker" or on_cluster(item)):
                report.sections.append((f"{key} log (last 60 lines)", target.logs(tail=60)))
    return report


def pytest_report_header(config: pytest.Config) -> str | None:
    kind = config.stash.get(_STATE, {}).get("backend")
    return f"workqueue broker backend: {kind}" if kind else None
