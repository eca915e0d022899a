"""The conformance suite: every scenario tagged @conformance, once per implementation of the
worker (``--impl``, from the project's manifest or ``--impl-file``). See docs/conformance.md."""

import pytest
from pytest_bdd import scenarios

from steps.broker import scenario_broker

scenarios("dispatch", "reliability", "production", "settlement", "credit")


@pytest.fixture
def broker(broker, request):
    """The session's broker; for a scenario tagged @broker_settings (the consumer timeout's), with
    its settings while it runs (steps/broker.py)."""
    with scenario_broker(request, broker) as configured:
        yield configured


@pytest.fixture(autouse=True)
def _each_implementation(worker_under_test):
    """Asks for the worker under test, so that conformance/conftest.py can give one per run."""
    return worker_under_test
