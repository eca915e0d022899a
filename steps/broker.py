"""The broker: restarts, crashes, and brokers configured for one scenario."""

import threading
import time

import pytest
from pytest_bdd import given, parsers, when

from workqueue.testing import QUEUE_SETTLE_SECONDS, make_broker


class Declared:
    """When the scenario's queues were first declared (time.monotonic()), once a step has seen a
    declaration answered: a producer connected, a worker consuming."""

    def __init__(self):
        self.at = None

    def mark(self):
        if self.at is None:
            self.at = time.monotonic()

    def wait_settled(self):
        """Wait until the queues are QUEUE_SETTLE_SECONDS old (at once when none was declared)."""
        if self.at is not None:
            threading.Event().wait(max(0.0, self.at + QUEUE_SETTLE_SECONDS - time.monotonic()))


@pytest.fixture
def declared():
    return Declared()


@pytest.fixture
def extra_brokers():
    """Brokers started for one scenario only; closed at its end."""
    brokers = []
    yield brokers
    for b in brokers:
        b.close()


@when(parsers.re(r"the broker (?P<event>restarts|crashes and recovers|crashes at once and recovers)$"))
def _(broker, declared, event):
    """A crash waits until the scenario's queues are a few seconds old (QUEUE_SETTLE_SECONDS,
    from their first declaration), unless it is the defect's own scenario, which crashes at once."""
    if event == "restarts":
        broker.restart()
        return
    if event == "crashes and recovers":
        declared.wait_settled()
    broker.crash_and_recover()


#: How often a channel of a broker with a short consumer timeout checks it (channel_tick_interval,
#: 60 000 ms by default: a timeout is acted on up to a minute late; measured on 3.10.8 and 4.0.5).
CONSUMER_TIMEOUT_TICK_MS = 500


@pytest.fixture(scope="session")
def configured_brokers():
    """Brokers with a configuration of their own, shared by the scenarios that ask for the same
    one (a boot costs about 4 s of CPU): started on first use, closed at the session's end."""
    started = {}
    yield started
    for b in started.values():
        b.close()


@given(parsers.re(r"a broker whose consumer timeout is (?P<seconds>\d+) seconds"), target_fixture="broker")
def _(broker, configured_brokers, seconds):
    """The scenario's broker from here on (its vhost, its workers, its Then steps)."""
    key = f"consumer_timeout={seconds}"
    if key not in configured_brokers:
        configured = make_broker(broker.kind, extra_conf=f"consumer_timeout = {int(seconds) * 1000}\n",
                                 app_env={"channel_tick_interval": CONSUMER_TIMEOUT_TICK_MS})
        configured.consumer_timeout = int(seconds)
        configured_brokers[key] = configured        # closed at the end even if it fails to start
        configured.start()
    return configured_brokers[key]


@given("a broker configured not to permit transient non-exclusive queues", target_fixture="amqp_url")
def _(broker, extra_brokers):
    denying = make_broker(broker.kind, extra_conf="deprecated_features.permit.transient_nonexcl_queues = false\n")
    extra_brokers.append(denying)
    denying.start()
    return denying.url("/")
