"""Session broker, per-scenario vhost, and the steps modules.

Choose the broker with ``--broker=auto|node|container|url`` (env WORKQUEUE_BROKER). ``auto``
takes a container when a Docker engine answers, else a local rabbitmq-server node; when
neither can be had the run fails with one line saying how to get a broker. The broker boots
once per session; each scenario gets a fresh vhost, and one that stopped or crashed the broker
leaves it healthy for the next.
"""

import os
import pathlib
import tomllib

import pytest

from workqueue.testing import (BACKENDS, BrokerError, NoBroker, choose_backend, make_broker, make_cluster,
                               scenario_vhost)

pytest_plugins = [
    "steps.broker",
    "steps.queues",
    "steps.tasks",
    "steps.workers",
    "steps.cluster",
]


def pytest_addoption(parser):
    group = parser.getgroup("workqueue", "workqueue broker")
    group.addoption("--broker", choices=BACKENDS, default=os.environ.get("WORKQUEUE_BROKER", "auto"),
                    help="broker backend (env WORKQUEUE_BROKER; default auto: container if a "
                         "Docker engine answers, else a local rabbitmq-server node)")
    group.addoption("--broker-url", default=os.environ.get("WORKQUEUE_BROKER_URL"),
                    help="AMQP URL of a running broker, for --broker=url (its user needs the "
                         "administrator tag; env WORKQUEUE_BROKER_URL; its management API at "
                         "http://<host>:15672 unless WORKQUEUE_MANAGEMENT_URL says otherwise)")


#: Known RabbitMQ defects, by id: the scenarios tagged @defect_<id> are strict expected failures
#: on the versions each lists.
DEFECTS = tomllib.loads((pathlib.Path(__file__).parent / "features" / "defects.toml").read_text())


def pytest_configure(config):
    for key, defect in DEFECTS.items():
        config.addinivalue_line("markers", f"defect_{key}: RabbitMQ defect: {defect['title']}")
    if config.option.broker_url:
        os.environ["WORKQUEUE_BROKER_URL"] = config.option.broker_url
    if config.option.collectonly or config.option.help:
        return
    try:
        config._workqueue_backend = choose_backend(config.option.broker)
    except NoBroker as exc:
        raise pytest.UsageError(str(exc)) from None


_BROKER = {}


def _session_once(key, what, make):
    """Start the session's broker or cluster once; later calls return it (or fail the same way)."""
    if f"{key}-error" in _BROKER:
        pytest.fail(_BROKER[f"{key}-error"], pytrace=False)
    if key not in _BROKER:
        try:
            b = make()
            _BROKER[key] = b
            b.start()
        except BrokerError as exc:
            _BROKER[f"{key}-error"] = f"{what} could not be started: {exc}"
            pytest.fail(_BROKER[f"{key}-error"], pytrace=False)
    return _BROKER[key]


def session_broker(config):
    backend = config._workqueue_backend
    return _session_once("broker", f"broker ({backend})",
                         lambda: make_broker(backend, url=config.option.broker_url))


def session_cluster(config):
    backend = config._workqueue_backend
    return _session_once("cluster", f"3-node cluster ({backend})", lambda: make_cluster(backend))


def pytest_unconfigure(config):
    for key in ("cluster", "broker"):
        b = _BROKER.pop(key, None)
        if b is not None:
            b.close()


@pytest.fixture(scope="session")
def broker(request):
    """The session's throwaway broker (or the user's, with --broker=url)."""
    return session_broker(request.config)


@pytest.fixture(scope="session")
def cluster(request):
    """The session's throwaway 3-node cluster, started by the first scenario that needs it."""
    return session_cluster(request.config)


@pytest.fixture
def vhost(broker):
    """A fresh virtual host: every scenario declares its queues anew."""
    with scenario_vhost(broker) as name:
        yield name


@pytest.fixture
def amqp_url(broker, vhost):
    return broker.url(vhost)


def pytest_collection_modifyitems(config, items):
    """Deselect scenarios of the other RabbitMQ major; mark known broker defects as strict
    expected failures on their versions; skip broker control on --broker=url."""
    backend = getattr(config, "_workqueue_backend", None)
    if backend is None:
        return
    if any(item.get_closest_marker(m) for item in items for m in ("rabbitmq3", "rabbitmq4")):
        major = session_broker(config).major
        other = "rabbitmq3" if major >= 4 else "rabbitmq4"
        deselected = [item for item in items if item.get_closest_marker(other)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker(other)]
    defects = {key: d for key, d in DEFECTS.items() if any(item.get_closest_marker(f"defect_{key}") for item in items)}
    version = session_broker(config).version if defects else None
    for key, defect in defects.items():
        if version not in defect["versions"]:
            continue                    # not known to fail here: the scenario must pass
        reason = (f"RabbitMQ {version} defect {key}: {defect['title']} ({', '.join(defect['references'])}); "
                  f"if this passes, the defect is gone on {version}: update features/defects.toml")
        for item in items:
            if item.get_closest_marker(f"defect_{key}"):
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
    for item in items:
        if backend == "url" and item.get_closest_marker("broker_control"):
            item.add_marker(pytest.mark.skip(
                reason="needs to stop, crash or restart the broker: run with --broker=node or "
                       "--broker=container"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the broker's log to a failing test's report."""
    report = yield
    if report.failed:
        for key in ("broker", "cluster"):
            b = _BROKER.get(key)
            if b is not None and (key == "broker" or "cluster" in item.fixturenames):
                report.sections.append((f"{key} log (last 60 lines)", b.logs(tail=60)))
    return report


def pytest_report_header(config):
    backend = getattr(config, "_workqueue_backend", None)
    return f"workqueue broker backend: {backend}" if backend else None
