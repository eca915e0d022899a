"""The dispatch chapter: round robin and fair dispatch."""

from pytest_bdd import scenarios

scenarios("dispatch")
