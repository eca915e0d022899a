"""The reliability chapter: message acknowledgment and durability."""

from pytest_bdd import scenarios

scenarios("reliability")
