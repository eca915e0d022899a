"""Declaring queues: redeclaration refused, the tutorial's workaround, deprecated features."""

from pytest_bdd import scenarios

scenarios("declaration")
