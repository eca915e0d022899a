"""What breaks in production: confirms, reconnects, shutdown, heartbeats, poison, bad input,
consumer timeouts, full queues, resource alarms, tasks that kill their worker."""

import pytest
from pytest_bdd import scenarios

from steps.broker import scenario_broker


@pytest.fixture
def broker(broker, request):
    """The session's broker; for a scenario tagged @broker_settings, with its settings while it
    runs (steps/broker.py's ``broker_settings``): a short consumer timeout."""
    with scenario_broker(request, broker) as configured:
        yield configured


scenarios("production")
