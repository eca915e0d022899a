"""The broker: restarts, crashes, and brokers configured for one scenario."""

import threading
import time

import pytest
from pytest_bdd import given, parsers, when

from steps import QUEUE_SETTLE_SECONDS
from workqueue.testing import make_broker


@pytest.fixture(autouse=True)
def scenario_started():
    """When the scenario started: its queues are declared after this."""
    return time.monotonic()


@pytest.fixture
def extra_brokers():
    """Brokers started for one scenario only; closed at its end."""
    brokers = []
    yield brokers
    for b in brokers:
        b.close()


@when(parsers.re(r"the broker (?P<event>restarts|crashes and recovers|crashes at once and recovers)$"))
def _(broker, scenario_started, event):
    """A crash waits until the scenario's queues are a few seconds old (QUEUE_SETTLE_SECONDS),
    unless it is the defect's own scenario, which crashes at once."""
    if event == "restarts":
        broker.restart()
        return
    if event == "crashes and recovers":
        threading.Event().wait(max(0.0, scenario_started + QUEUE_SETTLE_SECONDS - time.monotonic()))
    broker.crash_and_recover()


@given("a broker configured not to permit transient non-exclusive queues", target_fixture="amqp_url")
def _(broker, extra_brokers):
    denying = make_broker(broker.kind, extra_conf="deprecated_features.permit.transient_nonexcl_queues = false\n")
    extra_brokers.append(denying)
    denying.start()
    return denying.url("/")
