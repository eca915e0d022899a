"""What breaks in production: confirms, reconnects, shutdown, heartbeats, poison, bad input,
consumer timeouts, full queues, resource alarms, tasks that kill their worker."""

import pytest
from pytest_bdd import scenarios


@pytest.fixture
def broker(broker, request):
    """The session's broker; for a scenario tagged @own_broker, the broker of its own
    (steps/broker.py's ``own_broker``): a short consumer timeout, alarms that block nobody else."""
    if request.node.get_closest_marker("own_broker") is None:
        return broker
    return request.getfixturevalue("own_broker")


scenarios("production")
