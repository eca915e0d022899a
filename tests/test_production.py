"""What breaks in production: confirms, reconnects, shutdown, heartbeats, poison, bad input."""

from pytest_bdd import scenarios

scenarios("production")
