"""The broker: restarts, crashes, and brokers configured for one scenario."""

import pytest
from pytest_bdd import given, parsers, when

from workqueue.testing import make_broker


@pytest.fixture
def extra_brokers():
    """Brokers started for one scenario only; closed at its end."""
    brokers = []
    yield brokers
    for b in brokers:
        b.close()


@when(parsers.re(r"the broker (?P<event>restarts|crashes and recovers)$"))
def _(broker, event):
    if event == "restarts":
        broker.restart()
    else:
        broker.crash_and_recover()


@given("a broker configured not to permit transient non-exclusive queues", target_fixture="amqp_url")
def _(broker, extra_brokers):
    denying = make_broker(broker.kind, extra_conf="deprecated_features.permit.transient_nonexcl_queues = false\n")
    extra_brokers.append(denying)
    denying.start()
    return denying.url("/")
