"""What breaks in production: confirms, reconnects, shutdown, heartbeats, poison, bad input,
consumer timeouts, full queues, resource alarms, tasks that kill their worker."""

import pytest
from pytest_bdd import scenarios

from steps.broker import scenario_broker


@pytest.fixture
def broker(broker, request):
    """The session's broker; for a scenario tagged @own_broker, the broker of its own
    (steps/broker.py's ``own_broker``): a short consumer timeout, alarms that block nobody else."""
    return scenario_broker(request, broker)


scenarios("production")
